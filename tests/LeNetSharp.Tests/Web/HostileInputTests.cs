using System.Buffers.Binary;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using LeNetSharp.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using SkiaSharp;

namespace LeNetSharp.Tests.Web;

/// <summary>Hostile requests and command lines: each ends as one clear error, never a crash or an unbounded allocation.</summary>
[Collection(WebCollection.Name)]
public class HostileInputTests(WebFixture web)
{
    private readonly HttpClient _client = web.Factory.CreateClient();

    /// <summary>The message of a one-line <c>{"error": "…"}</c> body, checking that it is exactly that.</summary>
    internal static string OneLineError(string body)
    {
        body.Should().NotContain("\n");
        using var json = JsonDocument.Parse(body);
        json.RootElement.EnumerateObject().Select(p => p.Name).Should().Equal("error");
        return json.RootElement.GetProperty("error").GetString()!;
    }

    private static byte[] Chunk(string type, byte[] data)
    {
        var chunk = new byte[12 + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(chunk, data.Length);
        Encoding.ASCII.GetBytes(type, chunk.AsSpan(4));
        data.CopyTo(chunk, 8);
        BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(8 + data.Length), Crc(chunk.AsSpan(4, 4 + data.Length)));
        return chunk;
    }

    /// <summary>The PNG chunk CRC (CRC-32, polynomial 0xEDB88320).</summary>
    private static uint Crc(ReadOnlySpan<byte> bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320 : crc >> 1;
        }

        return ~crc;
    }

    /// <summary>A small PNG declaring 7000×7000 16-bit RGBA (49 megapixels), all rows zero: a decompression bomb.</summary>
    private static byte[] BombPng()
    {
        const int side = 7000;
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, side);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), side);
        ihdr[8] = 16; // bit depth
        ihdr[9] = 6;  // RGBA
        using var idat = new MemoryStream();
        using (var z = new ZLibStream(idat, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            var row = new byte[1 + side * 8]; // filter byte + 8 bytes a pixel
            for (int y = 0; y < side; y++) z.Write(row);
        }

        return [.. new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 13, 10, 26, 10 },
            .. Chunk("IHDR", ihdr), .. Chunk("IDAT", idat.ToArray()), .. Chunk("IEND", [])];
    }

    private async Task<(HttpStatusCode Status, string Body)> PostAsync(byte[] bytes, string type)
    {
        using var content = new ByteArrayContent(bytes) { Headers = { ContentType = new MediaTypeHeaderValue(type) } };
        using var response = await _client.PostAsync("/api/predict", content);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_png_declaring_49_megapixels_is_refused_from_its_header()
    {
        byte[] bomb = BombPng();
        bomb.Length.Should().BeLessThan(Program.MaxBodyBytes);

        var (status, body) = await PostAsync(bomb, "image/png");

        status.Should().Be(HttpStatusCode.BadRequest, body);
        OneLineError(body).Should().Contain("7000×7000").And.Contain($"at most {Program.MaxImagePixels:N0} pixels");
    }

    [Fact]
    public async Task A_truncated_jpeg_is_refused()
    {
        using var bitmap = new SKBitmap(280, 280);
        bitmap.Erase(SKColors.White);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.DrawCircle(140, 140, 80, new SKPaint { Color = SKColors.Black, StrokeWidth = 20, Style = SKPaintStyle.Stroke });
        }

        byte[] jpeg = bitmap.Encode(SKEncodedImageFormat.Jpeg, 90).ToArray();

        var (status, body) = await PostAsync(jpeg[..(jpeg.Length / 3)], "image/jpeg");

        status.Should().Be(HttpStatusCode.BadRequest, body);
        OneLineError(body).Should().Contain("request body").And.Contain("truncated");
    }

    [Theory]
    [InlineData("GET", "/api/predict", "POST")]
    [InlineData("PUT", "/api/predict", "POST")]
    [InlineData("TRACE", "/api/predict", "POST")]
    [InlineData("OPTIONS", "/api/predict", "POST")]
    [InlineData("DELETE", "/api/predict", "POST")]
    [InlineData("POST", "/api/model", "GET, HEAD")]
    [InlineData("POST", "/", "GET, HEAD")]
    [InlineData("PUT", "/healthz", "GET, HEAD")]
    public async Task A_wrong_method_gets_405_with_a_json_error_and_a_truthful_allow(string method, string path, string allow)
    {
        using var response = await _client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));

        response.StatusCode.Should().Be(HttpStatusCode.MethodNotAllowed);
        response.Content.Headers.Allow.Should().Equal(allow.Split(", "));
        OneLineError(await response.Content.ReadAsStringAsync()).Should().Be($"use {allow} on {path}, not {method}");
    }

    [Fact]
    public async Task Json_starting_with_a_utf8_byte_order_mark_is_accepted()
    {
        var image = web.Test.Pixels(web.FirstIndexOf(7)).ToArray();
        byte[] json = [0xEF, 0xBB, 0xBF, .. JsonSerializer.SerializeToUtf8Bytes(new { pixels = image.Select(b => (int)b) })];

        var (status, body) = await PostAsync(json, "application/json");

        status.Should().Be(HttpStatusCode.OK, body);
        JsonDocument.Parse(body).RootElement.GetProperty("label").GetInt32().Should().Be(7);
    }

    [Theory]
    [InlineData(false)] // the client closes its side (FIN) before the body is complete
    [InlineData(true)]  // the client resets the connection (RST)
    public async Task A_request_the_client_abandons_mid_body_gets_an_aborted_log_line(bool reset)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var logs = new CapturingLoggerProvider();
        await using var app = await StartLoggedAsync(logs, timeout.Token);
        using var socket = await ConnectAsync(app, timeout.Token);

        // With Expect: 100-continue the server says "100 Continue" when the app first reads the body: from then on
        // the app is waiting for the rest of it.
        await socket.SendAsync(Encoding.ASCII.GetBytes(
            "POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/png\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n"),
            timeout.Token);
        var answer = new byte[256];
        int read = await socket.ReceiveAsync(answer, timeout.Token);
        Encoding.ASCII.GetString(answer, 0, read).Should().StartWith("HTTP/1.1 100 Continue");
        await socket.SendAsync(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, timeout.Token);
        if (reset) socket.LingerState = new LingerOption(true, 0);
        socket.Close();

        (await RequestLogLineAsync(logs, timeout.Token)).Should().StartWith("POST /api/predict aborted by the client 1000 B ");
    }

    [Fact]
    public async Task A_malformed_chunked_body_from_a_client_still_there_gets_its_400()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var logs = new CapturingLoggerProvider();
        await using var app = await StartLoggedAsync(logs, timeout.Token);
        using var socket = await ConnectAsync(app, timeout.Token);

        await socket.SendAsync(Encoding.ASCII.GetBytes(
            "POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\nnot-a-size\r\n"),
            timeout.Token);
        using var answer = new MemoryStream();
        var buffer = new byte[4096];
        int read;
        while ((read = await socket.ReceiveAsync(buffer, timeout.Token)) > 0) answer.Write(buffer, 0, read); // the server closes after a bad request

        Encoding.ASCII.GetString(answer.ToArray()).Should().StartWith("HTTP/1.1 400 ").And.Contain("{\"error\":\"");
        (await RequestLogLineAsync(logs, timeout.Token)).Should().StartWith("POST /api/predict 400 ");
    }

    /// <summary>The real app on a free loopback port, its log (from Information up) kept in <paramref name="logs"/>.</summary>
    private async Task<WebApplication> StartLoggedAsync(CapturingLoggerProvider logs, CancellationToken cancellationToken)
    {
        var app = Program.Build([
            "--model", web.ModelPath, "--data", "/nonexistent", "--urls", "http://127.0.0.1:0",
            "--Logging:LogLevel:Default", "Information", "--Logging:Console:LogLevel:Default", "None"]);
        app.Services.GetRequiredService<ILoggerFactory>().AddProvider(logs);
        await app.StartAsync(cancellationToken);
        return app;
    }

    private static async Task<Socket> ConnectAsync(WebApplication app, CancellationToken cancellationToken)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, new Uri(app.Urls.Single()).Port, cancellationToken);
        return socket;
    }

    /// <summary>The one line the app logs for a POST /api/predict, waiting for it until <paramref name="cancellationToken"/>.</summary>
    private static async Task<string> RequestLogLineAsync(CapturingLoggerProvider logs, CancellationToken cancellationToken)
    {
        while (true)
        {
            string? line = logs.Lines.FirstOrDefault(l => l.StartsWith("POST /api/predict ", StringComparison.Ordinal));
            if (line is not null) return line;
            cancellationToken.IsCancellationRequested.Should().BeFalse("the request should have been logged; the log has: {0}", string.Join(" | ", logs.Lines));
            await Task.Delay(20, CancellationToken.None);
        }
    }

    /// <summary>Keeps every formatted log message.</summary>
    private sealed class CapturingLoggerProvider : ILoggerProvider
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<string> _lines = new();

        public IEnumerable<string> Lines => _lines;

        public ILogger CreateLogger(string categoryName) => new Logger(_lines);

        public void Dispose() { }

        private sealed class Logger(System.Collections.Concurrent.ConcurrentQueue<string> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
            public bool IsEnabled(LogLevel logLevel) => true;
            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                lines.Enqueue(formatter(state, exception));
        }
    }

    [Fact]
    public async Task A_chunked_body_over_the_limit_gets_the_apps_413()
    {
        var uri = await web.KestrelAsync();
        using var client = new HttpClient { BaseAddress = uri };
        using var content = new StreamContent(new MemoryStream(new byte[Program.MaxBodyBytes + 100_000]));
        content.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/predict") { Content = content };
        request.Headers.TransferEncodingChunked = true;

        using var response = await client.SendAsync(request);

        response.StatusCode.Should().Be(HttpStatusCode.RequestEntityTooLarge);
        OneLineError(await response.Content.ReadAsStringAsync()).Should().Contain($"{Program.MaxBodyBytes:N0}-byte limit");
    }

    [Theory]
    [InlineData("--pool", "0")]
    [InlineData("--pool", "-1")]
    [InlineData("--pool", "abc")]
    [InlineData("--pool", "100000")]
    [InlineData("--model", "--data")]
    [InlineData("--bogus", "x")]
    [InlineData("stray", "--pool=2")]
    [InlineData("--urls", "garbage")]
    public void Bad_usage_is_one_error_line_and_exit_code_2(string first, string second)
    {
        var stderr = new StringWriter();

        int code = Program.Run(["--model", web.ModelPath, "--data", "/nonexistent", first, second], new StringWriter(), stderr);

        code.Should().Be(2, stderr.ToString());
        stderr.ToString().Should().StartWith("error: ");
        stderr.ToString().TrimEnd().Should().NotContain("\n");
    }

    [Fact]
    public void A_taken_port_is_one_error_line_and_exit_code_1()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var stderr = new StringWriter();

        int code = Program.Run(["--model", web.ModelPath, "--data", "/nonexistent", "--urls", $"http://127.0.0.1:{port}"], new StringWriter(), stderr);

        code.Should().Be(1, stderr.ToString());
        stderr.ToString().Should().StartWith("error: ").And.Contain(port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        stderr.ToString().TrimEnd().Should().NotContain("\n");
    }

    [Fact]
    public void An_onnx_model_is_served_as_the_trainer_reads_it()
    {
        string onnx = Path.Combine(Path.GetTempPath(), $"web-{Guid.NewGuid():N}.onnx");
        LeNetSharp.Onnx.OnnxModel.Export(web.Network, onnx);
        try
        {
            var stderr = new StringWriter();
            // A bad --urls stops it after the model has loaded: exit 2 for the URL, not 1 for the model.
            Program.Run(["--model", onnx, "--data", "/nonexistent", "--urls", "garbage"], new StringWriter(), stderr).Should().Be(2, stderr.ToString());
            stderr.ToString().Should().Contain("--urls");
        }
        finally
        {
            File.Delete(onnx);
        }
    }
}
