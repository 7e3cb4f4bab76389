namespace LeNetSharp.Inference;

/// <summary>
/// Thrown by <see cref="MnistPreprocessing.Preprocess(ReadOnlySpan{byte}, int, int)"/> for a picture that holds no
/// digit: blank, uniform (any 1×1 picture), ink within 32 grey levels (of 255) of the page, or a speck whose longer
/// side is under 1/25 of the picture's. The message starts with
/// "no ink found" and says which; it does not name the picture (the caller knows it). An
/// <see cref="ArgumentException"/>, since the picture is the argument that cannot be answered.
/// </summary>
public sealed class NoInkException : ArgumentException
{
    /// <summary>A "no ink found" error with the default message.</summary>
    public NoInkException()
        : base("no ink found")
    {
    }

    /// <summary>A "no ink found" error.</summary>
    /// <param name="message">Starts with "no ink found", then the reason in parentheses.</param>
    public NoInkException(string message)
        : base(message)
    {
    }

    /// <summary>A "no ink found" error with its cause.</summary>
    /// <param name="message">Starts with "no ink found", then the reason in parentheses.</param>
    /// <param name="innerException">The cause.</param>
    public NoInkException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
