using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using LeNetSharp.Inference;
using LeNetSharp.Web;

namespace LeNetSharp.Tests.Web;

/// <summary>
/// <c>POST /api/predict</c> with <c>multipart/form-data</c> (an HTML form, <c>curl -F</c>, Python's
/// <c>requests.post(files=...)</c>): the one file is read as an uploaded picture; no file, several, a malformed or an
/// oversized body are refused with one JSON error, and nothing is written to disk.
/// </summary>
[Collection(WebCollection.Name)]
public class MultipartTests(WebFixture web)
{
    private readonly HttpClient _client = web.Factory.CreateClient();

    /// <summary>MNIST's first 7 as a user's picture, as a PNG.</summary>
    private byte[] SevenPng(out byte[] grey, out int side)
    {
        (grey, side) = web.LargerPicture(7);
        return TestPng.Grey(grey, side, side);
    }

    private static ByteArrayContent File(byte[] bytes, string? type = "image/png")
    {
        var content = new ByteArrayContent(bytes);
        if (type is not null) content.Headers.ContentType = new MediaTypeHeaderValue(type);
        return content;
    }

    private async Task<(HttpStatusCode Status, string Body)> PostAsync(HttpContent content)
    {
        using var response = await _client.PostAsync("/api/predict", content);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("image", "digit.png", "image/png")]               // curl -F image=@digit.png
    [InlineData("file", "seven.png", null)]                       // requests.post(url, files={"file": open(...)}): no part type
    [InlineData("upload", "photo", "application/octet-stream")]   // a browser's form, a file without extension
    public async Task One_file_in_any_field_is_read_like_the_same_png_sent_as_the_body(string field, string fileName, string? type)
    {
        byte[] png = SevenPng(out byte[] grey, out int side);
        using var form = new MultipartFormDataContent { { new StringContent("Predict"), "submit" }, { File(png, type), field, fileName } };

        var (status, body) = await PostAsync(form);

        status.Should().Be(HttpStatusCode.OK, body);
        var answer = JsonSerializer.Deserialize<WebApiTests.Answer>(body, JsonSerializerOptions.Web)!;
        byte[] preprocessed = MnistPreprocessing.Preprocess(grey, side, side);
        answer.Image.Should().Equal(preprocessed.Select(p => (int)p));
        answer.Probabilities.Should().Equal(web.Network.Predict(preprocessed).Probabilities);
        answer.Label.Should().Be(7);
        var raw = await WebApiTests.PostAsync(_client, WebApiTests.Png(png));
        answer.Probabilities.Should().Equal(raw.Probabilities);
    }

    [Fact]
    public async Task A_form_without_a_file_gets_400()
    {
        using var fields = new MultipartFormDataContent { { new StringContent("7"), "image" } };
        var (status, body) = await PostAsync(fields);
        status.Should().Be(HttpStatusCode.BadRequest, body);
        HostileInputTests.OneLineError(body).Should().Be("multipart/form-data holds no file; send one image file in any field, e.g. curl -F image=@digit.png");

        // A browser sends a form whose file input was left empty as a part with filename="" and no content.
        using var empty = new MultipartFormDataContent { { File([], "application/octet-stream"), "image", "\"\"" } };
        (status, body) = await PostAsync(empty);
        status.Should().Be(HttpStatusCode.BadRequest, body);
        HostileInputTests.OneLineError(body).Should().StartWith("multipart/form-data holds no file");
    }

    [Fact]
    public async Task A_form_with_several_files_gets_400_naming_their_fields()
    {
        byte[] png = SevenPng(out _, out _);
        using var form = new MultipartFormDataContent { { File(png), "image", "a.png" }, { File(png), "other", "b.png" } };

        var (status, body) = await PostAsync(form);

        status.Should().Be(HttpStatusCode.BadRequest, body);
        HostileInputTests.OneLineError(body).Should().Be("multipart/form-data holds more than one file ('image', 'other'); send one");
    }

    [Fact]
    public async Task A_file_that_is_not_a_picture_gets_400_naming_the_file()
    {
        using var form = new MultipartFormDataContent { { File("hello"u8.ToArray(), "text/plain"), "image", "notes.txt" } };

        var (status, body) = await PostAsync(form);

        status.Should().Be(HttpStatusCode.BadRequest, body);
        HostileInputTests.OneLineError(body).Should().StartWith("uploaded file 'notes.txt' (field 'image'): not a ");
    }

    [Fact]
    public async Task A_file_over_the_body_limit_gets_413_plain_or_chunked()
    {
        using var form = new MultipartFormDataContent { { File(new byte[Program.MaxBodyBytes]), "image", "big.png" } };
        var (status, body) = await PostAsync(form);
        status.Should().Be(HttpStatusCode.RequestEntityTooLarge, body);
        HostileInputTests.OneLineError(body).Should().Contain($"{Program.MaxBodyBytes:N0}-byte limit");

        var server = await web.KestrelAsync();
        using var client = new HttpClient { BaseAddress = server };
        using var chunked = new MultipartFormDataContent { { new StreamContent(new MemoryStream(new byte[Program.MaxBodyBytes + 100_000])), "image", "big.png" } };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/predict") { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        using var response = await client.SendAsync(request);
        response.StatusCode.Should().Be(HttpStatusCode.RequestEntityTooLarge);
        HostileInputTests.OneLineError(await response.Content.ReadAsStringAsync()).Should().Contain($"{Program.MaxBodyBytes:N0}-byte limit");
    }

    [Theory]
    [InlineData("multipart/form-data", "--x\r\n", "multipart/form-data needs a boundary of 1 to 70 characters in its Content-Type, got 'multipart/form-data'")]
    [InlineData("multipart/form-data; boundary=\"\"", "--x\r\n", "multipart/form-data needs a boundary")]
    [InlineData("multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n\x89PNG", "malformed multipart/form-data: the body ended before the closing boundary")]
    [InlineData("multipart/form-data; boundary=x", "not multipart at all", "malformed multipart/form-data: ")]
    [InlineData("multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"a\"\r\nBroken header line\r\n\r\nv\r\n--x--\r\n", "malformed multipart/form-data: ")]
    [InlineData("multipart/form-data; boundary=x", "--x--\r\n", "multipart/form-data holds no file")]
    public async Task A_malformed_form_gets_400(string type, string text, string message)
    {
        using var content = new ByteArrayContent(Encoding.Latin1.GetBytes(text));
        content.Headers.TryAddWithoutValidation("Content-Type", type);

        var (status, body) = await PostAsync(content);

        status.Should().Be(HttpStatusCode.BadRequest, body);
        string error = HostileInputTests.OneLineError(body);
        error.Should().StartWith(message);
        error.Should().NotContainAny("Stream", "component"); // the body's fault, in the body's terms
    }

    [Fact]
    public async Task A_boundary_over_70_characters_is_refused()
    {
        string boundary = new('b', 71);
        using var content = new ByteArrayContent(Encoding.ASCII.GetBytes($"--{boundary}--\r\n"));
        content.Headers.TryAddWithoutValidation("Content-Type", $"multipart/form-data; boundary={boundary}");

        var (status, body) = await PostAsync(content);

        status.Should().Be(HttpStatusCode.BadRequest, body);
        HostileInputTests.OneLineError(body).Should().StartWith("multipart/form-data needs a boundary of 1 to 70 characters");
    }

    [Fact]
    public async Task A_large_upload_leaves_no_temporary_file()
    {
        // 900×900 random greys: a PNG of about 800 KB, under the 1 MB body limit, far over what ASP.NET's form
        // reader keeps in memory (64 KB) before it spills to a temporary file.
        var noise = new byte[900 * 900];
        new Random(5).NextBytes(noise);
        byte[] png = TestPng.Grey(noise, 900, 900);
        png.Length.Should().BeInRange(700_000, Program.MaxBodyBytes - 10_000);
        string temp = Environment.GetEnvironmentVariable("ASPNETCORE_TEMP") is { Length: > 0 } t ? t : Path.GetTempPath();
        var before = Directory.GetFiles(temp, "ASPNETCORE_*.tmp").ToHashSet();

        using var form = new MultipartFormDataContent { { File(png), "image", "noise.png" } };
        var (status, body) = await PostAsync(form);

        status.Should().Be(HttpStatusCode.OK, body);
        Directory.GetFiles(temp, "ASPNETCORE_*.tmp").Except(before).Should().BeEmpty();
    }
}
