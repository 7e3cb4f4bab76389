using LeNetSharp.Layers;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

public class EvaluationLossTests
{
    [Fact]
    public void The_loss_is_the_mean_softmax_cross_entropy()
    {
        var net = TestData.SmallNet<double>(4);
        var data = TestData.RandomImages(37, 6);
        var batch = new Tensor<double>(37, 8, 8, 1);
        var labels = new int[37];
        data.FillBatch([.. Enumerable.Range(0, 37)], batch, labels);
        net.Training = false;
        double expected = new SoftmaxCrossEntropy<double>().Forward(net.Forward(batch), labels);

        var result = Evaluator.Evaluate(net, data, batchSize: 5);

        result.Loss.Should().BeApproximately(expected, 1e-12);
        result.Loss.Should().BeGreaterThan(0.5, "an untrained net is far from the random labels");
    }

    [Fact]
    public void The_loss_has_the_same_bits_with_any_thread_count()
    {
        var net = TestData.SmallNet<float>(1);
        var data = TestData.RandomImages(333, 4);
        double one = Evaluator.Evaluate(net, data, batchSize: 7).Loss;
        foreach (int threads in new[] { 2, 3, 8 })
        {
            Evaluator.Evaluate(net, data, batchSize: 7, threads: threads).Loss.Should().Be(one, "{0} threads", threads);
        }

        Evaluator.Evaluate(net, data, batchSize: 16).Loss.Should().BeApproximately(one, 1e-6, "another batch size rounds differently, no more");
        Evaluator.Evaluate(net, data.Take(1)).Loss.Should().BeGreaterThan(0);
    }
}
