using System.Buffers.Binary;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using LeNetSharp.Web;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;
using SkiaSharp;

namespace LeNetSharp.Tests.Web;

/// <summary>Hostile requests and command lines: each ends as one clear error, never a crash or an unbounded allocation.</summary>
[Collection(WebCollection.Name)]
public class HostileInputTests(WebFixture web)
{
    private readonly HttpClient _client = web.Factory.CreateClient();

    private static string OneLineError(string body)
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
    [InlineData("GET")]
    [InlineData("PUT")]
    public async Task Other_methods_on_predict_get_405_with_a_json_error(string method)
    {
        using var response = await _client.SendAsync(new HttpRequestMessage(new HttpMethod(method), "/api/predict"));

        response.StatusCode.Should().Be(HttpStatusCode.MethodNotAllowed);
        OneLineError(await response.Content.ReadAsStringAsync()).Should().Contain("POST");
    }

    [Theory]
    [InlineData("TRACE", "/api/predict", "POST")]
    [InlineData("OPTIONS", "/api/predict", "POST")]
    [InlineData("DELETE", "/api/predict", "POST")]
    [InlineData("POST", "/api/model", "GET")]
    [InlineData("POST", "/", "GET")]
    [InlineData("PUT", "/healthz", "GET")]
    public async Task A_wrong_method_gets_405_with_a_json_error_and_a_truthful_allow(string method, string path, string allow)
    {
        using var response = await _client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));

        response.StatusCode.Should().Be(HttpStatusCode.MethodNotAllowed);
        response.Content.Headers.Allow.Should().Equal(allow);
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

    [Fact(Skip = "unfinished: hangs under the test server; the abort does not reach the app as written")]
    public async Task A_request_the_client_aborts_still_gets_its_log_line()
    {
        var logs = new CapturingLoggerProvider();
        await using var factory = web.Factory.WithWebHostBuilder(b => b
            .UseSetting("Logging:LogLevel:Default", "Information")
            .ConfigureLogging(l => l.AddProvider(logs)));
        using var client = factory.CreateClient();
        using var cancel = new CancellationTokenSource();
        var body = new StallingStream();
        using var content = new StreamContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("image/png");

        var sending = client.PostAsync("/api/predict", content, cancel.Token);
        await body.FirstRead.WaitAsync(TimeSpan.FromSeconds(30));
        cancel.Cancel();
        await FluentActions.Awaiting(() => sending).Should().ThrowAsync<OperationCanceledException>();

        for (int i = 0; i < 200 && !logs.Lines.Any(l => l.Contains("aborted")); i++) await Task.Delay(50);
        logs.Lines.Should().Contain(l => l.StartsWith("POST /api/predict aborted by the client"));
    }

    /// <summary>A request body that gives a few bytes, then waits until the request is cancelled.</summary>
    private sealed class StallingStream : Stream
    {
        private readonly TaskCompletionSource _firstRead = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private bool _sent;

        public Task FirstRead => _firstRead.Task;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (!_sent)
            {
                _sent = true;
                buffer.Span[0] = 0x89;
                return 1;
            }

            _firstRead.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return 0;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
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
