namespace LeNetSharp.Trainer;

/// <summary>
/// Options that parsed but do not fit the data or each other, found once the data is read: one <c>error: …</c> line
/// that ends "(see COMMAND --help)", and exit code 2, as a parse error.
/// </summary>
/// <param name="command">The command whose help the line points to ("main" for the trainer's own).</param>
/// <param name="message">What does not fit: the options named, what was expected and what was found.</param>
internal sealed class UsageException(string command, string message) : Exception(message)
{
    /// <summary>The command whose help the error line points to.</summary>
    public string Command { get; } = command;
}
