using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>The schedules' arguments and the rates they refuse.</summary>
public class ScheduleTests
{
    public static TheoryData<string, Action, string> Refusals() => new()
    {
        { "tutorial decay 0", () => _ = new TutorialSchedule(0), "TutorialSchedule: the decay must be in (0, 1].*" },
        { "tutorial decay > 1", () => _ = new TutorialSchedule(1.1), "TutorialSchedule: the decay must be in (0, 1].*" },
        { "step size 0", () => _ = new StepSchedule(0), "*stepSize*" },
        { "step gamma NaN", () => _ = new StepSchedule(5, double.NaN), "StepSchedule: gamma must be positive and finite.*" },
        { "exponential gamma 0", () => _ = new ExponentialSchedule(0), "ExponentialSchedule: gamma must be positive and finite.*" },
        { "unknown unit", () => _ = new ExponentialSchedule(0.9, (ScheduleUnit)9), "The unit must be Epoch or Step.*" },
        { "cosine periods 0", () => _ = new CosineAnnealingSchedule(0), "*periods*" },
        { "cosine negative minimum", () => _ = new CosineAnnealingSchedule(10, -1e-3), "CosineAnnealingSchedule: the minimum rate must be ≥ 0 and finite.*" },
        { "one-cycle no steps", () => _ = new OneCycleSchedule(0), "*totalSteps*" },
        { "one-cycle percent 1.5", () => _ = new OneCycleSchedule(100, 1.5), "OneCycleSchedule: percentStart must be in [0, 1].*" },
        { "one-cycle div 0", () => _ = new OneCycleSchedule(100, divFactor: 0), "OneCycleSchedule: divFactor must be positive and finite.*" },
        { "one-cycle final div ∞", () => _ = new OneCycleSchedule(100, finalDivFactor: double.PositiveInfinity), "OneCycleSchedule: finalDivFactor must be positive and finite.*" },
        { "one-cycle annealing", () => _ = new OneCycleSchedule(100, annealing: (OneCycleAnnealing)3), "OneCycleSchedule: annealing must be Cosine or Linear.*" },
        { "warm-up of nothing", () => _ = new LinearWarmupSchedule(null!, 5), "*then*" },
        { "warm-up periods 0", () => _ = new LinearWarmupSchedule(new ConstantSchedule(), 0), "*periods*" },
        { "warm-up from 0", () => _ = new LinearWarmupSchedule(new ConstantSchedule(), 5, 0), "LinearWarmupSchedule: the start factor must be in (0, 1].*" },
        { "warm-up from 2", () => _ = new LinearWarmupSchedule(new ConstantSchedule(), 5, 2), "LinearWarmupSchedule: the start factor must be in (0, 1].*" },
        { "NaN initial rate", () => new StepSchedule(5).RateAt(double.NaN, 0), "StepSchedule(step size 5, gamma 0.1, per epoch): the initial learning rate must be positive and finite.*" },
        { "negative initial rate", () => new ConstantSchedule().RateAt(-0.1, 0), "ConstantSchedule: the initial learning rate must be positive and finite.*" },
        { "negative period", () => new ExponentialSchedule(0.9).RateAt(0.1, -1), "ExponentialSchedule(gamma 0.9, per epoch): the period must be ≥ 0.*" },
        {
            "cosine at 0", () => new CosineAnnealingSchedule(10).RateAt(0.1, 10),
            "CosineAnnealingSchedule(periods 10, minimum rate 0, per epoch) gives the learning rate 0 for epoch 10 (0-based); a learning rate must be positive and finite.*"
        },
        {
            "one-cycle past its end", () => new OneCycleSchedule(100).RateAt(0.1, 100),
            "OneCycleSchedule(total steps 100, percent start 0.3, cosine, div factor 25, final div factor 10000, two phases) has no rate for step 100 (0-based): the cycle has 100 steps; give it more.*"
        },
        { "tutorial underflow", () => new TutorialSchedule(0.5).RateAt(1, 60), "TutorialSchedule(decay 0.5) gives the learning rate 0 for epoch 60 (0-based)*" },
        {
            "warm-up into a cosine at 0", () => new LinearWarmupSchedule(new CosineAnnealingSchedule(4, unit: ScheduleUnit.Step), 2).RateAt(0.1, 6),
            "CosineAnnealingSchedule(periods 4, minimum rate 0, per step) gives the learning rate 0 for step 4 (0-based)*"
        },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void Is_refused_with_a_clear_message(string what, Action act, string message)
    {
        act.Should().Throw<ArgumentException>(what).WithMessage(message);
    }

    [Fact]
    public void Rates_are_computed_without_allocating()
    {
        ILearningRateSchedule[] schedules =
        [
            new ConstantSchedule(), new TutorialSchedule(), new StepSchedule(3), new ExponentialSchedule(0.9), new CosineAnnealingSchedule(50, 1e-4),
            new OneCycleSchedule(100, threePhase: true), new LinearWarmupSchedule(new OneCycleSchedule(100), 10),
        ];
        double sum = 0;
        foreach (var s in schedules) sum += s.RateAt(0.1, 5); // JIT
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int t = 0; t < 50; t++)
        {
            foreach (var s in schedules) sum += s.RateAt(0.1, t);
        }

        (GC.GetAllocatedBytesForCurrentThread() - before).Should().Be(0);
        sum.Should().BePositive();
    }

    [Fact]
    public void Schedules_are_values_and_describe_themselves()
    {
        new CosineAnnealingSchedule(10, 1e-4).Should().Be(new CosineAnnealingSchedule(10, 1e-4));
        new LinearWarmupSchedule(new OneCycleSchedule(50), 5, 0.1).Should().Be(new LinearWarmupSchedule(new OneCycleSchedule(50), 5, 0.1));
        new StepSchedule(3).Should().NotBe(new StepSchedule(3, unit: ScheduleUnit.Step));
        new LinearWarmupSchedule(new CosineAnnealingSchedule(30, unit: ScheduleUnit.Step), 100, 0.01).ToString()
            .Should().Be("LinearWarmupSchedule(100 steps from 0.01, then CosineAnnealingSchedule(periods 30, minimum rate 0, per step))");
        new LinearWarmupSchedule(new TutorialSchedule(), 2).Unit.Should().Be(ScheduleUnit.Epoch);
        new LinearWarmupSchedule(new OneCycleSchedule(10), 2).Unit.Should().Be(ScheduleUnit.Step);
    }
}
