using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>
/// The optimizers and schedules against PyTorch 1.13 (Fixtures/make_optimizer_fixtures.py): 20 float64 steps of a
/// small network from the same parameters on the same batches, and 100 rates of every schedule.
/// </summary>
public class OptimizerReferenceTests
{
    private static readonly Lazy<IReadOnlyDictionary<string, NpyArray>> Optimizers = new(() => Npy.ReadNpz(Fixture("optimizers.npz")));
    private static readonly Lazy<IReadOnlyDictionary<string, NpyArray>> Schedules = new(() => Npy.ReadNpz(Fixture("schedules.npz")));
    private static readonly string[] Names = ["conv_w", "conv_b", "fc_w", "fc_b"];

    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    /// <summary>The fixture's network: Conv 3x3 1→2, Relu, MaxPool2x2, Flatten, Linear 8→3, with its initial parameters.</summary>
    private static Sequential<double> Network()
    {
        var random = new Random(1);
        var net = new Sequential<double>(
            new Conv<double>(1, 2, 3, 3, random), new Relu<double>(), new MaxPool2x2<double>(), new Flatten<double>(), new Linear<double>(8, 3, random));
        for (int i = 0; i < Names.Length; i++)
        {
            var init = Optimizers.Value[$"init__{Names[i]}"];
            init.Shape.Should().Equal(net.Parameters[i].Value.Shape.ToArray());
            init.Values.CopyTo(net.Parameters[i].Value.Data, 0);
        }

        return net;
    }

    private static IOptimizer<double> Make(string run, IReadOnlyList<Parameter<double>> p) => run switch
    {
        "sgd_momentum" => new Sgd<double>(p, 0.05, momentum: 0.9),
        "sgd_nesterov" => new Sgd<double>(p, 0.05, momentum: 0.9, weightDecay: 0.01, nesterov: true),
        "sgd_dampening" => new Sgd<double>(p, 0.05, momentum: 0.8, weightDecay: 0.001, dampening: 0.5),
        "sgd_clip" => new Sgd<double>(p, 0.1, momentum: 0.9) { MaxGradientNorm = 0.5 },
        "adam" => new Adam<double>(p, 0.01),
        "adam_decay" => new Adam<double>(p, 0.01, weightDecay: 0.1),
        "adam_clip" => new Adam<double>(p, 0.01, beta1: 0.8, beta2: 0.99, epsilon: 1e-6, weightDecay: 0.01) { MaxGradientNorm = 0.5 },
        "adam_amsgrad" => new Adam<double>(p, 0.01, amsGrad: true),
        "adamw" => new AdamW<double>(p, 0.01, weightDecay: 0.1),
        "adamw_no_decay" => new AdamW<double>(p, 0.01, weightDecay: 0),
        "adamw_clip" => new AdamW<double>(p, 0.01) { MaxGradientNorm = 0.5 },
        "adamw_amsgrad_clip" => new AdamW<double>(p, 0.01, weightDecay: 0.05, amsGrad: true) { MaxGradientNorm = 0.3 },
        "adamw_onecycle" => new AdamW<double>(p, 0.01, weightDecay: 0.1),
        _ => throw new ArgumentOutOfRangeException(nameof(run)),
    };

    [Theory]
    [InlineData("sgd_momentum")]
    [InlineData("sgd_nesterov")]
    [InlineData("sgd_dampening")]
    [InlineData("sgd_clip")]
    [InlineData("adam")]
    [InlineData("adam_decay")]
    [InlineData("adam_clip")]
    [InlineData("adam_amsgrad")]
    [InlineData("adamw")]
    [InlineData("adamw_no_decay")]
    [InlineData("adamw_clip")]
    [InlineData("adamw_amsgrad_clip")]
    [InlineData("adamw_onecycle")]
    public void Twenty_steps_end_with_PyTorchs_parameters(string run)
    {
        var fixture = Optimizers.Value;
        var net = Network();
        var optimizer = Make(run, net.Parameters);
        ILearningRateSchedule? schedule = run == "adamw_onecycle" ? new OneCycleSchedule(20) : null;
        var loss = new SoftmaxCrossEntropy<double>();
        var x = fixture["x"];
        var labels = fixture["labels"];
        int steps = x.Shape[0], batch = x.Shape[1], image = x.Shape[2] * x.Shape[3] * x.Shape[4];
        var inputs = new Tensor<double>(batch, x.Shape[2], x.Shape[3], x.Shape[4]);
        var targets = new int[batch];
        for (int s = 0; s < steps; s++)
        {
            Array.Copy(x.Values, s * batch * image, inputs.Data, 0, batch * image);
            for (int i = 0; i < batch; i++) targets[i] = (int)labels.Values[s * batch + i];
            if (schedule is not null) optimizer.LearningRate = schedule.RateAt(0.05, s);
            loss.Forward(net.Forward(inputs), targets);
            net.Backward(loss.Backward());
            optimizer.Step();
        }

        double moved = 0;
        for (int i = 0; i < Names.Length; i++)
        {
            double[] expected = fixture[$"{run}__{Names[i]}"].Values, actual = net.Parameters[i].Value.Data;
            for (int j = 0; j < expected.Length; j++)
            {
                actual[j].Should().BeApproximately(expected[j], 1e-12, "{0} {1}[{2}]", run, Names[i], j);
                moved = Math.Max(moved, Math.Abs(expected[j] - fixture[$"init__{Names[i]}"].Values[j]));
            }
        }

        moved.Should().BeGreaterThan(0.01, "the steps must move the parameters for the comparison to mean something");
        net.Parameters.Should().OnlyContain(p => p.Gradient.Data.All(g => g == 0), "every step clears the gradients");
    }

    public static TheoryData<string, double, ILearningRateSchedule> ScheduleCases() => new()
    {
        { "constant", 0.1, new ConstantSchedule() },
        { "tutorial", 0.01, new TutorialSchedule() },
        { "step", 0.1, new StepSchedule(30) },
        { "step_7_half", 0.2, new StepSchedule(7, 0.5) },
        { "exponential", 0.1, new ExponentialSchedule(0.95) },
        { "cosine", 0.1, new CosineAnnealingSchedule(30, 1e-4) },
        { "cosine_to_zero", 0.1, new CosineAnnealingSchedule(100) },
        { "onecycle", 0.1, new OneCycleSchedule(100) },
        { "onecycle_linear_three_phase", 0.1, new OneCycleSchedule(100, 0.25, OneCycleAnnealing.Linear, 10, 100, threePhase: true) },
        { "warmup_constant", 0.1, new LinearWarmupSchedule(new ConstantSchedule(), 5, 0.1) },
        { "warmup_tutorial", 0.01, new LinearWarmupSchedule(new TutorialSchedule(), 5, 0.1) },
        { "warmup_step", 0.1, new LinearWarmupSchedule(new StepSchedule(30), 10, 0.25) },
        { "warmup_exponential", 0.1, new LinearWarmupSchedule(new ExponentialSchedule(0.95), 8) },
        { "warmup_cosine", 0.1, new LinearWarmupSchedule(new CosineAnnealingSchedule(30, 1e-4), 5, 0.1) },
        { "warmup_onecycle", 0.1, new LinearWarmupSchedule(new OneCycleSchedule(90), 10, 0.1) },
    };

    [Theory]
    [MemberData(nameof(ScheduleCases))]
    public void A_hundred_rates_are_PyTorchs(string name, double initialRate, ILearningRateSchedule schedule)
    {
        double[] expected = Schedules.Value[name].Values;
        expected.Should().HaveCount(100);
        for (int t = 0; t < expected.Length; t++)
        {
            schedule.RateAt(initialRate, t).Should().BeApproximately(expected[t], 1e-12 * expected[t], "{0}, period {1}", name, t);
        }
    }

    [Fact]
    public void The_tutorial_schedule_has_the_bits_of_the_running_product()
    {
        var schedule = new TutorialSchedule(0.95);
        double rate = 0.01;
        for (int e = 0; e < 100; e++)
        {
            schedule.RateAt(0.01, e).Should().Be(rate, "epoch {0}", e);
            rate *= Math.Pow(0.95, e + 1);
        }
    }
}
