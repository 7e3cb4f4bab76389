using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using LeNetSharp.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace LeNetSharp.Tests.Web;

/// <summary>
/// What every request meets: HEAD wherever GET is served, the Host check (loopback names only on a loopback-bound
/// server, DNS rebinding refused) and the security headers on every response, errors included.
/// </summary>
[Collection(WebCollection.Name)]
public class EdgeTests(WebFixture web)
{
    private readonly HttpClient _client = web.Factory.CreateClient();

    public static readonly TheoryData<string> GetRoutes = new() { "/", "/healthz", "/api/model" };

    private static async Task<HttpResponseMessage> SendAsync(HttpClient client, HttpMethod method, string path, string? host = null)
    {
        var request = new HttpRequestMessage(method, path);
        if (host is not null) request.Headers.Host = host;
        return await client.SendAsync(request);
    }

    /// <summary>Sends <paramref name="request"/> as it is to the real server and returns all it answers (Connection: close).</summary>
    private static async Task<string> RawAsync(Uri server, string request)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, server.Port, timeout.Token);
        await socket.SendAsync(Encoding.ASCII.GetBytes(request), timeout.Token);
        using var answer = new MemoryStream();
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = await socket.ReceiveAsync(buffer, timeout.Token)) > 0) answer.Write(buffer, 0, read);
        return Encoding.UTF8.GetString(answer.ToArray());
    }

    private static void ShouldHaveSecurityHeaders(HttpResponseMessage response)
    {
        response.Headers.GetValues("X-Content-Type-Options").Should().Equal("nosniff");
        response.Headers.GetValues("X-Frame-Options").Should().Equal("DENY");
        response.Headers.GetValues("Content-Security-Policy").Should().Equal("frame-ancestors 'none'");
    }

    [Theory]
    [MemberData(nameof(GetRoutes))]
    public async Task Head_answers_wherever_get_does_with_the_same_headers_and_no_body(string path)
    {
        using var get = await _client.GetAsync(path);
        using var head = await SendAsync(_client, HttpMethod.Head, path);

        head.StatusCode.Should().Be(HttpStatusCode.OK);
        head.Content.Headers.ContentType.Should().Be(get.Content.Headers.ContentType);
        if (path == "/") head.Content.Headers.ContentLength.Should().Be(get.Content.Headers.ContentLength); // JSON is sent chunked
        (await head.Content.ReadAsByteArrayAsync()).Should().BeEmpty();
        ShouldHaveSecurityHeaders(head);
    }

    [Fact]
    public async Task Head_on_the_real_server_sends_the_headers_and_no_body()
    {
        var server = await web.KestrelAsync();
        string page = await RawAsync(server, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        string pageLength = page.Split("\r\n").Single(l => l.StartsWith("Content-Length: ", StringComparison.Ordinal));

        foreach (string path in new[] { "/", "/healthz", "/api/model" })
        {
            string answer = await RawAsync(server, $"HEAD {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");

            answer.Should().StartWith("HTTP/1.1 200 OK\r\n", path);
            answer.Should().EndWith("\r\n\r\n", $"HEAD {path} has no body");
            answer.Should().Contain("\r\nX-Content-Type-Options: nosniff\r\n").And.Contain("\r\nX-Frame-Options: DENY\r\n");
            if (path == "/") answer.Should().Contain($"\r\n{pageLength}\r\n").And.Contain("Content-Type: text/html");
            else answer.Should().Contain("Content-Type: application/json");
        }
    }

    [Fact]
    public async Task Head_on_the_post_only_route_gets_405_naming_post()
    {
        using var response = await SendAsync(_client, HttpMethod.Head, "/api/predict");

        response.StatusCode.Should().Be(HttpStatusCode.MethodNotAllowed);
        response.Content.Headers.Allow.Should().Equal("POST");
    }

    [Theory]
    [InlineData("localhost")]
    [InlineData("localhost:5000")]
    [InlineData("LOCALHOST:5000")]
    [InlineData("127.0.0.1")]
    [InlineData("127.0.0.1:5000")]
    [InlineData("[::1]")]
    [InlineData("[::1]:5000")]
    public async Task A_loopback_bound_server_answers_to_the_loopback_names_with_or_without_a_port(string host)
    {
        using var response = await SendAsync(_client, HttpMethod.Get, "/healthz", host);

        response.StatusCode.Should().Be(HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("evil.example")]
    [InlineData("evil.example:5000")]
    [InlineData("localhost.evil.example")]
    [InlineData("127.0.0.1.nip.io:5000")]
    [InlineData("192.168.1.20:5000")]
    public async Task A_loopback_bound_server_refuses_another_host_with_a_json_400(string host)
    {
        foreach (string path in new[] { "/", "/api/model", "/healthz" })
        {
            using var response = await SendAsync(_client, HttpMethod.Get, path, host);

            response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
            HostileInputTests.OneLineError(await response.Content.ReadAsStringAsync()).Should()
                .Be($"Host '{host}' is not served here; this server answers to localhost, 127.0.0.1, [::1] (any port; --allowed-hosts changes the list)");
            ShouldHaveSecurityHeaders(response);
        }

        using var predict = new HttpRequestMessage(HttpMethod.Post, "/api/predict") { Content = WebApiTests.Pixels(web.Test.Pixels(0).ToArray().Select(p => (double)p)) };
        predict.Headers.Host = host;
        using var refused = await _client.SendAsync(predict);
        refused.StatusCode.Should().Be(HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task The_real_server_refuses_a_rebinding_host_and_serves_a_loopback_name()
    {
        var server = await web.KestrelAsync();

        string refused = await RawAsync(server, "GET /api/model HTTP/1.1\r\nHost: evil.example:" + server.Port + "\r\nConnection: close\r\n\r\n");
        string served = await RawAsync(server, "GET /healthz HTTP/1.1\r\nHost: localhost:" + server.Port + "\r\nConnection: close\r\n\r\n");

        refused.Should().StartWith("HTTP/1.1 400 Bad Request\r\n").And.Contain("\"error\":\"Host 'evil.example:")
            .And.Contain("\r\nX-Content-Type-Options: nosniff\r\n").And.NotContain("parameterCount");
        served.Should().StartWith("HTTP/1.1 200 OK\r\n");
    }

    /// <summary>The in-process app with extra settings; its requests never need the model (404s and refusals).</summary>
    private WebApplicationFactory<Program> With(params (string Key, string Value)[] settings) =>
        web.Factory.WithWebHostBuilder(b =>
        {
            foreach (var (key, value) in settings) b.UseSetting(key, value);
        });

    private static async Task<HttpStatusCode> StatusForHostAsync(WebApplicationFactory<Program> factory, string host)
    {
        using var response = await SendAsync(factory.CreateClient(), HttpMethod.Get, "/no-such-page", host);
        return response.StatusCode; // 404 when the host is served, 400 when refused
    }

    [Theory]
    [InlineData("http://0.0.0.0:5000")]
    [InlineData("http://[::]:5000")]
    [InlineData("http://*:5000")]
    [InlineData("http://+:5000")]
    [InlineData("http://my-machine:5000")]
    [InlineData("http://127.0.0.1:5000;http://0.0.0.0:6000")]
    public async Task A_server_bound_beyond_loopback_answers_to_any_host(string urls)
    {
        await using var factory = With(("urls", urls));

        (await StatusForHostAsync(factory, "digits.example:5000")).Should().Be(HttpStatusCode.NotFound);
        (await StatusForHostAsync(factory, "localhost")).Should().Be(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task Listening_on_every_interface_by_port_or_by_kestrel_endpoint_answers_to_any_host()
    {
        await using (var ports = With(("http_ports", "5000"), ("urls", "")))
        {
            (await StatusForHostAsync(ports, "digits.example")).Should().Be(HttpStatusCode.NotFound);
        }

        await using var endpoint = With(("Kestrel:Endpoints:Public:Url", "http://0.0.0.0:5000"));
        (await StatusForHostAsync(endpoint, "digits.example")).Should().Be(HttpStatusCode.NotFound);
    }

    [Theory]
    [InlineData("http://localhost:5000", "127.0.0.1")]
    [InlineData("http://127.0.0.2:5000", "127.0.0.2:5000")]
    [InlineData("http://[::1]:5000", "[::1]:5000")]
    public async Task A_server_bound_to_another_loopback_address_answers_to_it_too(string urls, string served)
    {
        await using var factory = With(("urls", urls));

        (await StatusForHostAsync(factory, served)).Should().Be(HttpStatusCode.NotFound);
        (await StatusForHostAsync(factory, "localhost:5000")).Should().Be(HttpStatusCode.NotFound);
        (await StatusForHostAsync(factory, "evil.example")).Should().Be(HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Allowed_hosts_replace_the_default_list_on_any_binding()
    {
        await using var open = With(("urls", "http://0.0.0.0:5000"), ("allowed-hosts", "digits.example, *.lab.example"));
        (await StatusForHostAsync(open, "digits.example:5000")).Should().Be(HttpStatusCode.NotFound);
        (await StatusForHostAsync(open, "pi.lab.example")).Should().Be(HttpStatusCode.NotFound);
        (await StatusForHostAsync(open, "evil.example")).Should().Be(HttpStatusCode.BadRequest);
        (await StatusForHostAsync(open, "localhost")).Should().Be(HttpStatusCode.BadRequest);

        await using var aspNet = With(("AllowedHosts", "digits.example;localhost"));
        (await StatusForHostAsync(aspNet, "digits.example")).Should().Be(HttpStatusCode.NotFound);
        (await StatusForHostAsync(aspNet, "127.0.0.1")).Should().Be(HttpStatusCode.BadRequest);

        await using var any = With(("allowed-hosts", "*"));
        (await StatusForHostAsync(any, "evil.example")).Should().Be(HttpStatusCode.NotFound);
    }

    [Theory]
    [InlineData("")]
    [InlineData(",")]
    [InlineData("digits.example:5000")]
    [InlineData("http://digits.example")]
    [InlineData("[::1]:5000")]
    [InlineData("digits example")]
    public void A_bad_allowed_hosts_list_is_bad_usage(string hosts)
    {
        var stderr = new StringWriter();

        int code = Program.Run(["--model", web.ModelPath, "--data", "/nonexistent", $"--allowed-hosts={hosts}"], new StringWriter(), stderr);

        code.Should().Be(2, stderr.ToString());
        stderr.ToString().Should().StartWith("error: --allowed-hosts ");
        stderr.ToString().TrimEnd().Should().NotContain("\n");
    }

    [Fact]
    public async Task Every_answer_carries_the_security_headers_errors_included()
    {
        var requests = new (Func<HttpRequestMessage> Request, HttpStatusCode Status)[]
        {
            (() => new(HttpMethod.Get, "/"), HttpStatusCode.OK),
            (() => new(HttpMethod.Get, "/api/model"), HttpStatusCode.OK),
            (() => new(HttpMethod.Get, "/healthz"), HttpStatusCode.OK),
            (() => new(HttpMethod.Post, "/api/predict") { Content = WebApiTests.Pixels(web.Test.Pixels(0).ToArray().Select(p => (double)p)) }, HttpStatusCode.OK),
            (() => new(HttpMethod.Post, "/api/predict") { Content = new StringContent("{", Encoding.UTF8, "application/json") }, HttpStatusCode.BadRequest),
            (() => new(HttpMethod.Get, "/no-such-page"), HttpStatusCode.NotFound),
            (() => new(HttpMethod.Delete, "/api/predict"), HttpStatusCode.MethodNotAllowed),
            (() => new(HttpMethod.Post, "/api/predict") { Content = WebApiTests.Png(new byte[Program.MaxBodyBytes + 1]) }, HttpStatusCode.RequestEntityTooLarge),
            (() => new(HttpMethod.Post, "/api/predict") { Content = new StringContent("7") }, HttpStatusCode.UnsupportedMediaType),
        };

        foreach (var (request, status) in requests)
        {
            using var message = request();
            using var response = await _client.SendAsync(message);
            response.StatusCode.Should().Be(status, $"{message.Method} {message.RequestUri}");
            ShouldHaveSecurityHeaders(response);
        }
    }

    [Fact]
    public async Task A_failure_inside_the_app_gets_its_500_with_the_security_headers()
    {
        await using var factory = web.Factory.WithWebHostBuilder(b => b.ConfigureServices(s =>
            s.AddSingleton<IStartupFilter>(new Respond(_ => throw new InvalidOperationException("boom")))));

        using var response = await factory.CreateClient().GetAsync("/healthz");

        response.StatusCode.Should().Be(HttpStatusCode.InternalServerError);
        HostileInputTests.OneLineError(await response.Content.ReadAsStringAsync()).Should().Contain("internal error");
        ShouldHaveSecurityHeaders(response);
    }

    [Theory]
    [InlineData("default-src 'self'", "default-src 'self'; frame-ancestors 'none'")]
    [InlineData("frame-ancestors *; img-src data:", "img-src data:; frame-ancestors 'none'")]
    [InlineData("default-src 'none'; FRAME-ANCESTORS https://a.example;", "default-src 'none'; frame-ancestors 'none'")]
    public async Task A_content_security_policy_of_the_app_keeps_its_directives_and_forbids_framing(string policy, string sent)
    {
        await using var factory = web.Factory.WithWebHostBuilder(b => b.ConfigureServices(s =>
            s.AddSingleton<IStartupFilter>(new Respond(context =>
            {
                context.Response.Headers.ContentSecurityPolicy = policy;
                return context.Response.WriteAsync("framed?");
            }))));

        using var response = await factory.CreateClient().GetAsync("/");

        response.Headers.GetValues("Content-Security-Policy").Should().Equal(sent);
        response.Headers.GetValues("X-Frame-Options").Should().Equal("DENY");
    }

    /// <summary>Answers every request that passed the host filter with <paramref name="respond"/>, ahead of the app's routes.</summary>
    private sealed class Respond(RequestDelegate respond) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use((HttpContext context, RequestDelegate _) => respond(context));
            next(app);
        };
    }
}
