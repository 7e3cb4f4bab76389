namespace LeNetSharp.Tensors;

/// <summary>Reusable work buffers: grown when a shape needs more, never shrunk, so steady-state steps allocate nothing.</summary>
internal static class Scratch
{
    /// <summary>Makes <paramref name="buffer"/> hold at least <paramref name="length"/> elements (a new, zeroed array when it is shorter).</summary>
    public static void Ensure<TE>(ref TE[] buffer, int length)
    {
        if (buffer.Length < length) buffer = new TE[length];
    }
}
