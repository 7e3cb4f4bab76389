using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.HostFiltering;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace LeNetSharp.Web;

/// <summary>
/// What every request goes through before the routes: its log line, the security headers, HEAD without a body and
/// the Host check (ASP.NET Core's host filtering, configured from the address the server is bound to).
/// </summary>
internal static class Edge
{
    /// <summary>The names a browser on this machine uses for a loopback server (any port).</summary>
    private static readonly string[] LoopbackHosts = ["localhost", "127.0.0.1", "[::1]"];

    /// <summary>The directive refusing to let any page frame a response (with <c>X-Frame-Options: DENY</c> for older browsers).</summary>
    private const string NoFraming = "frame-ancestors 'none'";

    /// <summary>Set on a request that the host filter let through (a 400 without it is the filter's refusal).</summary>
    private static readonly object HostAcceptedKey = new();

    /// <summary>
    /// Configures the host filter from <c>--allowed-hosts</c>, ASP.NET Core's <c>AllowedHosts</c> or the bound
    /// address (see <see cref="AllowedHosts"/>), and puts the log line and the security headers outside it.
    /// </summary>
    public static void Add(WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<HostFilteringOptions>().Configure<IConfiguration>((options, configuration) =>
        {
            options.AllowedHosts = AllowedHosts(configuration);
            options.IncludeFailureMessage = false; // RefusedHostAsJson writes the error, in JSON like every other
        });

        // ASP.NET Core runs its host filter first of all (a startup filter); this one goes before it, so that a refused
        // Host still gets its log line, the security headers and a JSON error.
        builder.Services.Insert(0, ServiceDescriptor.Singleton<IStartupFilter>(new OutsideHostFilter()));
    }

    /// <summary>Middleware, first in the app's own pipeline (inside the host filter): marks the request as let through.</summary>
    public static Task HostAccepted(HttpContext context, RequestDelegate next)
    {
        context.Items[HostAcceptedKey] = true;
        return next(context);
    }

    /// <summary>
    /// The Host names served: <c>--allowed-hosts a,b</c> when given, else ASP.NET Core's <c>AllowedHosts</c>
    /// (<c>a;b</c>) when set, else the loopback names (and the bound loopback address) when every address listened on
    /// is a loopback one, else any (<c>*</c>). Ports are not compared (the host filter ignores them).
    /// </summary>
    private static List<string> AllowedHosts(IConfiguration configuration)
    {
        if (configuration["allowed-hosts"] is { Length: > 0 } hosts) return [.. SplitHosts(hosts, ',')];
        if (configuration["AllowedHosts"] is { Length: > 0 } aspNet) return [.. SplitHosts(aspNet, ';')];
        return LoopbackAddresses(configuration) is { } bound ? [.. LoopbackHosts.Union(bound, StringComparer.OrdinalIgnoreCase)] : ["*"];
    }

    /// <summary>The entries of a host list, trimmed, empty ones dropped.</summary>
    internal static string[] SplitHosts(string list, char separator) =>
        list.Split(separator, StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    /// <summary>Null when <paramref name="host"/> is a host name or pattern the filter can match; else what is wrong with it.</summary>
    internal static string? CheckHost(string host) =>
        host.Contains("://", StringComparison.Ordinal) || host.Contains('/') ? "a host name, not a URL"
        : (host.StartsWith('[') ? host.Contains("]:", StringComparison.Ordinal) : host.Contains(':')) ? "a host name without a port (ports are not compared)"
        : host.Any(char.IsWhiteSpace) ? "a host name without spaces"
        : null;

    /// <summary>
    /// The IP literals Kestrel listens on when every address is a loopback one (<c>localhost</c> adds none), or null
    /// when one is not (<c>0.0.0.0</c>, <c>[::]</c>, <c>*</c>, a machine name, a socket file, <c>--http_ports</c>).
    /// The addresses are Kestrel's endpoints from configuration when there are any, else <c>--urls</c>, else the default.
    /// </summary>
    private static List<string>? LoopbackAddresses(IConfiguration configuration)
    {
        string[] urls = [.. configuration.GetSection("Kestrel:Endpoints").GetChildren().Select(e => e["Url"]).OfType<string>()];
        if (urls.Length == 0)
        {
            if (configuration["urls"] is { Length: > 0 } list) urls = SplitHosts(list, ';');
            else if (!string.IsNullOrEmpty(configuration["http_ports"]) || !string.IsNullOrEmpty(configuration["https_ports"])) return null; // every interface
            else urls = [Program.DefaultUrl];
        }

        var literals = new List<string>();
        foreach (string url in urls)
        {
            BindingAddress address;
            try
            {
                address = BindingAddress.Parse(url);
            }
            catch (FormatException)
            {
                continue; // Kestrel refuses it when starting
            }

            if (address.IsUnixPipe || address.IsNamedPipe) return null;
            if (address.Host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) continue;
            if (!IPAddress.TryParse(address.Host.Trim('[', ']'), out var ip) || !IPAddress.IsLoopback(ip)) return null;
            literals.Add(ip.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{ip}]" : ip.ToString());
        }

        return literals;
    }

    /// <summary>
    /// Middleware: <c>X-Content-Type-Options: nosniff</c>, <c>X-Frame-Options: DENY</c> and <c>frame-ancestors
    /// 'none'</c> in the Content-Security-Policy on every response, errors included; set as the response starts, so
    /// that a handler's own policy is kept and merged.
    /// </summary>
    private static Task SecurityHeaders(HttpContext context, RequestDelegate next)
    {
        context.Response.OnStarting(static state =>
        {
            var headers = ((HttpResponse)state).Headers;
            headers.XContentTypeOptions = "nosniff";
            headers.XFrameOptions = "DENY";
            var policies = headers.ContentSecurityPolicy;
            headers.ContentSecurityPolicy = policies.Count == 0 ? NoFraming : new StringValues([.. policies.Select(p => WithoutFraming(p ?? ""))]);
            return Task.CompletedTask;
        }, context.Response);
        return next(context);
    }

    /// <summary>
    /// Middleware: a HEAD request (routed with GET) gets the status and headers GET would send, without the body.
    /// Kestrel drops a HEAD body itself; other servers (the in-process test server) may not.
    /// </summary>
    private static Task HeadWithoutBody(HttpContext context, RequestDelegate next)
    {
        if (HttpMethods.IsHead(context.Request.Method)) context.Response.Body = Stream.Null;
        return next(context);
    }

    /// <summary><paramref name="policy"/> with its own <c>frame-ancestors</c> directive, if any, replaced by <c>frame-ancestors 'none'</c>.</summary>
    private static string WithoutFraming(string policy) => string.Join("; ",
        policy.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Where(d => !d.Split(' ')[0].Equals("frame-ancestors", StringComparison.OrdinalIgnoreCase))
            .Append(NoFraming));

    /// <summary>Middleware, just outside the host filter: its bare 400 becomes a one-line JSON error naming the Host.</summary>
    private static async Task RefusedHostAsJson(HttpContext context, RequestDelegate next)
    {
        await next(context);
        if (context.Response.StatusCode != StatusCodes.Status400BadRequest || context.Response.HasStarted || context.Items.ContainsKey(HostAcceptedKey)) return;
        var allowed = context.RequestServices.GetRequiredService<IOptionsMonitor<HostFilteringOptions>>().CurrentValue.AllowedHosts;
        string host = context.Request.Headers.Host.ToString();
        await DigitApi.Error(
            context.RequestServices.GetRequiredService<ILogger<DigitModel>>(),
            StatusCodes.Status400BadRequest,
            $"Host '{DigitApi.Shorten(host)}' is not served here; this server answers to {string.Join(", ", allowed)} (any port; --allowed-hosts changes the list)")
            .ExecuteAsync(context);
    }

    /// <summary>Puts the log line, the security headers, HEAD without a body and the JSON form of a refused Host outside ASP.NET Core's host filter.</summary>
    private sealed class OutsideHostFilter : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(DigitApp.LogRequests);
            app.Use(SecurityHeaders);
            app.Use(HeadWithoutBody);
            app.Use(RefusedHostAsJson);
            next(app); // the host filter, then the app's own pipeline
        };
    }
}
