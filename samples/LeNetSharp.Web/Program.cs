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

    private const string Usage = """
        usage: LeNetSharp.Web [--model PATH] [--urls URLS] [--data DIR] [--pool N]

          --model PATH   model file made by the trainer (default lenet.model), or the tutorial's .npz weights
          --urls URLS    where to listen (default http://127.0.0.1:5000: this machine only)
          --data DIR     MNIST folder, to report the model's test accuracy (default data/mnist; skipped when absent)
          --pool N       network copies serving requests at once (default: one per processor)
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

        return 0;
    }

    /// <summary>
    /// Builds the server as <see cref="Run"/> does, without checking the model file or starting it (tests start it
    /// on a free port: <c>--urls http://127.0.0.1:0</c>). The model is loaded on the first request.
    /// </summary>
    /// <param name="args">Options (see the usage text); any ASP.NET Core setting as <c>--Key value</c> too.</param>
    /// <returns>The app, not started.</returns>
    public static WebApplication Build(string[] args) => DigitApp.Build(args);
}
