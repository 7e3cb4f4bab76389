using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using LeNetSharp.Inference;
using Xunit.Abstractions;

namespace LeNetSharp.Tests.Web;

/// <summary>
/// 2,000 requests from 16 concurrent clients against the real server on a loopback port: no errors, and every
/// answer identical to the single-threaded one. Latency and throughput are printed, never asserted.
/// </summary>
[Collection(WebCollection.Name)]
public sealed class LoadTests(WebFixture web, ITestOutputHelper output)
{
    private const int Requests = 2_000, Clients = 16, Distinct = 64;

    [Fact]
    public async Task Sixteen_clients_2000_requests_no_errors_and_the_single_threaded_answers()
    {
        var url = await web.KestrelAsync();

        // 64 distinct bodies: MNIST test images, half as pixel JSON, half as PNG (preprocessed by the server).
        var bodies = Enumerable.Range(0, Distinct).Select(i =>
        {
            byte[] pixels = web.Test.Pixels(i).ToArray();
            return i % 2 == 0 ? (Func<HttpContent>)(() => WebApiTests.Pixels(pixels.Select(p => (double)p))) : () => WebApiTests.Png(TestPng.Grey(pixels, 28, 28));
        }).ToArray();

        // The single-threaded answers, each checked against the library on the image the server reports it saw.
        // The first request loads the model; the other 63, one at a time, give the one-client rate to compare with.
        var expected = new WebApiTests.Answer[Distinct];
        var sequential = new Stopwatch();
        using (var client = new HttpClient { BaseAddress = url })
        {
            for (int i = 0; i < Distinct; i++)
            {
                if (i == 1) sequential.Start();
                expected[i] = await WebApiTests.PostAsync(client, bodies[i]());
                var library = web.Network.Predict(expected[i].Image.Select(p => (byte)p).ToArray());
                expected[i].Probabilities.Should().Equal(library.Probabilities);
            }
        }

        sequential.Stop();
        double oneClient = (Distinct - 1) / sequential.Elapsed.TotalSeconds;
        var latencies = new ConcurrentBag<double>();
        var errors = new ConcurrentQueue<string>();
        int next = -1;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, Clients).Select(_ => Task.Run(async () =>
        {
            using var client = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(60) };
            for (int n = Interlocked.Increment(ref next); n < Requests; n = Interlocked.Increment(ref next))
            {
                int i = n % Distinct;
                long start = Stopwatch.GetTimestamp();
                try
                {
                    var answer = await WebApiTests.PostAsync(client, bodies[i]());
                    latencies.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                    if (answer.Label != expected[i].Label || !answer.Probabilities.SequenceEqual(expected[i].Probabilities)
                        || !answer.Image.SequenceEqual(expected[i].Image)
                        || !answer.FeatureMaps.SelectMany(m => m).SelectMany(r => r).SequenceEqual(expected[i].FeatureMaps.SelectMany(m => m).SelectMany(r => r)))
                    {
                        errors.Enqueue($"request {n} (image {i}): the answer differs from the single-threaded one");
                    }
                }
                catch (Exception e)
                {
                    errors.Enqueue($"request {n} (image {i}): {e.GetType().Name}: {e.Message}");
                }
            }
        })));
        clock.Stop();

        var sorted = latencies.Order().ToArray();
        string figures = string.Create(CultureInfo.InvariantCulture,
            $"{Requests} requests, {Clients} clients: {Requests / clock.Elapsed.TotalSeconds:F0} requests/s " +
            $"({Requests / clock.Elapsed.TotalSeconds / oneClient:F2}× one client's {oneClient:F0} requests/s in the same run), " +
            $"p50 {Percentile(sorted, 0.50):F1} ms, p99 {Percentile(sorted, 0.99):F1} ms, {errors.Count} errors ({Environment.ProcessorCount} cores)");
        output.WriteLine(figures);
        File.WriteAllText(Path.Combine(AppContext.BaseDirectory, "load-test.txt"), figures + Environment.NewLine);

        errors.Should().BeEmpty();
        latencies.Should().HaveCount(Requests);
    }

    private static double Percentile(double[] sorted, double q) => sorted.Length == 0 ? double.NaN : sorted[(int)Math.Min(sorted.Length - 1, Math.Ceiling(q * sorted.Length) - 1)];
}
