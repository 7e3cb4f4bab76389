namespace LeNetSharp.Kernels;

/// <summary>
/// A count (of vector columns, of batch rows, of a register block's rows) known when the JIT compiles a kernel instantiated with it: the kernel's
/// unused registers and branches vanish, so one method body serves every block shape.
/// </summary>
internal interface IFixedCount
{
    static abstract int Count { get; }
}

internal readonly struct One : IFixedCount { public static int Count => 1; }

internal readonly struct Two : IFixedCount { public static int Count => 2; }

internal readonly struct Three : IFixedCount { public static int Count => 3; }

internal readonly struct Four : IFixedCount { public static int Count => 4; }

internal readonly struct Five : IFixedCount { public static int Count => 5; }

internal readonly struct Six : IFixedCount { public static int Count => 6; }

internal readonly struct Seven : IFixedCount { public static int Count => 7; }

internal readonly struct Eight : IFixedCount { public static int Count => 8; }

internal readonly struct Nine : IFixedCount { public static int Count => 9; }
