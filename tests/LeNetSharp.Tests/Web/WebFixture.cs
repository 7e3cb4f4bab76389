using System.IO.Compression;
using System.Buffers.Binary;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Training;
using LeNetSharp.Web;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace LeNetSharp.Tests.Web;

[CollectionDefinition(Name)]
public sealed class WebCollection : ICollectionFixture<WebFixture>
{
    public const string Name = "web sample";
}

/// <summary>
/// What the web sample's tests share: the model the inference tests train once (<see cref="TrainedMnist"/>), saved
/// to a file, an in-process server (Mvc.Testing) on it and, on first use, the real app on a Kestrel loopback port.
/// </summary>
public sealed class WebFixture : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("lenetsharp-web-").FullName;
    private WebApplication? _kestrel;
    private readonly SemaphoreSlim _kestrelGate = new(1, 1);

    public string MnistDirectory { get; } = TestData.MnistDirectory();

    public string ModelPath => Path.Combine(_dir, "web-test.model");

    public ImageDataset Test { get; private set; } = null!;

    /// <summary>The served model, loaded again for single-threaded reference answers (tests of the collection run one at a time).</summary>
    public Sequential<float> Network { get; private set; } = null!;

    public double TestAccuracy { get; private set; }

    public WebApplicationFactory<Program> Factory { get; private set; } = null!;

    public Task InitializeAsync()
    {
        Test = TrainedMnist.Test;
        ModelFile.Save(TrainedMnist.Network, ModelPath);
        Network = ModelFile.Load<float>(ModelPath);
        TestAccuracy = Evaluator.Evaluate(Network, Test).Accuracy;
        Factory = new WebApplicationFactory<Program>().WithWebHostBuilder(b => b
            .UseSetting("model", ModelPath)
            .UseSetting("data", MnistDirectory)
            .UseSetting("Logging:LogLevel:Default", "Warning"));
        return Task.CompletedTask;
    }

    /// <summary>The real app, built as <c>dotnet run</c> builds it, listening on a free loopback port.</summary>
    public async Task<Uri> KestrelAsync()
    {
        await _kestrelGate.WaitAsync();
        try
        {
            if (_kestrel is null)
            {
                var app = Program.Build([
                    "--model", ModelPath, "--data", MnistDirectory, "--urls", "http://127.0.0.1:0", "--Logging:LogLevel:Default", "Warning"]);
                await app.StartAsync();
                _kestrel = app;
            }

            return new Uri(_kestrel.Urls.Single());
        }
        finally
        {
            _kestrelGate.Release();
        }
    }

    public async Task DisposeAsync()
    {
        if (_kestrel is not null) await _kestrel.DisposeAsync();
        await Factory.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>The first test image with label <paramref name="digit"/>.</summary>
    public int FirstIndexOf(int digit) => Enumerable.Range(0, Test.Count).First(i => Test.Label(i) == digit);

    /// <summary>
    /// The first test image of <paramref name="digit"/> as a user's picture would be: 3× nearest-neighbour upscale with
    /// a 20-pixel margin, grey, 0 = background.
    /// </summary>
    public (byte[] Grey, int Side) LargerPicture(int digit)
    {
        byte[] mnist = Test.Pixels(FirstIndexOf(digit)).ToArray();
        const int scale = 3, margin = 20, side = (28 * scale) + (2 * margin);
        var big = new byte[side * side];
        for (int y = 0; y < side; y++)
        {
            for (int x = 0; x < side; x++)
            {
                int sy = (y - margin) / scale, sx = (x - margin) / scale;
                if (y >= margin && x >= margin && sy < 28 && sx < 28) big[(y * side) + x] = mnist[(sy * 28) + sx];
            }
        }

        return (big, side);
    }
}

/// <summary>A minimal PNG writer (8-bit grey, no filter), so the tests make their own images without a graphics library.</summary>
internal static class TestPng
{
    public static byte[] Grey(ReadOnlySpan<byte> pixels, int width, int height)
    {
        var raw = new byte[height * (width + 1)]; // each row: filter byte 0, then the pixels
        for (int y = 0; y < height; y++) pixels.Slice(y * width, width).CopyTo(raw.AsSpan((y * (width + 1)) + 1));
        using var compressed = new MemoryStream();
        using (var z = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true)) z.Write(raw);

        using var png = new MemoryStream();
        png.Write([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]);
        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = 8; // bit depth; colour type 0 (grey), compression 0, filter 0, interlace 0
        Chunk(png, "IHDR", header);
        Chunk(png, "IDAT", compressed.ToArray());
        Chunk(png, "IEND", []);
        return png.ToArray();
    }

    private static void Chunk(Stream png, string type, byte[] data)
    {
        Span<byte> four = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(four, data.Length);
        png.Write(four);
        byte[] typed = [.. System.Text.Encoding.ASCII.GetBytes(type), .. data];
        png.Write(typed);
        BinaryPrimitives.WriteUInt32BigEndian(four, Crc32(typed));
        png.Write(four);
    }

    private static uint Crc32(ReadOnlySpan<byte> bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? 0xEDB88320 ^ (crc >> 1) : crc >> 1;
        }

        return ~crc;
    }
}
