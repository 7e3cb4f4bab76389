using LeNetSharp.Imaging;
using LeNetSharp.Inference;
using LeNetSharp.Persistence;

namespace LeNetSharp.Web;

/// <summary>
/// The drawing-page sample: a local web server with one page (draw a digit, watch the probabilities) and a JSON API.
/// <c>dotnet run -c Release --project samples/LeNetSharp.Web [-- --model lenet.model --urls http://127.0.0.1:5000]</c>
/// </summary>
public sealed class Program
{
    private Program()
    {
    }

    /// <summary>Where the server listens unless <c>--urls</c> (or ASPNETCORE_URLS) says otherwise: loopback only.</summary>
    public const string DefaultUrl = "http://127.0.0.1:5000";

    /// <summary>Request bodies above this many bytes (1 MB) get 413.</summary>
    public const int MaxBodyBytes = 1 << 20;

    /// <summary>The largest uploaded picture decoded: 4 megapixels (a 280×280 drawing needs 0.08); checked from its header.</summary>
    public const long MaxImagePixels = 4_000_000;

    /// <summary>The largest <c>--pool</c>: the library's <see cref="Predictor.MaxConcurrency"/>.</summary>
    public const int MaxPool = Predictor.MaxConcurrency;

    private static readonly string[] Options = ["model", "urls", "data", "pool", "allowed-hosts", "environment", "contentRoot", "applicationName"];

    private static readonly string Usage = $"""
        usage: LeNetSharp.Web [--model PATH] [--urls URLS] [--data DIR] [--pool N] [--allowed-hosts HOSTS]

          --model PATH   model file made by the trainer (default lenet.model), the tutorial's .npz weights or an .onnx
                         LeNet, picked by extension as the trainer does
          --urls URLS    where to listen (default {DefaultUrl}: this machine only; http://0.0.0.0:5000 serves
                         others); ASPNETCORE_URLS works too
          --data DIR     MNIST folder, to report the model's test accuracy (default data/mnist; skipped when absent)
          --pool N       network copies serving requests at once, 1..{MaxPool} (default: one per processor); as many
                         uploaded pictures are decoded at once
          --allowed-hosts HOSTS
                         Host names served, comma-separated, no ports (e.g. digits.example,*.example.org; * for any);
                         default localhost,127.0.0.1,[::1] when listening on loopback only, any otherwise; another
                         Host gets 400
        Uploads: {ImageDecoder.Formats}, the body itself or the one file of a multipart/form-data form, at most
        {MaxBodyBytes:N0} bytes and {MaxImagePixels / 1_000_000} megapixels.
        ASP.NET Core's --environment, --contentRoot, --applicationName and --Logging:... settings pass through too.
        Options may also be written --name=value (any ASP.NET Core setting that way); nothing else is accepted.
        Exit codes: 0 after a clean shutdown, 1 when the model cannot be read or the address is taken, 2 on bad usage.
        """;

    /// <summary>Entry point: 0 after a clean shutdown, 1 when the model cannot be read, 2 on bad usage or a missing model.</summary>
    /// <param name="args">Options (see the usage text).</param>
    /// <returns>The process exit code.</returns>
    public static int Main(string[] args) => Run(args, Console.Out, Console.Error);

    /// <summary>Builds, checks and runs the server until it is stopped (the tests call this).</summary>
    /// <param name="args">Options (see the usage text).</param>
    /// <param name="stdout">Where the usage text goes.</param>
    /// <param name="stderr">Where the one-line error goes.</param>
    /// <returns>The exit code.</returns>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Any(a => a is "--help" or "-h" or "-?"))
        {
            stdout.WriteLine(Usage);
            return 0;
        }

        if (CheckUsage(args) is string problem)
        {
            stderr.WriteLine($"error: {problem} (--help for usage)");
            return 2;
        }

        var app = Build(args);
        var settings = app.Services.GetRequiredService<DigitAppSettings>();
        if (!File.Exists(settings.ModelPath))
        {
            stderr.WriteLine(
                $"error: no model file at {settings.ModelPath}; make one with the trainer's main job: dotnet run -c Release --project samples/LeNetSharp.Trainer");
            return 2;
        }

        try
        {
            app.Services.GetRequiredService<DigitModel>(); // load now: a bad file fails here, not on the first request
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ModelFormatException or UnauthorizedAccessException or ArgumentException)
        {
            stderr.WriteLine($"error: {e.Message}");
            return 1;
        }

        try
        {
            app.Run();
        }
        catch (IOException e)
        {
            // Kestrel reports a taken or unavailable address as an IOException ("Failed to bind to address …").
            stderr.WriteLine($"error: {e.Message}");
            return 1;
        }
        catch (FormatException e)
        {
            // A malformed --urls ("Invalid url: 'garbage'") is bad usage.
            stderr.WriteLine($"error: --urls: {e.Message.ReplaceLineEndings(" ")}");
            return 2;
        }

        return 0;
    }

    /// <summary>Null when <paramref name="args"/> are only the documented options, each with a value; else what is wrong.</summary>
    private static string? CheckUsage(string[] args)
    {
        for (int i = 0; i < args.Length; i++)
        {
            string arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal) || arg.Length == 2) return $"unexpected argument '{arg}'";
            int equals = arg.IndexOf('=', StringComparison.Ordinal);
            string name = equals < 0 ? arg[2..] : arg[2..equals];
            if (equals < 0 && !Options.Contains(name, StringComparer.OrdinalIgnoreCase) && !name.StartsWith("Logging:", StringComparison.OrdinalIgnoreCase))
            {
                return $"unknown option '--{name}'; expected {string.Join(", ", Options.Select(o => "--" + o))}";
            }

            string? value = equals >= 0 ? arg[(equals + 1)..] : i + 1 < args.Length ? args[++i] : null;
            if (equals < 0 && (string.IsNullOrEmpty(value) || value.StartsWith("--", StringComparison.Ordinal)))
            {
                return $"--{name} needs a value, got {(value is null ? "nothing" : $"'{value}'")}";
            }

            if (name.Equals("pool", StringComparison.OrdinalIgnoreCase)
                && !(int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int pool) && pool is >= 1 and <= MaxPool))
            {
                return $"--pool must be a whole number from 1 to {MaxPool}, got '{value}'";
            }

            if (name.Equals("allowed-hosts", StringComparison.OrdinalIgnoreCase))
            {
                string[] hosts = Edge.SplitHosts(value ?? "", ',');
                if (hosts.Length == 0) return $"--allowed-hosts needs at least one host name, got '{value}'";
                foreach (string host in hosts)
                {
                    if (Edge.CheckHost(host) is string expected) return $"--allowed-hosts takes {expected}, got '{host}'";
                }
            }
        }

        return null;
    }

    /// <summary>
    /// Builds the server as <see cref="Run"/> does, without checking the model file or starting it (tests start it
    /// on a free port: <c>--urls http://127.0.0.1:0</c>). The model is loaded on the first request.
    /// </summary>
    /// <param name="args">Options (see the usage text); any ASP.NET Core setting as <c>--Key value</c> too.</param>
    /// <returns>The app, not started.</returns>
    public static WebApplication Build(string[] args) => DigitApp.Build(args);
}
