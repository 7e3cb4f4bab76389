using System.Globalization;
using System.Text.Json;
using LeNetSharp.Imaging;
using LeNetSharp.Inference;
using LeNetSharp.Layers;

namespace LeNetSharp.Trainer;

/// <summary>
/// The <c>predict FILE...</c> command: decodes each picture to grey, brings it to MNIST's form
/// (<see cref="MnistPreprocessing.Preprocess(ReadOnlySpan{byte}, int, int)"/>) and prints the network's answer; for a
/// network that records its input size (trained on an image folder), reads the picture as the folder's were read
/// (<see cref="ImageFolder.ReadImage"/>: resized, grey or RGB) instead. A network that names its classes answers with
/// the name. A file that cannot be read or decoded gets one <c>error:</c> line naming it; the others are still predicted.
/// </summary>
internal static class PredictCommand
{
    /// <summary>Predicts every file; returns 0 when all were read, 1 when any failed.</summary>
    /// <param name="network">The trained network.</param>
    /// <param name="files">The pictures.</param>
    /// <param name="json">One JSON object per line instead of a sentence.</param>
    /// <param name="stdout">Where the answers go.</param>
    /// <param name="stderr">Where the per-file errors go.</param>
    /// <returns>The exit code.</returns>
    public static int Run(Sequential<float> network, IReadOnlyList<string> files, bool json, TextWriter stdout, TextWriter stderr)
    {
        int failed = 0;
        foreach (string file in files)
        {
            Prediction prediction;
            try
            {
                if (network.InputShape is var (h, w, c))
                {
                    prediction = network.Predict(ImageFolder.ReadImage(file, h, w, c), h, w, c);
                }
                else
                {
                    var (grey, width, height) = ImageDecoder.DecodeFile(file);
                    prediction = network.Predict(MnistPreprocessing.Preprocess(grey, width, height));
                }
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or ArgumentException)
            {
                string message = e is FileNotFoundException or DirectoryNotFoundException ? $"{file}: file not found"
                    : Directory.Exists(file) ? $"{file}: a folder, not a picture"
                    : e.Message.Contains(file, StringComparison.Ordinal) ? e.Message : $"{file}: {e.Message}";
                stderr.WriteLine($"error: {Program.Printable(message.ReplaceLineEndings(" "))}");
                failed++;
                continue;
            }

            stdout.WriteLine(json ? Json(file, prediction, network.ClassNames) : Sentence(file, prediction, network.ClassNames));
        }

        return failed == 0 ? 0 : 1;
    }

    /// <summary>
    /// "digit.png: 7 (99.8%), runner-up 3 (0.1%)"; with class names, "cat.png: cat (97.0%), runner-up dog (2.1%)";
    /// "digit.png: 0 (100.0%)" for a network of one class, which has no runner-up.
    /// </summary>
    public static string Sentence(string file, Prediction p, IReadOnlyList<string>? classNames = null)
    {
        var c = CultureInfo.InvariantCulture;
        string answer = string.Create(c, $"{file}: {Name(p.Label, classNames)} ({100 * p.Confidence:F1}%)");
        return p.RunnerUp is int r and >= 0 ? string.Create(c, $"{answer}, runner-up {Name(r, classNames)} ({100 * p.Probabilities[r]:F1}%)") : answer;
    }

    /// <summary>{"file":"digit.png","label":7,"probabilities":[…one per class…]} on one line, with "class":"cat" after the label when the classes have names.</summary>
    public static string Json(string file, Prediction p, IReadOnlyList<string>? classNames = null) => classNames is null
        ? JsonSerializer.Serialize(new { file, label = p.Label, probabilities = p.Probabilities })
        : JsonSerializer.Serialize(new { file, label = p.Label, @class = Name(p.Label, classNames), probabilities = p.Probabilities });

    /// <summary>The class's name, or its number when the network names none (or fewer than it has outputs).</summary>
    private static string Name(int label, IReadOnlyList<string>? classNames) =>
        classNames is not null && label < classNames.Count ? classNames[label] : label.ToString(CultureInfo.InvariantCulture);
}
