using LeNetSharp.Layers;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>The optimizers' rules on literals, their state, clipping, allocation and hostile hyper-parameters.</summary>
public class OptimizerTests
{
    private static Parameter<double> Param(double[] value, double[] gradient)
    {
        var p = new Parameter<double>("w", value.Length);
        value.CopyTo(p.Value.Data, 0);
        gradient.CopyTo(p.Gradient.Data, 0);
        return p;
    }

    [Fact]
    public void Adams_first_step_moves_each_weight_by_the_learning_rate_against_its_gradient()
    {
        // Step 1: m̂ = g, v̂ = g², so w ← w − lr·g / (|g| + ε).
        var p = Param([1, -2, 0.5], [4, -0.25, 0]);
        new Adam<double>([p], learningRate: 0.1).Step();

        p.Value.Data[0].Should().BeApproximately(1 - 0.1 * 4 / (4 + 1e-8), 1e-15);
        p.Value.Data[1].Should().BeApproximately(-2 + 0.1 * 0.25 / (0.25 + 1e-8), 1e-15);
        p.Value.Data[2].Should().Be(0.5, "a zero gradient does not move its weight");
        p.Gradient.Data.Should().Equal(0, 0, 0);
    }

    [Fact]
    public void AdamW_decays_the_weight_before_the_update_and_Adam_adds_it_to_the_gradient()
    {
        var w = Param([2], [0]);
        new AdamW<double>([w], learningRate: 0.1, weightDecay: 0.5).Step();
        w.Value.Data[0].Should().Be(2 * (1 - 0.1 * 0.5), "a zero gradient leaves only the decoupled decay");

        var a = Param([2], [0]);
        new Adam<double>([a], learningRate: 0.1, weightDecay: 0.5).Step();
        a.Value.Data[0].Should().BeApproximately(2 - 0.1 * 1 / (1 + 1e-8), 1e-15, "the L2 term g = 0.5·2 goes through Adam's normalisation");
    }

    [Fact]
    public void Sgd_nesterov_looks_ahead_along_the_momentum()
    {
        var p = Param([1], [2]);
        var sgd = new Sgd<double>([p], learningRate: 0.1, momentum: 0.5, nesterov: true);
        sgd.Step(); // v = 2; d = 2 + 0.5·2 = 3
        p.Value.Data[0].Should().BeApproximately(1 - 0.3, 1e-15);
        p.Gradient.Data[0] = 2;
        sgd.Step(); // v = 0.5·2 + 2 = 3; d = 2 + 0.5·3 = 3.5
        p.Value.Data[0].Should().BeApproximately(0.7 - 0.35, 1e-15);
    }

    [Fact]
    public void Clipping_scales_the_gradients_to_the_global_norm_as_PyTorch_does()
    {
        var a = Param([0, 0], [3, 0]);
        var b = Param([0], [-4]);
        double norm = GradientClipping.ClipByGlobalNorm([a, b], 1.0);

        norm.Should().Be(5);
        double c = 1.0 / (5 + 1e-6);
        a.Gradient.Data.Should().Equal(3 * c, 0);
        b.Gradient.Data.Should().Equal(-4 * c);

        GradientClipping.ClipByGlobalNorm([a, b], 10.0).Should().BeApproximately(1, 1e-6);
        a.Gradient.Data.Should().Equal(3 * c, 0); // below the limit: unchanged

        var nan = Param([0, 0], [double.NaN, 1]);
        double.IsNaN(GradientClipping.ClipByGlobalNorm([nan], 1.0)).Should().BeTrue();
        nan.Gradient.Data.Should().OnlyContain(g => double.IsNaN(g), "as clip_grad_norm_ without error_if_nonfinite");
    }

    [Fact]
    public void The_optimizer_clips_before_its_update_and_reports_the_norm()
    {
        var p = Param([0, 0], [30, 40]);
        var sgd = new Sgd<double>([p], learningRate: 1) { MaxGradientNorm = 5 };
        sgd.Step();
        sgd.LastGradientNorm.Should().Be(50);
        p.Value.Data[0].Should().BeApproximately(-3, 1e-6);
        p.Value.Data[1].Should().BeApproximately(-4, 1e-6);
        sgd.Steps.Should().Be(1);
    }

    [Fact]
    public void A_saved_state_loaded_into_a_fresh_optimizer_continues_the_run_exactly()
    {
        static (Parameter<double> P, AdamW<double> Opt) Make()
        {
            var p = Param([1, 2, 3], [0, 0, 0]);
            return (p, new AdamW<double>([p], 0.01, amsGrad: true) { MaxGradientNorm = 1 });
        }

        var (p1, first) = Make();
        for (int s = 0; s < 3; s++)
        {
            p1.Gradient.Data[0] = s + 1;
            p1.Gradient.Data[1] = -s;
            p1.Gradient.Data[2] = 0.5;
            first.Step();
        }

        var state = first.SaveState();
        state.Optimizer.Should().Be("AdamW");
        state.Steps.Should().Be(3);
        state.Buffers.Keys.Should().BeEquivalentTo("exp_avg", "exp_avg_sq", "max_exp_avg_sq");

        var (p2, second) = Make();
        p1.Value.Data.CopyTo(p2.Value.Data, 0);
        second.LoadState(state);
        foreach (var (p, opt) in new[] { (p1, (IOptimizer<double>)first), (p2, second) })
        {
            p.Gradient.Data[0] = 2;
            p.Gradient.Data[1] = 7;
            opt.Step();
        }

        p2.Value.Data.Should().Equal(p1.Value.Data);
        second.Steps.Should().Be(4);
        state.Buffers["exp_avg"][0][0] = 99; // the saved state is a copy
        first.SaveState().Buffers["exp_avg"][0][0].Should().NotBe(99);
    }

    [Fact]
    public void A_state_that_does_not_fit_is_refused_and_changes_nothing()
    {
        var p = Param([1, 2], [0, 0]);
        var adam = new Adam<double>([p]);
        var sgd = new Sgd<double>([p], 0.1, momentum: 0.9);

        FluentActions.Invoking(() => adam.LoadState(sgd.SaveState())).Should().Throw<ArgumentException>()
            .WithMessage("The state is SGD's; this optimizer is Adam.*");
        var shorter = new OptimizerState<double>("Adam", 1, new Dictionary<string, double[][]> { ["exp_avg"] = [[1]], ["exp_avg_sq"] = [[1]] });
        FluentActions.Invoking(() => adam.LoadState(shorter)).Should().Throw<ArgumentException>()
            .WithMessage("\"exp_avg\" buffer 0 has 1 elements; parameter w(2) has 2.*");
        var missing = new OptimizerState<double>("Adam", 1, new Dictionary<string, double[][]> { ["exp_avg"] = [[1, 1]] });
        FluentActions.Invoking(() => adam.LoadState(missing)).Should().Throw<ArgumentException>()
            .WithMessage("The state has no \"exp_avg_sq\" buffers; Adam keeps \"exp_avg\", \"exp_avg_sq\".*");
        var extra = new OptimizerState<double>("SGD", 1, new Dictionary<string, double[][]> { ["momentum_buffer"] = [[1, 1]] });
        FluentActions.Invoking(() => new Sgd<double>([p], 0.1).LoadState(extra)).Should().Throw<ArgumentException>()
            .WithMessage("SGD keeps no buffer \"momentum_buffer\" with these settings; it keeps none.*");
        adam.Steps.Should().Be(0);
        adam.SaveState().Buffers["exp_avg"][0].Should().Equal(0, 0);
    }

    [Fact]
    public void Adam_steps_with_clipping_allocate_nothing_in_steady_state()
    {
        var data = TestData.RandomImages(30, 3);
        var options = new TrainingOptions { Optimizer = OptimizerKind.AdamW, LearningRate = 1e-3, WeightDecay = 0.01, AmsGrad = true, MaxGradientNorm = 1 };
        using var trainer = new Trainer<float>(TestData.SmallNet<float>(1), options);
        int[] batch = [0, 1, 2];
        for (int i = 0; i < 300; i++) trainer.Step(data, batch);

        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 1000; i++) trainer.Step(data, batch);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        allocated.Should().Be(0);
    }

    [Fact]
    public void Float_and_double_Adam_agree_and_the_vector_loop_equals_the_scalar_one()
    {
        // 37 elements: several vectors and a scalar tail; the tail's element equals the same value updated in a vector.
        double[] values = Enumerable.Range(0, 37).Select(i => Math.Sin(i) * 2).ToArray();
        double[] grads = Enumerable.Range(0, 37).Select(i => Math.Cos(3 * i)).ToArray();
        var pd = Param(values, grads);
        new Adam<double>([pd], 0.01, weightDecay: 0.1, amsGrad: true).Step();

        var pf = new Parameter<float>("w", 37);
        for (int i = 0; i < 37; i++)
        {
            pf.Value.Data[i] = (float)values[i];
            pf.Gradient.Data[i] = (float)grads[i];
        }

        new Adam<float>([pf], 0.01, weightDecay: 0.1, amsGrad: true).Step();
        for (int i = 0; i < 37; i++) ((double)pf.Value.Data[i]).Should().BeApproximately(pd.Value.Data[i], 1e-6);

        var one = Param([values[36]], [grads[36]]);
        new Adam<double>([one], 0.01, weightDecay: 0.1, amsGrad: true).Step();
        one.Value.Data[0].Should().Be(pd.Value.Data[36]);
        var first = Param([values[0]], [grads[0]]);
        new Adam<double>([first], 0.01, weightDecay: 0.1, amsGrad: true).Step();
        first.Value.Data[0].Should().Be(pd.Value.Data[0]);
    }

    /// <summary>
    /// PyTorch's first momentum step copies the gradient into the buffer: a −0 gradient leaves a −0 velocity, and a −0
    /// weight becomes −0 − 0.1·(−0) = +0 (torch 1.13: w = [0., 1.], momentum_buffer = [-0., -0.]).
    /// </summary>
    [Fact]
    public void Sgd_momentum_first_step_copies_a_negative_zero_gradient_as_PyTorch_does()
    {
        var p = Param([-0.0, 1.0], [-0.0, -0.0]);
        var sgd = new Sgd<double>([p], 0.1, momentum: 0.9);
        sgd.Step();
        p.Value.Data.Select(BitConverter.DoubleToInt64Bits).Should().Equal(BitConverter.DoubleToInt64Bits(0.0), BitConverter.DoubleToInt64Bits(1.0));
        sgd.SaveState().Buffers["momentum_buffer"][0].Select(BitConverter.DoubleToInt64Bits).Should().Equal(BitConverter.DoubleToInt64Bits(-0.0), BitConverter.DoubleToInt64Bits(-0.0));
    }

    [Theory]
    [InlineData(0.9, 0.0, false, 0.0)]
    [InlineData(0.9, 0.01, true, 0.0)]
    [InlineData(0.8, 0.001, false, 0.5)]
    public void Sgd_momentum_equals_the_rule_element_by_element_bit_for_bit(double momentum, double decay, bool nesterov, double dampening)
    {
        SgdSameBits<float>(momentum, decay, nesterov, dampening);
        SgdSameBits<double>(momentum, decay, nesterov, dampening);
    }

    /// <summary>
    /// Three steps over 37 elements (whole vectors and a scalar tail; gradients with zeros of both signs, a few weights
    /// −0) against the documented rule written out per element, each product and sum rounded on its own.
    /// </summary>
    private static void SgdSameBits<T>(double momentum, double decay, bool nesterov, double dampening) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        const int n = 37;
        var random = new Random(7);
        var p = new Parameter<T>("w", n);
        for (int i = 0; i < n; i++) p.Value.Data[i] = i % 18 == 0 ? T.NegativeZero : T.CreateTruncating(random.NextDouble() * 4 - 2);
        T[] w = p.Value.Data.ToArray(), v = new T[n];
        T lr = T.CreateChecked(0.05), mu = T.CreateChecked(momentum), wd = T.CreateChecked(decay), keep = T.CreateChecked(1 - dampening);
        var sgd = new Sgd<T>([p], 0.05, momentum, decay, nesterov, dampening);
        for (int step = 1; step <= 3; step++)
        {
            T[] g = Enumerable.Range(0, n).Select(i => i % 9 == 0 ? T.NegativeZero : i % 11 == 0 ? T.Zero : T.CreateTruncating(random.NextDouble() * 2 - 1)).ToArray();
            g.CopyTo(p.Gradient.Data, 0);
            sgd.Step();
            for (int i = 0; i < n; i++)
            {
                T gi = decay > 0 ? g[i] + wd * w[i] : g[i];
                v[i] = step == 1 ? gi : mu * v[i] + (dampening != 0 ? keep * gi : gi); // PyTorch copies g′ at the first step
                w[i] = w[i] - lr * (nesterov ? gi + mu * v[i] : v[i]);
            }

            System.Runtime.InteropServices.MemoryMarshal.AsBytes(p.Value.Data.AsSpan()).ToArray()
                .Should().Equal(System.Runtime.InteropServices.MemoryMarshal.AsBytes(w.AsSpan()).ToArray(), "step {0}", step);
            p.Gradient.Data.All(x => x == T.Zero).Should().BeTrue("the step clears the gradient");
        }
    }
}

/// <summary>Each hostile hyper-parameter gets one clear error.</summary>
public class OptimizerHostileInputTests
{
    private static readonly Parameter<double>[] P = [new("w", 2)];

    public static TheoryData<string, Action, string> Refusals() => new()
    {
        { "NaN lr (SGD)", () => _ = new Sgd<double>(P, double.NaN), "SGD: the learning rate must be positive and finite.*" },
        { "negative lr (Adam)", () => _ = new Adam<double>(P, -0.001), "Adam: the learning rate must be positive and finite.*" },
        { "zero lr (AdamW)", () => _ = new AdamW<double>(P, 0), "AdamW: the learning rate must be positive and finite.*" },
        { "infinite lr set", () => new Adam<double>(P).LearningRate = double.PositiveInfinity, "Adam: the learning rate must be positive and finite.*" },
        { "beta1 = 1", () => _ = new Adam<double>(P, beta1: 1), "Adam: beta1 must be in [0, 1).*" },
        { "beta1 < 0", () => _ = new AdamW<double>(P, beta1: -0.1), "AdamW: beta1 must be in [0, 1).*" },
        { "beta2 NaN", () => _ = new Adam<double>(P, beta2: double.NaN), "Adam: beta2 must be in [0, 1).*" },
        { "beta2 = 1.5", () => _ = new AdamW<double>(P, beta2: 1.5), "AdamW: beta2 must be in [0, 1).*" },
        { "eps = 0", () => _ = new Adam<double>(P, epsilon: 0), "Adam: epsilon must be positive and finite.*" },
        { "eps < 0", () => _ = new AdamW<double>(P, epsilon: -1e-8), "AdamW: epsilon must be positive and finite.*" },
        { "negative decay (Adam)", () => _ = new Adam<double>(P, weightDecay: -1), "Adam: weight decay must be ≥ 0 and finite.*" },
        { "negative decay (SGD)", () => _ = new Sgd<double>(P, 0.1, weightDecay: -1), "SGD: weight decay must be ≥ 0 and finite.*" },
        { "momentum = 1", () => _ = new Sgd<double>(P, 0.1, momentum: 1), "SGD: momentum must be in [0, 1).*" },
        { "dampening > 1", () => _ = new Sgd<double>(P, 0.1, momentum: 0.5, dampening: 2), "SGD: dampening must be in [0, 1].*" },
        { "Nesterov without momentum", () => _ = new Sgd<double>(P, 0.1, nesterov: true), "SGD: Nesterov momentum requires a momentum and zero dampening.*" },
        { "Nesterov with dampening", () => _ = new Sgd<double>(P, 0.1, momentum: 0.9, nesterov: true, dampening: 0.1), "SGD: Nesterov momentum requires*" },
        { "clip norm 0", () => new Adam<double>(P).MaxGradientNorm = 0, "Adam: the maximum gradient norm must be positive and finite*" },
        { "clip norm < 0", () => new Sgd<double>(P, 0.1).MaxGradientNorm = -1, "SGD: the maximum gradient norm must be positive and finite*" },
        { "clip norm NaN", () => GradientClipping.ClipByGlobalNorm(P, double.NaN), "The maximum gradient norm must be positive and finite.*" },
        { "a parameter twice", () => _ = new Adam<double>([P[0], P[0]]), "A parameter is listed twice.*" },
        { "options: NaN lr", () => new TrainingOptions { Optimizer = OptimizerKind.Adam, LearningRate = double.NaN }.Validate(), "Must be positive.*LearningRate*" },
        { "options: beta1 = 1", () => new TrainingOptions { Optimizer = OptimizerKind.Adam, Beta1 = 1 }.Validate(), "Must be in [0, 1).*Beta1*" },
        { "options: beta2 < 0", () => new TrainingOptions { Optimizer = OptimizerKind.AdamW, Beta2 = -0.5 }.Validate(), "Must be in [0, 1).*Beta2*" },
        { "options: eps = 0", () => new TrainingOptions { Optimizer = OptimizerKind.Adam, Epsilon = 0 }.Validate(), "Must be positive and finite.*Epsilon*" },
        { "options: clip norm 0", () => new TrainingOptions { MaxGradientNorm = 0 }.Validate(), "Must be positive and finite (or null for no clipping).*MaxGradientNorm*" },
        { "options: clip norm ∞", () => new TrainingOptions { MaxGradientNorm = double.PositiveInfinity }.Validate(), "*MaxGradientNorm*" },
        { "options: momentum with Adam", () => new TrainingOptions { Optimizer = OptimizerKind.Adam, Momentum = 0.9 }.Validate(), "Momentum is a setting of SGD, not of Adam." },
        { "options: betas with SGD", () => new TrainingOptions { Beta1 = 0.8, Beta2 = 0.9 }.Validate(), "Beta1, Beta2 are settings of Adam and AdamW, not of Sgd." },
        { "options: Nesterov alone", () => new TrainingOptions { Nesterov = true }.Validate(), "Nesterov momentum requires a Momentum and zero Dampening.*" },
        { "options: unknown optimizer", () => new TrainingOptions { Optimizer = (OptimizerKind)7 }.Validate(), "Must be Sgd, Adam or AdamW.*" },
        {
            "options: decay with a schedule", () => new TrainingOptions { Decay = 0.9, Schedule = new StepSchedule(10) }.Validate(),
            "Decay (0.9) belongs to the tutorial's schedule, which Schedule (StepSchedule(step size 10, gamma 0.1, per epoch)) replaces*"
        },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void Is_refused_with_a_clear_message(string what, Action act, string message)
    {
        act.Should().Throw<ArgumentException>(what).WithMessage(message);
    }
}
