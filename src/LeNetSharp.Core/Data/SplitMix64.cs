namespace LeNetSharp.Data;

/// <summary>
/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny generator whose draws depend on the seed alone, the same on every
/// machine and .NET version, and cost no allocation (a struct on the stack).
/// </summary>
internal struct SplitMix64(ulong seed)
{
    private ulong _state = seed;

    /// <summary>The finaliser: a well-mixed 64-bit hash of <paramref name="z"/>.</summary>
    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9UL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebUL;
        return z ^ (z >> 31);
    }

    /// <summary>The next 64 random bits.</summary>
    public ulong Next()
    {
        _state += 0x9e3779b97f4a7c15UL;
        return Mix(_state);
    }

    /// <summary>A draw in [0, <paramref name="n"/>) (n ≥ 1), by Lemire's multiply-shift: a bias below n / 2⁶⁴.</summary>
    public int Below(int n) => (int)(((UInt128)Next() * (ulong)n) >> 64);

    /// <summary>A draw in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));
}
