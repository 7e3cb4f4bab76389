using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using LeNetSharp.Inference;
using LeNetSharp.Web;
using Microsoft.AspNetCore.Hosting;

namespace LeNetSharp.Tests.Web;

/// <summary>The JSON API, in process (Mvc.Testing): good requests against the library's own answers, and each bad request.</summary>
[Collection(WebCollection.Name)]
public class WebApiTests(WebFixture web)
{
    private readonly HttpClient _client = web.Factory.CreateClient();

    internal sealed record Answer(int Label, float Confidence, float[] Probabilities, int[] Image, float[][][] FeatureMaps);

    internal static async Task<Answer> PostAsync(HttpClient client, HttpContent content)
    {
        using var response = await client.PostAsync("/api/predict", content);
        string body = await response.Content.ReadAsStringAsync();
        response.StatusCode.Should().Be(HttpStatusCode.OK, body);
        return JsonSerializer.Deserialize<Answer>(body, JsonSerializerOptions.Web)!;
    }

    internal static HttpContent Png(byte[] png) => new ByteArrayContent(png) { Headers = { ContentType = new MediaTypeHeaderValue("image/png") } };

    internal static HttpContent Pixels(IEnumerable<double> pixels) => JsonContent.Create(new { pixels });

    private async Task<(HttpStatusCode Status, string Body)> SendAsync(HttpContent content)
    {
        using var response = await _client.PostAsync("/api/predict", content);
        return (response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    private static void ShouldBeOneLineError(string body, string contains)
    {
        body.Should().NotContain("\n");
        using var json = JsonDocument.Parse(body);
        json.RootElement.EnumerateObject().Select(p => p.Name).Should().Equal("error");
        json.RootElement.GetProperty("error").GetString().Should().Contain(contains);
    }

    [Fact]
    public async Task Pixels_are_fed_to_the_network_as_they_are_and_answered_like_the_library()
    {
        int index = web.FirstIndexOf(3);
        byte[] pixels = web.Test.Pixels(index).ToArray();

        var answer = await PostAsync(_client, Pixels(pixels.Select(p => (double)p)));

        var expected = web.Network.Predict(pixels);
        answer.Label.Should().Be(expected.Label);
        answer.Probabilities.Should().Equal(expected.Probabilities); // bit for bit
        answer.Confidence.Should().Be(expected.Probabilities[expected.Label]);
        answer.Image.Should().Equal(pixels.Select(p => (int)p));

        // The feature maps are conv1's output, channel-major: [map][y][x] from the NHWC tensor (1, 24, 24, 6).
        var conv1 = web.Network.Activations(pixels)[0];
        answer.FeatureMaps.Should().HaveCount(6).And.AllSatisfy(m => m.Should().HaveCount(24).And.AllSatisfy(row => row.Should().HaveCount(24)));
        for (int k = 0; k < 6; k++)
        {
            for (int y = 0; y < 24; y++)
            {
                for (int x = 0; x < 24; x++) answer.FeatureMaps[k][y][x].Should().Be(conv1.Data[(((y * 24) + x) * 6) + k]);
            }
        }
    }

    [Fact]
    public async Task Fractional_pixels_are_scaled_to_0_1()
    {
        var pixels = web.Test.Pixels(0).ToArray().Select(p => p * 0.5).ToArray(); // halves: not all whole numbers

        var answer = await PostAsync(_client, Pixels(pixels));

        var expected = web.Network.Predict(pixels.Select(p => (float)(p / 255)).ToArray());
        answer.Probabilities.Should().Equal(expected.Probabilities);
    }

    [Fact]
    public async Task A_png_goes_through_the_library_preprocessing_and_is_read_right()
    {
        var (big, side) = web.LargerPicture(7);

        var answer = await PostAsync(_client, Png(TestPng.Grey(big, side, side)));

        byte[] preprocessed = MnistPreprocessing.Preprocess(big, side, side);
        answer.Image.Should().Equal(preprocessed.Select(p => (int)p));
        var expected = web.Network.Predict(preprocessed);
        answer.Probabilities.Should().Equal(expected.Probabilities);
        answer.Label.Should().Be(7);
        answer.Probabilities.Sum().Should().BeApproximately(1f, 1e-4f);
    }

    [Fact]
    public async Task Model_describes_the_network_and_its_measured_accuracy()
    {
        var model = await _client.GetFromJsonAsync<JsonElement>("/api/model");

        model.GetProperty("parameterCount").GetInt32().Should().Be(5142);
        model.GetProperty("model").GetString().Should().Be("web-test.model");
        var layers = model.GetProperty("layers").EnumerateArray().ToArray();
        layers.Select(l => l.GetProperty("name").GetString()).Should().Equal(web.Network.Layers.Select(l => l.Name));
        layers[0].GetProperty("outputShape").EnumerateArray().Select(d => d.GetInt32()).Should().Equal(24, 24, 6);
        layers.Sum(l => l.GetProperty("parameters").GetInt32()).Should().Be(5142);
        model.GetProperty("testAccuracy").GetDouble().Should().Be(web.TestAccuracy);
        model.GetProperty("testAccuracySource").GetString().Should().Contain("10,000 MNIST test images");
    }

    [Fact]
    public async Task Without_mnist_the_accuracy_is_null_and_says_why()
    {
        string empty = Directory.CreateTempSubdirectory("lenetsharp-nomnist-").FullName;
        try
        {
            await using var factory = web.Factory.WithWebHostBuilder(b => b.UseSetting("data", empty));
            var model = await factory.CreateClient().GetFromJsonAsync<JsonElement>("/api/model");
            model.GetProperty("testAccuracy").ValueKind.Should().Be(JsonValueKind.Null);
            model.GetProperty("testAccuracySource").GetString().Should().Contain(empty);
        }
        finally
        {
            Directory.Delete(empty, true);
        }
    }

    [Fact]
    public async Task Healthz_and_the_page_answer()
    {
        var health = await _client.GetFromJsonAsync<JsonElement>("/healthz");
        health.GetProperty("status").GetString().Should().Be("ok");

        using var page = await _client.GetAsync("/");
        page.StatusCode.Should().Be(HttpStatusCode.OK);
        page.Content.Headers.ContentType!.MediaType.Should().Be("text/html");
        string html = await page.Content.ReadAsStringAsync();
        html.Should().Contain("<canvas id=\"pad\" width=\"280\" height=\"280\"").And.Contain("id=\"clear\"");
        html.Should().NotContainAny(["src=\"http", "href=\"http", "src=\"//", "@import"], "the page works offline: no CDN");
    }

    [Fact]
    public async Task A_body_over_1_MB_gets_413()
    {
        var (status, body) = await SendAsync(Png(new byte[Program.MaxBodyBytes + 1]));
        status.Should().Be(HttpStatusCode.RequestEntityTooLarge);
        ShouldBeOneLineError(body, "1,048,576-byte limit");
    }

    [Fact]
    public async Task A_chunked_body_over_1_MB_gets_413_too()
    {
        var content = new StreamContent(new MemoryStream(new byte[Program.MaxBodyBytes + 10]));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        content.Headers.ContentLength = null;
        var (status, body) = await SendAsync(content);
        status.Should().Be(HttpStatusCode.RequestEntityTooLarge);
        ShouldBeOneLineError(body, "limit");
    }

    [Theory]
    [InlineData("image/png", "this is not a picture", "request body")]
    [InlineData("application/json", "{\"pixels\": [1, 2, 3]}", "784 numbers (28×28), got 3")]
    [InlineData("application/json", "{\"pixels\": [NaN]}", "not valid JSON")]
    [InlineData("application/json", "{\"pixels\": \"everything\"}", "expected a JSON object")]
    [InlineData("application/json", "[0, 0]", "expected a JSON object")]
    [InlineData("application/json", "{\"pixels\": [0, 0", "not valid JSON")]
    public async Task Bad_bodies_get_400_with_a_one_line_json_error(string type, string text, string message)
    {
        var (status, body) = await SendAsync(new StringContent(text, Encoding.UTF8, type));
        status.Should().Be(HttpStatusCode.BadRequest, body);
        ShouldBeOneLineError(body, message);
    }

    [Theory]
    [InlineData(300, "\"NaN\"", "pixels[300] must be a number from 0 to 255, got \"NaN\"")]
    [InlineData(5, "256", "pixels[5] must be a number from 0 to 255, got 256")]
    [InlineData(783, "-0.5", "pixels[783] must be a number from 0 to 255, got -0.5")]
    [InlineData(0, "1e999", "pixels[0] must be a number from 0 to 255, got 1e999")]
    [InlineData(1, "null", "pixels[1] must be a number from 0 to 255, got null")]
    public async Task Pixels_that_are_not_numbers_0_to_255_get_400_naming_the_index(int index, string value, string message)
    {
        var values = Enumerable.Repeat("0", 784).ToArray();
        values[index] = value;
        var (status, body) = await SendAsync(new StringContent($"{{\"pixels\":[{string.Join(',', values)}]}}", Encoding.UTF8, "application/json"));
        status.Should().Be(HttpStatusCode.BadRequest, body);
        ShouldBeOneLineError(body, message);
    }

    [Fact]
    public async Task Pictures_and_pixels_without_ink_get_400_no_ink_found()
    {
        var (status, body) = await SendAsync(Pixels(new double[784]));
        status.Should().Be(HttpStatusCode.BadRequest, body);
        ShouldBeOneLineError(body, "no ink found (every pixel is below 32");

        foreach (var (grey, side) in new[] { ((byte)255, 40), ((byte)0, 40), ((byte)128, 40), ((byte)0, 1) })
        {
            (status, body) = await SendAsync(Png(Pictures.Encode(Pictures.Rgba(Enumerable.Repeat(grey, side * side).ToArray()), side, side)));
            status.Should().Be(HttpStatusCode.BadRequest, body);
            ShouldBeOneLineError(body, "no ink found (");
        }
    }

    [Fact]
    public async Task Another_content_type_gets_415_and_the_server_keeps_serving()
    {
        var (status, body) = await SendAsync(new StringContent("7", Encoding.UTF8, "text/plain"));
        status.Should().Be(HttpStatusCode.UnsupportedMediaType);
        ShouldBeOneLineError(body, "got Content-Type 'text/plain'");

        await SendAsync(Png(new byte[Program.MaxBodyBytes + 1]));
        await SendAsync(new StringContent("{", Encoding.UTF8, "application/json"));
        var answer = await PostAsync(_client, Pixels(web.Test.Pixels(0).ToArray().Select(p => (double)p)));
        answer.Probabilities.Should().HaveCount(10);
    }

    [Fact]
    public void Without_a_model_file_it_says_how_to_make_one_and_exits_2()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"no-such-{Guid.NewGuid():N}.model");
        var stdout = new StringWriter();
        var stderr = new StringWriter();

        int code = Program.Run(["--model", missing], stdout, stderr);

        code.Should().Be(2);
        stderr.ToString().TrimEnd().Should().Be(
            $"error: no model file at {missing}; make one with the trainer's main job: dotnet run -c Release --project samples/LeNetSharp.Trainer");
        File.Exists(missing).Should().BeFalse("it never trains");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_model_for_other_images_is_refused_in_one_line_naming_its_input(bool recordsShape)
    {
        var network = LeNetSharp.Layers.LeNet.ForImages<float>(1, 16, 16, 1, 3);
        if (recordsShape)
        {
            network.ClassNames = ["a", "b", "c"];
            network.InputShape = (16, 16, 1);
        }

        string path = Path.Combine(Path.GetTempPath(), $"img-{Guid.NewGuid():N}.model");
        LeNetSharp.Persistence.ModelFile.Save(network, path);
        try
        {
            var stderr = new StringWriter();
            Program.Run(["--model", path, "--data", "/nonexistent"], new StringWriter(), stderr).Should().Be(1);
            stderr.ToString().Should().Be(recordsShape
                ? $"error: {path}: the model takes 16x16x1 images; this sample serves drawn digits as 28x28x1 images (use the trainer's predict for this model).\n"
                : $"error: {path}: the model records no input size, and its network does not take MNIST's 28x28x1 images (Linear 16→3: expected input (N, 16), got (1, 256)).\n");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_corrupt_model_file_gives_one_line_and_exit_code_1()
    {
        string bad = Path.Combine(Path.GetTempPath(), $"bad-{Guid.NewGuid():N}.model");
        File.WriteAllText(bad, "not a model");
        try
        {
            var stderr = new StringWriter();
            Program.Run(["--model", bad], new StringWriter(), stderr).Should().Be(1);
            stderr.ToString().Should().StartWith("error: ").And.Contain(bad);
            stderr.ToString().TrimEnd().Should().NotContain("\n");
        }
        finally
        {
            File.Delete(bad);
        }
    }
}
