using System.Diagnostics;

namespace LeNetSharp.Web;

/// <summary>Settings read from the command line / configuration: <c>--model</c>, <c>--data</c>, <c>--pool</c>.</summary>
/// <param name="ModelPath">The model file (default lenet.model).</param>
/// <param name="DataDirectory">The MNIST folder used to measure the model's test accuracy at startup.</param>
/// <param name="Concurrency">Requests served at once, one network copy each (0 = one per processor).</param>
internal sealed record DigitAppSettings(string ModelPath, string DataDirectory, int Concurrency)
{
    public static DigitAppSettings From(IConfiguration configuration) => new(
        configuration["model"] is { Length: > 0 } model ? model : "lenet.model",
        configuration["data"] is { Length: > 0 } data ? data : Path.Combine("data", "mnist"),
        int.TryParse(configuration["pool"], out int pool) && pool > 0 ? pool : 0);
}

/// <summary>Builds the web application: services, request logging, the edge checks, the page and the API.</summary>
internal static class DigitApp
{
    /// <summary>Builds (does not start) the app; <c>Program.Main</c> and the browser tests both come through here.</summary>
    public static WebApplication Build(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["http_ports"]))
        {
            builder.WebHost.UseUrls(Program.DefaultUrl); // loopback only unless asked otherwise
        }

        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        });
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning); // our own line per request says enough
        // A failed start (e.g. the port is taken) ends as one `error:` line from Program.Run, not a logged stack trace.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = DigitApi.MaxBodyBytes);
        builder.Services.AddSingleton(sp => DigitAppSettings.From(sp.GetRequiredService<IConfiguration>()));
        builder.Services.AddSingleton<DigitModel>();
        Edge.Add(builder); // the log line, the security headers and the Host check, before anything else

        var app = builder.Build();
        app.Use(Edge.HostAccepted);
        app.Use(DigitApi.MethodNotAllowedAsJson);
        DigitApi.Map(app);
        return app;
    }

    /// <summary>
    /// One structured log entry per request (method, path, status, body size, time taken), also for a request the
    /// client gave up on (logged as aborted, at the time it was noticed); an unexpected failure becomes a one-line JSON
    /// 500 and the server goes on serving.
    /// </summary>
    public static async Task LogRequests(HttpContext context, RequestDelegate next)
    {
        long start = Stopwatch.GetTimestamp();
        var log = context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("LeNetSharp.Web.Requests");
        try
        {
            await next(context);
        }
        catch (Exception e) when (!context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
        {
            log.LogError(e, "{Method} {Path} failed", context.Request.Method, context.Request.Path.Value);
            context.Response.Clear();
            context.Response.StatusCode = StatusCodes.Status500InternalServerError;
            await context.Response.WriteAsJsonAsync(new { error = "internal error; the server log has the details" });
        }
        catch (Exception) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client is gone: nobody reads an answer, but the request still gets its log line.
        }

        string method = context.Request.Method, path = context.Request.Path.Value ?? "";
        long bytes = context.Request.ContentLength ?? 0;
        double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        if (context.RequestAborted.IsCancellationRequested)
        {
            log.LogInformation("{Method} {Path} aborted by the client {RequestBytes} B {ElapsedMs:F1} ms", method, path, bytes, ms);
        }
        else
        {
            log.LogInformation("{Method} {Path} {StatusCode} {RequestBytes} B {ElapsedMs:F1} ms", method, path, context.Response.StatusCode, bytes, ms);
        }
    }
}
