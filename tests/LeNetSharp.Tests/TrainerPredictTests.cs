using System.Text.Json;
using LeNetSharp.Inference;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using SkiaSharp;

namespace LeNetSharp.Tests;

/// <summary>The trainer's <c>predict FILE...</c>: pictures of any size, format and polarity; bad files reported one line each.</summary>
public class TrainerPredictTests : TempDirectoryTest
{
    private readonly string _model;
    private readonly (string File, int Label)[] _pictures;

    public TrainerPredictTests()
    {
        var net = TrainedMnist.Network.Clone();
        _model = Path.Combine(Dir, "digits.model");
        ModelFile.Save(net, _model);

        // Three test digits the network reads confidently, drawn as a user would hand them in.
        var test = TrainedMnist.Test;
        var chosen = Enumerable.Range(0, 200).Select(i => (Index: i, Raw: net.Predict(test.Pixels(i))))
            .Where(c => c.Raw.Label == test.Label(c.Index) && c.Raw.Confidence > 0.99f).Take(3).ToArray();
        chosen.Should().HaveCount(3);
        _pictures =
        [
            (Write("light-on-dark.png", Encode(Render(test.Pixels(chosen[0].Index), 56, 56, darkOnLight: false), SKEncodedImageFormat.Png)), chosen[0].Raw.Label),
            (Write("photo.jpg", Encode(Render(test.Pixels(chosen[1].Index), 300, 200, darkOnLight: true), SKEncodedImageFormat.Jpeg)), chosen[1].Raw.Label),
            (Write("scan.bmp", Bmp(Render(test.Pixels(chosen[2].Index), 100, 140, darkOnLight: true))), chosen[2].Raw.Label),
        ];
    }

    [Fact]
    public void Each_picture_gets_its_digit_probability_and_runner_up()
    {
        var (code, output, err) = TrainerCliTests.Run(["predict", "--model", _model, .. _pictures.Select(p => p.File)]);
        code.Should().Be(0, err);
        err.Should().BeEmpty();
        var lines = output.TrimEnd().Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        lines.Should().HaveCount(3);
        for (int i = 0; i < 3; i++)
        {
            lines[i].Should().MatchRegex($@"^{System.Text.RegularExpressions.Regex.Escape(_pictures[i].File)}: {_pictures[i].Label} \(\d+\.\d%\), runner-up [0-9] \(\d+\.\d%\)$");
        }
    }

    [Fact]
    public void Json_prints_one_object_per_line_with_file_label_and_ten_probabilities()
    {
        var (code, output, err) = TrainerCliTests.Run(["predict", "--json", "--model", _model, .. _pictures.Select(p => p.File)]);
        code.Should().Be(0, err);
        var lines = output.TrimEnd().Split('\n');
        lines.Should().HaveCount(3);
        for (int i = 0; i < 3; i++)
        {
            using var doc = JsonDocument.Parse(lines[i]);
            var root = doc.RootElement;
            root.EnumerateObject().Select(p => p.Name).Should().Equal("file", "label", "probabilities");
            root.GetProperty("file").GetString().Should().Be(_pictures[i].File);
            root.GetProperty("label").GetInt32().Should().Be(_pictures[i].Label);
            var probabilities = root.GetProperty("probabilities").EnumerateArray().Select(p => p.GetDouble()).ToArray();
            probabilities.Should().HaveCount(10).And.OnlyContain(p => p >= 0 && p <= 1);
            probabilities.Sum().Should().BeApproximately(1, 1e-5);
            Array.IndexOf(probabilities, probabilities.Max()).Should().Be(_pictures[i].Label);
        }
    }

    [Fact]
    public void Bad_files_get_one_error_line_each_the_others_are_still_predicted_and_the_exit_code_is_1()
    {
        string garbage = Write("notes.png", "not an image at all"u8.ToArray());
        string truncated = Write("cut.png", File.ReadAllBytes(_pictures[0].File)[..40]);
        string missing = Path.Combine(Dir, "missing.png");
        var (code, output, err) = TrainerCliTests.Run("predict", "--model", _model, garbage, _pictures[0].File, missing, truncated, _pictures[1].File);

        code.Should().Be(1);
        output.TrimEnd().Split('\n').Select(l => l.Split(':')[0]).Should().Equal(_pictures[0].File, _pictures[1].File);
        var errors = err.TrimEnd().Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        errors.Should().HaveCount(3).And.OnlyContain(l => l.StartsWith("error: ", StringComparison.Ordinal));
        errors[0].Should().StartWith($"error: {garbage}: ");
        errors[1].Should().Be($"error: {missing}: file not found");
        errors[2].Should().StartWith($"error: {truncated}: ");
    }

    [Fact]
    public void Fifos_devices_sockets_and_link_loops_are_refused_by_name_without_reading_and_the_rest_is_predicted()
    {
        if (OperatingSystem.IsWindows()) return;
        string fifo = Path.Combine(Dir, "f");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", fifo)) mkfifo.WaitForExit();
        string loop = Path.Combine(Dir, "loop.png");
        File.CreateSymbolicLink(loop, loop);
        string socketPath = Path.Combine(Dir, "s.png");
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        socket.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(socketPath));
        string big = Path.Combine(Dir, "big.png");
        using (var sparse = File.Create(big)) sparse.SetLength(150_000_000); // sparse: costs no disk

        string[] bad = [fifo, "/dev/zero", loop, socketPath, big, "/proc/self/mem"];
        var (code, output, err) = TrainerCliTests.Run(["predict", "--model", _model, .. bad, _pictures[0].File]);

        code.Should().Be(1);
        output.TrimEnd().Split('\n').Select(l => l.Split(':')[0]).Should().Equal(_pictures[0].File);
        var errors = err.TrimEnd().Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        errors.Should().HaveCount(bad.Length);
        for (int i = 0; i < bad.Length; i++) errors[i].Should().StartWith($"error: {bad[i]}: ");
        errors[0].Should().Contain("FIFO");
        errors[1].Should().Contain("character device");
        errors[2].Should().Contain("loop of symbolic links");
        errors[3].Should().Contain("socket");
        errors[4].Should().Contain("150,000,000 bytes").And.Contain("100,000,000");
    }

    /// <summary>Response files are off: a picture named "@…" (typed relative to the current folder) is read as a picture.</summary>
    [Fact]
    public void A_picture_whose_name_starts_with_at_is_predicted()
    {
        string name = $"@{Guid.NewGuid():N}.png";
        File.Copy(_pictures[0].File, name);
        try
        {
            var (code, output, err) = TrainerCliTests.Run("predict", "--model", _model, name);
            code.Should().Be(0, err);
            output.Should().StartWith($"{name}: {_pictures[0].Label} (");
        }
        finally
        {
            File.Delete(name);
        }
    }

    /// <summary>A network of one class has no runner-up: its sentence names the class alone, its JSON has one probability.</summary>
    [Fact]
    public void A_one_class_network_predicts_without_a_runner_up()
    {
        string model = Path.Combine(Dir, "one.model");
        ModelFile.Save(new Sequential<float>(new Flatten<float>(), new Linear<float>(784, 1, new Random(1))), model);
        var (code, output, err) = TrainerCliTests.Run("predict", "--model", model, _pictures[0].File);
        code.Should().Be(0, err);
        output.TrimEnd().Should().Be($"{_pictures[0].File}: 0 (100.0%)");
        (code, output, err) = TrainerCliTests.Run("predict", "--json", "--model", model, _pictures[0].File);
        code.Should().Be(0, err);
        using var doc = JsonDocument.Parse(output);
        doc.RootElement.GetProperty("label").GetInt32().Should().Be(0);
        doc.RootElement.GetProperty("probabilities").EnumerateArray().Select(p => p.GetDouble()).Should().Equal(1.0);
    }

    [Fact]
    public void An_empty_file_name_is_a_usage_error()
    {
        var (code, output, err) = TrainerCliTests.Run("predict", "--model", _model, "");
        code.Should().Be(2);
        output.Should().BeEmpty();
        err.TrimEnd().Should().StartWith("error: ").And.Contain("empty").And.NotContain("\n");
    }

    [Fact]
    public void Pictures_without_ink_get_no_ink_found_and_the_rest_is_predicted()
    {
        byte[] Page(int w, int h, byte grey, Action<byte[]>? draw = null)
        {
            var pixels = Enumerable.Repeat(grey, w * h).ToArray();
            draw?.Invoke(pixels);
            return Pictures.Encode(Pictures.Rgba(pixels), w, h);
        }

        string[] blank =
        [
            Write("white.png", Page(40, 30, 255)),
            Write("black.png", Page(40, 30, 0)),
            Write("grey.png", Page(40, 30, 128)),
            Write("one.png", Page(1, 1, 0)),
            Write("dot.png", Page(300, 300, 255, p => p[150 * 300 + 150] = 0)),
        ];
        var (code, output, err) = TrainerCliTests.Run(["predict", "--model", _model, .. blank, _pictures[2].File]);

        code.Should().Be(1);
        output.TrimEnd().Split('\n').Select(l => l.Split(':')[0]).Should().Equal(_pictures[2].File);
        var errors = err.TrimEnd().Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        errors.Should().HaveCount(blank.Length);
        for (int i = 0; i < blank.Length; i++) errors[i].Should().StartWith($"error: {blank[i]}: no ink found (");
        errors[4].Should().Contain("1×1 speck in a 300×300 picture");
    }

    [Fact]
    public void A_missing_model_is_one_error_and_exit_code_1()
    {
        var (code, output, err) = TrainerCliTests.Run("predict", "--model", Path.Combine(Dir, "none.model"), _pictures[0].File);
        code.Should().Be(1);
        output.Should().BeEmpty();
        err.TrimEnd().Should().StartWith("error: ").And.Contain("none.model").And.NotContain("\n");
    }

    private string Write(string name, byte[] bytes)
    {
        string path = Path.Combine(Dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>An MNIST digit scaled to fill the shorter side of a width×height grey page, centred.</summary>
    private static SKBitmap Render(ReadOnlySpan<byte> mnist, int width, int height, bool darkOnLight)
    {
        using var digit = new SKBitmap(new SKImageInfo(28, 28, SKColorType.Gray8, SKAlphaType.Opaque));
        var pixels = digit.GetPixelSpan();
        for (int y = 0; y < 28; y++) for (int x = 0; x < 28; x++) pixels[y * digit.RowBytes + x] = darkOnLight ? (byte)(255 - mnist[y * 28 + x]) : mnist[y * 28 + x];
        var page = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using var canvas = new SKCanvas(page);
        canvas.Clear(darkOnLight ? SKColors.White : SKColors.Black);
        int side = Math.Min(width, height);
        using var image = SKImage.FromBitmap(digit);
        canvas.DrawImage(image, SKRect.Create((width - side) / 2f, (height - side) / 2f, side, side), new SKSamplingOptions(SKCubicResampler.Mitchell));
        return page;
    }

    private static byte[] Encode(SKBitmap bitmap, SKEncodedImageFormat format)
    {
        using (bitmap)
        {
            using var data = bitmap.Encode(format, 95);
            return data.ToArray();
        }
    }

    /// <summary>A 24-bit BMP (SkiaSharp reads BMP but does not write it).</summary>
    private static byte[] Bmp(SKBitmap bitmap)
    {
        using (bitmap)
        {
            int w = bitmap.Width, h = bitmap.Height, stride = (3 * w + 3) & ~3;
            var bytes = new byte[54 + stride * h];
            var s = bytes.AsSpan();
            "BM"u8.CopyTo(s);
            BitConverter.TryWriteBytes(s[2..], bytes.Length);
            BitConverter.TryWriteBytes(s[10..], 54);
            BitConverter.TryWriteBytes(s[14..], 40);
            BitConverter.TryWriteBytes(s[18..], w);
            BitConverter.TryWriteBytes(s[22..], h);
            BitConverter.TryWriteBytes(s[26..], (short)1);
            BitConverter.TryWriteBytes(s[28..], (short)24);
            for (int y = 0; y < h; y++)
            {
                for (int x = 0; x < w; x++)
                {
                    var c = bitmap.GetPixel(x, h - 1 - y); // bottom-up rows
                    int o = 54 + y * stride + 3 * x;
                    (bytes[o], bytes[o + 1], bytes[o + 2]) = (c.Blue, c.Green, c.Red);
                }
            }

            return bytes;
        }
    }
}
