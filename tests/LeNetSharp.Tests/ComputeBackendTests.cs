using LeNetSharp.Layers;
using LeNetSharp.Tensors;

namespace LeNetSharp.Tests;

/// <summary>The backends by name, the plans they build, and the SIMD backend's measured choice of width.</summary>
public class ComputeBackendTests
{
    [Fact]
    public void Backends_are_found_by_name_in_any_case_and_each_width_is_one_instance()
    {
        ComputeBackend.FromName("Reference").Should().BeSameAs(ComputeBackend.Reference);
        ComputeBackend.FromName("mathnet").Should().BeSameAs(ComputeBackend.Reference);
        ComputeBackend.FromName("SIMD").Should().BeSameAs(ComputeBackend.Simd);
        ComputeBackend.FromName("simd128").Should().BeSameAs(ComputeBackend.SimdWithWidth(128));
        ComputeBackend.FromName("simd128").Name.Should().Be("simd (Vector128)");
        FluentActions.Invoking(() => ComputeBackend.FromName("blas")).Should().Throw<ArgumentException>().WithMessage("Unknown backend 'blas'*");
        FluentActions.Invoking(() => ComputeBackend.SimdWithWidth(64)).Should().Throw<ArgumentOutOfRangeException>();
        ComputeBackend.AcceleratedWidths.Should().Contain(128);
        foreach (int bits in new[] { 256, 512 }.Except(ComputeBackend.AcceleratedWidths))
        {
            FluentActions.Invoking(() => ComputeBackend.SimdWithWidth(bits)).Should().Throw<PlatformNotSupportedException>();
        }
    }

    [Fact]
    public void The_reference_backend_runs_every_layer_by_its_own_code()
    {
        var net = LeNet.Create<float>(1);
        net.Backend = ComputeBackend.Reference;
        net.Forward(new Tensor<float>(3, 28, 28, 1));
        var plan = net.Runner.LastPlan!;
        plan.Steps.Should().HaveCount(8).And.OnlyContain(s => !s.IsKernel);
        plan.Bits.Should().Be(0);
    }

    [Fact]
    public void The_simd_backend_plans_the_tutorial_network_with_its_kernels_and_fused_passes()
    {
        var net = LeNet.Create<float>(1);
        net.Backend = ComputeBackend.SimdWithWidth(128);
        var x = new Tensor<float>(3, 28, 28, 1);
        net.Forward(x);
        var training = net.Runner.LastPlan!;
        training.Steps.Select(s => s.GetType().Name.Split('`')[0]).Should().Equal(
            "FusedConvReluPoolStep", "ConvStep", "ReluMaxPoolStep", "LayerStep", "LinearStep");
        net.Infer(x);
        net.Runner.LastPlan!.Steps.Select(s => s.GetType().Name.Split('`')[0]).Should().Equal(
            "FusedConvReluPoolStep", "ConvStep", "ReluMaxPoolStep", "LayerStep", "LinearStep");
        net.Forward(x);
        net.Runner.LastPlan.Should().BeSameAs(training, "a plan is built once per shape and mode, then replayed");
    }

    [WidthFact(512)]
    public void A_plan_of_three_widths_lists_them_as_a_sentence_would_in_its_name_and_in_the_trainers_saved_line()
    {
        // LeNet's layers: conv1 → relu → pool (one fused step) at 512, conv2 → relu → pool → flatten at 256, the Linear at 128.
        var plan = SimdBackend.Build(LeNet.Create<float>(1), [3, 28, 28, 1], PlanMode.Training, [512, 512, 512, 256, 256, 256, 256, 128]);
        plan.Widths.Should().Equal(512, 256, 128);
        plan.Backend.Should().Be("simd (Vector512, Vector256 and Vector128 by step)");
        LeNetSharp.Trainer.Program.RanAt(plan.Widths, measured: true).Should().Be(" (trained at 512-, 256- and 128-bit vectors, measured fastest here)");
        LeNetSharp.Trainer.Program.RanAt([512, 256], measured: true).Should().Be(" (trained at 512- and 256-bit vectors, measured fastest here)");
        LeNetSharp.Trainer.Program.RanAt([256], measured: false).Should().Be(" (trained at 256-bit vectors)");
        WidthNames.List(["512", "256", "128"]).Should().Be("512, 256 and 128");
        WidthNames.List(["Vector256"]).Should().Be("Vector256");
        WidthNames.List([]).Should().BeEmpty();
    }

    [Fact]
    public void The_measured_widths_are_ones_this_cpu_runs_one_per_step_remembered_and_shared_by_networks_of_the_same_layers()
    {
        var first = LeNet.Create<float>(7);
        var x = new Tensor<float>(5, 28, 28, 1);
        first.Forward(x);
        var plan = first.Runner.LastPlan!;
        ComputeBackend.AcceleratedWidths.Should().Contain(plan.Widths);
        string key = WidthCalibration.Key(first, x.Shape, PlanMode.Training);
        var calibration = WidthCalibration.All.Single(c => c.Key == key);
        calibration.LayerBits.Should().HaveCount(first.Layers.Count);
        for (int s = 0, layer = 0; s < plan.Steps.Count; layer += plan.Steps[s].LayerCount, s++)
        {
            // A step's layers share its width; the plan runs each step at the width chosen for its first layer.
            calibration.LayerBits.Skip(layer).Take(plan.Steps[s].LayerCount).Should().OnlyContain(b => b == plan.StepBits(s));
        }

        calibration.Widths.Should().Equal(plan.Widths);
        calibration.Times.Select(t => t.Bits).Should().Equal(ComputeBackend.AcceleratedWidths);
        calibration.Times.Should().OnlyContain(t => t.Microseconds > 0);
        calibration.Microseconds.Should().BeGreaterThan(0).And.BeLessThanOrEqualTo(calibration.Times.Min(t => t.Microseconds) * (1 + 1e-12),
            "each run of layers takes its fastest width, so the choice is never slower than any one width (as measured)");

        var second = LeNet.Create<float>(8);
        second.Forward(x);
        Enumerable.Range(0, plan.Steps.Count).Select(second.Runner.LastPlan!.StepBits).Should().Equal(Enumerable.Range(0, plan.Steps.Count).Select(plan.StepBits));
        WidthCalibration.All.Count(c => c.Key == key).Should().Be(1, "a second network of the same layers and shape is not timed again");
    }

    [Fact]
    public void A_plan_whose_steps_run_at_different_widths_gives_the_bits_of_one_width()
    {
        // Every width gives the same bits, so any mix does: forward, ∂x and every parameter's gradient.
        var widths = ComputeBackend.AcceleratedWidths;
        var x = new Tensor<float>(5, 28, 28, 1);
        var r = new Random(3);
        foreach (ref float v in x.Span) v = r.NextSingle();
        var upstream = new Tensor<float>(5, 10);
        foreach (ref float v in upstream.Span) v = 2 * r.NextSingle() - 1;
        (float[] Y, float[] Dx, float[][] Grads) Run(int[] layerBits)
        {
            var net = LeNet.Create<float>(11);
            var plan = SimdBackend.Build(net, x.Shape, PlanMode.Training, layerBits);
            var y = plan.Forward(x).Span.ToArray();
            var dx = plan.Backward(upstream).Span.ToArray();
            return (y, dx, net.Parameters.Select(p => p.Gradient.Span.ToArray()).ToArray());
        }

        var one = Run(Enumerable.Repeat(widths[0], 8).ToArray());
        // Each layer at a width of its own, cycling through the widths (a fused step takes its first layer's).
        var mixed = Run(Enumerable.Range(0, 8).Select(i => widths[(i + 1) % widths.Count]).ToArray());
        mixed.Y.Should().Equal(one.Y);
        mixed.Dx.Should().Equal(one.Dx);
        for (int p = 0; p < one.Grads.Length; p++) mixed.Grads[p].Should().Equal(one.Grads[p]);
    }

    [Fact]
    public void A_backward_after_an_inference_forward_is_refused()
    {
        var net = LeNet.Create<float>(1);
        var x = new Tensor<float>(2, 28, 28, 1);
        net.Forward(x);
        net.Infer(x);
        FluentActions.Invoking(() => net.Backward(new Tensor<float>(2, 10))).Should().Throw<InvalidOperationException>().WithMessage("*before Forward*");
    }
}
