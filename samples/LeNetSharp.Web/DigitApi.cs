using System.Text.Json;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;
using LeNetSharp.Imaging;
using LeNetSharp.Inference;

namespace LeNetSharp.Web;

/// <summary>What <c>POST /api/predict</c> returns.</summary>
/// <param name="Label">The most likely digit.</param>
/// <param name="Confidence">Its probability.</param>
/// <param name="Probabilities">Ten probabilities, digit 0 first; they sum to 1.</param>
/// <param name="Image">The 28×28 image the network saw, row by row, 0 = background, 255 = ink.</param>
/// <param name="FeatureMaps">The first convolution's output, [map][y][x] (6×24×24 for LeNet).</param>
internal sealed record PredictResponse(int Label, float Confidence, float[] Probabilities, int[] Image, float[][][] FeatureMaps);

/// <summary>The routes: the page, <c>/healthz</c>, <c>/api/model</c> and <c>/api/predict</c>.</summary>
internal static class DigitApi
{
    public const int MaxBodyBytes = Program.MaxBodyBytes;

    private const int Pixels = DigitModel.Size * DigitModel.Size;

    /// <summary>How long a failed body read waits for the server to report that the client has gone.</summary>
    private static readonly TimeSpan ClientGoneGrace = TimeSpan.FromSeconds(2);

    private static readonly string[] GetHead = [HttpMethods.Get, HttpMethods.Head];

    private static readonly string TooLarge = $"request body over the {MaxBodyBytes:N0}-byte limit";

    private static readonly Lazy<byte[]> Page = new(() =>
    {
        using var stream = typeof(DigitApi).Assembly.GetManifestResourceStream("LeNetSharp.Web.index.html")
            ?? throw new InvalidOperationException("The page resource is missing from the assembly.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    });

    public static void Map(WebApplication app)
    {
        // HEAD wherever GET: the same status and headers, no body (Edge drops it).
        app.MapMethods("/", GetHead, () => Results.Bytes(Page.Value, "text/html; charset=utf-8"));
        app.MapMethods("/healthz", GetHead, (DigitModel model) => Results.Json(new { status = "ok", parameters = model.Info.ParameterCount }));
        app.MapMethods("/api/model", GetHead, (DigitModel model) => Results.Json(model.Info));
        app.MapPost("/api/predict", PredictAsync);
    }

    /// <summary>
    /// Middleware: routing answers a known path with the wrong method (TRACE, POST /, GET /api/predict, …) by a bare
    /// 405 whose <c>Allow</c> header lists the methods the path's routes take; give it the JSON error body every other
    /// error has, naming those methods.
    /// </summary>
    public static async Task MethodNotAllowedAsJson(HttpContext context, RequestDelegate next)
    {
        await next(context);
        if (context.Response.StatusCode != StatusCodes.Status405MethodNotAllowed || context.Response.HasStarted) return;
        string allow = context.Response.Headers.Allow.ToString();
        var log = context.RequestServices.GetRequiredService<ILogger<DigitModel>>();
        string message = $"use {(allow.Length > 0 ? allow : "another method")} on {context.Request.Path.Value}, not {context.Request.Method}";
        await Error(log, StatusCodes.Status405MethodNotAllowed, message).ExecuteAsync(context);
    }

    private static async Task<IResult> PredictAsync(HttpContext context, DigitModel model, ILogger<DigitModel> log)
    {
        string type = context.Request.ContentType?.Split(';')[0].Trim().ToLowerInvariant() ?? "";
        bool json = type is "application/json", form = type is "multipart/form-data";
        if (!json && !form && !type.StartsWith("image/", StringComparison.Ordinal))
        {
            return Error(log, StatusCodes.Status415UnsupportedMediaType,
                $"send an image ({ImageDecoder.Formats}; Content-Type: image/...), a form with one image file (multipart/form-data, e.g. curl -F image=@digit.png) or JSON {{\"pixels\": [{Pixels} numbers 0..255]}} (Content-Type: application/json), got Content-Type '{type}'");
        }

        byte[]? body;
        try
        {
            body = await ReadBodyAsync(context.Request, context.RequestAborted);
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            // Kestrel's own limit catches a chunked body (no Content-Length) going over: answer in our words.
            return Error(log, e.StatusCode, TooLarge);
        }
        catch (Exception e) when (e is BadHttpRequestException or ConnectionResetException)
        {
            // The body ended early or the connection was reset (the client has gone), or the chunked framing is broken.
            // Kestrel cancels RequestAborted for a gone client only a moment after this read fails (it is queued on the
            // thread pool), so wait for it: the delay then throws and the request is logged as aborted by the client.
            // A client still there, having sent broken framing, gets its 400 after the wait.
            await Task.Delay(ClientGoneGrace, context.RequestAborted);
            if (e is BadHttpRequestException bad) return Error(log, bad.StatusCode, bad.Message);
            throw;
        }

        if (body is null) return Error(log, StatusCodes.Status413PayloadTooLarge, TooLarge);

        byte[]? bytes;
        float[]? scaled;
        try
        {
            string source = "request body";
            if (form) (body, source) = await SingleFileAsync(context.Request.ContentType!, body, context.RequestAborted);
            if (json)
            {
                (bytes, scaled) = ParsePixels(body);
            }
            else
            {
                // At most pool-size decodes at once, each under the pixel ceiling: memory stays bounded under load.
                await model.DecodeGate.WaitAsync(context.RequestAborted);
                try
                {
                    var (grey, width, height) = ImageDecoder.Decode(body, source, maxPixels: Program.MaxImagePixels);
                    bytes = MnistPreprocessing.Preprocess(grey, width, height);
                }
                finally
                {
                    model.DecodeGate.Release();
                }

                scaled = null;
            }
        }
        catch (Exception e) when (e is InvalidDataException or NoInkException)
        {
            return Error(log, StatusCodes.Status400BadRequest, e.Message);
        }

        Prediction prediction;
        if (bytes is not null)
        {
            prediction = model.Predictor.Predict(bytes);
            scaled = Array.ConvertAll(bytes, b => b * (1f / 255)); // as the library scales bytes
        }
        else
        {
            prediction = model.Predictor.Predict(scaled);
        }

        int[] image = bytes is not null ? Array.ConvertAll(bytes, b => (int)b) : Array.ConvertAll(scaled!, v => (int)MathF.Round(255 * v));
        var maps = model.FeatureMaps(scaled);
        if (!prediction.Probabilities.All(float.IsFinite) || !maps.All(map => map.All(row => row.All(float.IsFinite))))
        {
            // The loaders refuse weights that are not finite, but finite weights can still overflow float32 on some input;
            // JSON has no NaN, so this is an answer, not a failure.
            return Error(log, StatusCodes.Status422UnprocessableEntity,
                "the network's output for this picture is not a finite number (its arithmetic overflows float32); the model cannot answer it");
        }

        return Results.Json(new PredictResponse(
            prediction.Label, prediction.Probabilities[prediction.Label], prediction.Probabilities, image, maps));
    }

    /// <summary>The body, or null when it is over <see cref="MaxBodyBytes"/> (said by Content-Length or found by reading).</summary>
    private static async Task<byte[]?> ReadBodyAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (request.ContentLength > MaxBodyBytes) return null;
        using var body = new MemoryStream();
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(buffer, cancellationToken)) > 0)
        {
            if (body.Length + read > MaxBodyBytes) return null;
            body.Write(buffer, 0, read);
        }

        return body.ToArray();
    }

    /// <summary>
    /// The one file of a <c>multipart/form-data</c> body (an HTML form, <c>curl -F image=@digit.png</c>), whatever its
    /// field name, and how errors name it. Fields that are not files (a form's other inputs, a file input left empty)
    /// are skipped; no file, or a second one, is refused. The body is already in memory, read under
    /// <see cref="MaxBodyBytes"/>: nothing is buffered beyond it and nothing goes to disk.
    /// </summary>
    private static async Task<(byte[] File, string Source)> SingleFileAsync(string contentType, byte[] body, CancellationToken cancellationToken)
    {
        const int MaxBoundary = 70; // RFC 2046 §5.1.1
        if (!MediaTypeHeaderValue.TryParse(contentType, out var media)
            || HeaderUtilities.RemoveQuotes(media.Boundary) is not { Length: > 0 and <= MaxBoundary } boundary)
        {
            throw new InvalidDataException($"multipart/form-data needs a boundary of 1 to {MaxBoundary} characters in its Content-Type, got '{Shorten(contentType)}'");
        }

        var reader = new MultipartReader(boundary.ToString(), new MemoryStream(body, writable: false));
        (string Field, string Name, byte[] Bytes)? file = null;
        string? second = null;
        try
        {
            while (await reader.ReadNextSectionAsync(cancellationToken) is { } section)
            {
                if (section.GetContentDispositionHeader() is not { } disposition || !disposition.IsFileDisposition()) continue;
                string name = HeaderUtilities.RemoveQuotes(disposition.FileNameStar.HasValue ? disposition.FileNameStar : disposition.FileName).ToString();
                if (name.Length == 0) continue; // filename="": a browser's file input left empty
                string field = HeaderUtilities.RemoveQuotes(disposition.Name).ToString();
                if (file is not null)
                {
                    second = field;
                    break;
                }

                using var copy = new MemoryStream();
                await section.Body.CopyToAsync(copy, cancellationToken);
                file = (field, name, copy.ToArray());
            }
        }
        catch (Exception e) when (e is IOException or InvalidDataException)
        {
            // The reader's own words for a header line too long or broken; its end-of-stream error (a missing closing
            // boundary) speaks of components rather than of the body, so it is reworded.
            string problem = e.Message.StartsWith("Unexpected end of Stream", StringComparison.Ordinal)
                ? "the body ended before the closing boundary"
                : e.Message.ReplaceLineEndings(" ").TrimEnd();
            throw new InvalidDataException($"malformed multipart/form-data: {problem}");
        }

        if (second is not null)
        {
            throw new InvalidDataException($"multipart/form-data holds more than one file ('{Shorten(file!.Value.Field)}', '{Shorten(second)}'); send one");
        }

        return file is (var f, var n, var bytes)
            ? (bytes, $"uploaded file '{Shorten(n)}' (field '{Shorten(f)}')")
            : throw new InvalidDataException("multipart/form-data holds no file; send one image file in any field, e.g. curl -F image=@digit.png");
    }

    /// <summary>
    /// Reads <c>{"pixels": [784 numbers 0..255]}</c>: a 28×28 image already in MNIST form, fed to the network as is.
    /// Whole numbers come back as bytes (the same path as an MNIST image); others as values scaled to [0, 1].
    /// </summary>
    private static (byte[]? Bytes, float[]? Scaled) ParsePixels(byte[] body)
    {
        JsonDocument document;
        try
        {
            // JSON text may start with a UTF-8 byte order mark (RFC 8259 §8.1 lets a parser ignore it; Notepad writes one).
            var text = body.AsMemory();
            if (text.Span.StartsWith("\uFEFF"u8)) text = text[3..];
            document = JsonDocument.Parse(text);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"request body is not valid JSON: {e.Message}");
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object || !document.RootElement.TryGetProperty("pixels", out var pixels)
                || pixels.ValueKind != JsonValueKind.Array)
            {
                throw new InvalidDataException($"expected a JSON object {{\"pixels\": [{Pixels} numbers 0..255]}}");
            }

            int count = pixels.GetArrayLength();
            if (count != Pixels) throw new InvalidDataException($"pixels must hold {Pixels} numbers (28×28), got {count}");
            var values = new double[Pixels];
            bool whole = true;
            int i = 0;
            foreach (var element in pixels.EnumerateArray())
            {
                if (element.ValueKind != JsonValueKind.Number || !element.TryGetDouble(out double v) || !double.IsFinite(v) || v < 0 || v > 255)
                {
                    throw new InvalidDataException($"pixels[{i}] must be a number from 0 to 255, got {Shorten(element.GetRawText())}");
                }

                whole &= v == Math.Floor(v);
                values[i++] = v;
            }

            // Already MNIST's form (0 = background): ink is a value of at least MinInkContrast, as for pictures.
            if (values.Max() < MnistPreprocessing.MinInkContrast)
            {
                throw new NoInkException(
                    $"no ink found (every pixel is below {MnistPreprocessing.MinInkContrast}; 0 is the background, 255 full ink)");
            }

            return whole ? (Array.ConvertAll(values, v => (byte)v), null) : (null, Array.ConvertAll(values, v => (float)(v / 255)));
        }
    }

    internal static string Shorten(string text) => text.Length <= 40 ? text : text[..40] + "…";

    internal static IResult Error(ILogger log, int status, string message)
    {
        message = message.ReplaceLineEndings(" ");
        log.LogWarning("Rejected a request: {StatusCode} {Reason}", status, message);
        return Results.Json(new { error = message }, statusCode: status);
    }
}
