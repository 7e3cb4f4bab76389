using LeNetSharp.Trainer;

namespace LeNetSharp.Tests;

public class TrainerCliTests
{
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = Program.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Theory]
    [InlineData("error: unknown command 'fly'; expected fetch, train, eval, bench or export (see --help)", "fly")]
    [InlineData("error: --epochs expects an integer ≥ 1, got 'zero' (see --help)", "train", "--epochs", "zero")]
    [InlineData("error: --lr expects a number in (0, *], got '-1' (see --help)", "train", "--lr", "-1")]
    [InlineData("error: option --model needs a value (see --help)", "eval", "--model")]
    [InlineData("error: unknown option '--fast' (see --help)", "train", "--fast", "1")]
    [InlineData("error: --gemm expects mathnet, simd, simd512, simd256 or simd128, got 'blas' (see --help)", "bench", "--gemm", "blas")]
    public void Bad_arguments_give_one_line_and_exit_code_2(string message, params string[] args)
    {
        var (code, _, err) = Run(args);
        code.Should().Be(2);
        err.TrimEnd().Should().Match(message);
        err.TrimEnd().Should().NotContain("\n");
    }

    [Fact]
    public void Missing_model_gives_one_line_and_exit_code_1()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"no-such-{Guid.NewGuid():N}.model");
        var (code, _, err) = Run("eval", "--model", missing);
        code.Should().Be(1);
        err.TrimEnd().Should().Be($"error: {missing}: model file not found.");
    }

    [Fact]
    public void Missing_data_gives_one_line_and_exit_code_1()
    {
        string empty = Directory.CreateTempSubdirectory("lenetsharp-empty-").FullName;
        try
        {
            var (code, _, err) = Run("train", "--data", empty);
            code.Should().Be(1);
            err.Should().StartWith("error: ").And.Contain("train-images-idx3-ubyte (or .gz): file not found");
            err.TrimEnd().Should().NotContain("\n");
        }
        finally
        {
            Directory.Delete(empty, true);
        }
    }

    [Fact]
    public void Help_lists_the_commands()
    {
        var (code, output, _) = Run("--help");
        code.Should().Be(0);
        output.Should().Contain("fetch").And.Contain("train").And.Contain("eval");
    }
}
