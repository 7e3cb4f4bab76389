using System.Security.Cryptography;
using System.Text;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>
/// The layer-description surfaces attacked as a hostile user would: <see cref="LayerDescription"/>,
/// <see cref="LayerRegistry"/>, version-2 model files crafted by hand, saving, <see cref="Sequential{T}.Backend"/> switched
/// mid-use and from another thread, and layers whose Clone misbehaves. Each bad input is refused with one clear message
/// (from a file: one <see cref="ModelFormatException"/> line naming the file, what was expected and what was found),
/// before anything large is allocated, and nothing on disk is clobbered.
/// </summary>
public sealed class LayerRegistryHostileTests : TempDirectoryTest
{
    private const string TaggedType = "Hostile.Tagged";

    static LayerRegistryHostileTests()
    {
        LayerRegistry.Register<float>(TaggedType, d => new Tagged(TaggedType, d.Get("value"), d.GetInt("n", 0, 1 << 20)));
        LayerRegistry.Register<float>("Hostile.Throws", _ => throw new FormatException("the factory choked\non two lines"));
        LayerRegistry.Register<float>("Hostile.Null", _ => null!);
        LayerRegistry.Register<float>("Hostile.Impostor", _ => new Relu<float>());
        var singleton = new Tagged("Hostile.Singleton", 1, 0);
        LayerRegistry.Register<float>("Hostile.Singleton", _ => singleton);
    }

    /// <summary>
    /// y = value·x + offset (the offset, a parameter of n values, repeats along the last dimension; none when n = 0).
    /// Describes itself as (type, value, n).
    /// </summary>
    private sealed class Tagged(string type, double value, int n, string offsetName = "offset") : Layer<float>
    {
        private readonly Parameter<float>[] _parameters = n > 0 ? [new Parameter<float>(offsetName, n)] : [];
        private Tensor<float>? _output;
        private Tensor<float>? _inputGrad;

        public double Value => value;

        public override string Name => $"{type} ×{value}";

        public override IReadOnlyList<Parameter<float>> Parameters => _parameters;

        public override LayerDescription Describe() => new(type, ("value", value), ("n", n));

        public override int[] OutputShape(ReadOnlySpan<int> inputShape) => inputShape.ToArray();

        protected override Tensor<float> ForwardCore(Tensor<float> input)
        {
            var y = Tensor<float>.ReuseLike(ref _output, input);
            for (int i = 0; i < y.Length; i++) y.Data[i] = (float)value * input.Data[i] + (n > 0 ? _parameters[0].Value.Data[i % n] : 0);
            return y;
        }

        protected override Tensor<float> BackwardCore(Tensor<float> outputGradient)
        {
            var dx = Tensor<float>.ReuseLike(ref _inputGrad, outputGradient);
            for (int i = 0; i < dx.Length; i++)
            {
                dx.Data[i] = (float)value * outputGradient.Data[i];
                if (n > 0) _parameters[0].Gradient.Data[i % n] += outputGradient.Data[i];
            }

            return dx;
        }
    }

    /// <summary>A pass-through layer (type "Hostile.Unregistered", never registered) whose Clone misbehaves as <paramref name="how"/> says.</summary>
    private sealed class Uncopyable(string how) : Layer<float>
    {
        private readonly Parameter<float> _offset = new("offset", 2);

        public override string Name => $"uncopyable ({how})";

        public override IReadOnlyList<Parameter<float>> Parameters => how == "shares its parameter" || how == "changes the shape" ? [_offset] : [];

        public override LayerDescription Describe() => new("Hostile.Unregistered");

        public override ILayer<float> Clone() => how switch
        {
            "throws NotImplementedException" => throw new NotImplementedException("Clone is not written yet."),
            "returns null" => null!,
            "returns itself" => this,
            "returns a copy that fails" => new Uncopyable("fails in Forward"),
            "shares its parameter" => new SharingCopy(_offset),
            "changes the shape" => new SharingCopy(new Parameter<float>("offset", 3)),
            _ => base.Clone(), // not registered: NotSupportedException
        };

        public override int[] OutputShape(ReadOnlySpan<int> inputShape) => inputShape.ToArray();

        protected override Tensor<float> ForwardCore(Tensor<float> input) =>
            how == "fails in Forward" ? throw new InvalidOperationException("this copy cannot run") : input;

        protected override Tensor<float> BackwardCore(Tensor<float> outputGradient) => outputGradient;

        private sealed class SharingCopy(Parameter<float> offset) : Layer<float>
        {
            public override string Name => "sharing copy";

            public override IReadOnlyList<Parameter<float>> Parameters => [offset];

            public override LayerDescription Describe() => new("Hostile.Unregistered");

            public override int[] OutputShape(ReadOnlySpan<int> inputShape) => inputShape.ToArray();

            protected override Tensor<float> ForwardCore(Tensor<float> input) => input;

            protected override Tensor<float> BackwardCore(Tensor<float> outputGradient) => outputGradient;
        }
    }

    /// <summary>Runs <paramref name="act"/>, returning what it threw and how many bytes this thread allocated meanwhile.</summary>
    private static (Exception? Error, long Allocated) Measure(Action act)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            act();
            return (null, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        catch (Exception e)
        {
            return (e, GC.GetAllocatedBytesForCurrentThread() - before);
        }
    }

    private static void OneLine(string message) => message.Should().NotContainAny("\n", "\r", "\u2028", "\u2029");

    // ----- LayerDescription -----

    /// <summary>Names no description may hold, by what is wrong with them (the names themselves would not survive xUnit's serialisation of theory data).</summary>
    private static readonly Dictionary<string, string> BadNameOf = new()
    {
        ["empty"] = "",
        ["blank"] = "   ",
        ["a newline"] = "Conv\nRelu",
        ["a NUL"] = "a\0b",
        ["a tab"] = "tab\there",
        ["a line separator"] = "line\u2028separator",
        ["a paragraph separator"] = "para\u2029graph",
        ["a lone high surrogate"] = "lone\uD800",
        ["a lone low surrogate"] = "\uDC00x",
        ["a high surrogate at the end of a pair's place"] = "\uD83D\uD83D",
        ["256 ASCII bytes"] = new string('x', 256),
        ["256 UTF-8 bytes in 128 characters"] = new string('é', 128),
        ["a megabyte"] = new string('N', 1 << 20),
    };

    public static TheoryData<string> BadNames => new(BadNameOf.Keys);

    [Theory]
    [MemberData(nameof(BadNames))]
    public void A_type_or_setting_name_a_file_could_not_hold_is_refused_in_one_short_line(string what)
    {
        string name = BadNameOf[what];
        foreach (var act in new Action[] { () => _ = new LayerDescription(name), () => _ = new LayerDescription("Ok", (name, 1)) })
        {
            var e = FluentActions.Invoking(act).Should().Throw<ArgumentException>().Which;
            OneLine(e.Message);
            e.Message.Length.Should().BeLessThan(400, what + " must not be echoed whole");
        }
    }

    [Fact]
    public void Names_at_the_limit_and_beyond_the_basic_plane_are_accepted()
    {
        new LayerDescription(new string('x', 255)).Type.Should().HaveLength(255);
        new LayerDescription(new string('é', 127) + "x").Type.Should().HaveLength(128);
        new LayerDescription("Émoji😀", ("über", 1)).ToString().Should().Be("Émoji😀(über=1)");
        FluentActions.Invoking(() => new LayerDescription(null!)).Should().Throw<ArgumentNullException>();
        FluentActions.Invoking(() => new LayerDescription("T", null!)).Should().Throw<ArgumentNullException>();
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(double.NegativeInfinity)]
    public void A_setting_that_is_not_a_finite_number_is_refused_by_name(double value) =>
        FluentActions.Invoking(() => new LayerDescription(TaggedType, ("value", 1), ("n", value))).Should().Throw<ArgumentException>()
            .WithMessage($"Layer '{TaggedType}': setting 'n' is {value}, expected a finite number.*");

    [Fact]
    public void A_repeated_setting_and_more_than_64_settings_are_refused()
    {
        FluentActions.Invoking(() => new LayerDescription("T", ("a", 1), ("b", 2), ("a", 3))).Should().Throw<ArgumentException>()
            .WithMessage("Layer 'T': setting 'a' is given twice.*");
        var many = Enumerable.Range(0, 65).Select(i => ($"s{i}", (double)i)).ToArray();
        FluentActions.Invoking(() => new LayerDescription("T", many)).Should().Throw<ArgumentException>()
            .WithMessage("Layer 'T': 65 settings, at most 64.*");
        new LayerDescription("T", many[..64]).Settings.Should().HaveCount(LayerDescription.MaxSettings);
    }

    [Fact]
    public void A_description_cannot_be_changed_through_its_settings()
    {
        var d = new LayerDescription("T", ("a", 1));
        if (d.Settings is IList<KeyValuePair<string, double>> list)
        {
            FluentActions.Invoking(() => list[0] = new("a", double.NaN)).Should().Throw<NotSupportedException>();
        }

        d.Get("a").Should().Be(1);
        FluentActions.Invoking(() => d.Get(null!)).Should().Throw<ArgumentNullException>();
        FluentActions.Invoking(() => d.Get("b")).Should().Throw<ArgumentException>().WithMessage("Layer 'T' has no setting 'b' (it has: a).");
        FluentActions.Invoking(() => d.GetInt("a", 2, 5)).Should().Throw<ArgumentException>()
            .WithMessage("Layer 'T': setting 'a' must be a whole number from 2 to 5, found 1.");
    }

    // ----- LayerRegistry -----

    [Fact]
    public void Built_in_type_names_cannot_be_registered_again()
    {
        foreach (string type in LayerRegistry.BuiltInTypes)
        {
            FluentActions.Invoking(() => LayerRegistry.Register<float>(type, _ => new Relu<float>())).Should().Throw<ArgumentException>()
                .WithMessage($"'{type}' is a built-in layer type and cannot be registered again.*");
            FluentActions.Invoking(() => LayerRegistry.Register<double>(type, _ => new Relu<double>())).Should().Throw<ArgumentException>();
        }

        LayerRegistry.Create<float>(new LayerDescription("MaxPool2x2")).Should().BeOfType<MaxPool2x2<float>>();
        LayerRegistry.Create<double>(new LayerDescription("Relu")).Should().BeOfType<Relu<double>>();
    }

    [Theory]
    [MemberData(nameof(BadNames))]
    public void A_name_no_description_could_hold_cannot_be_registered(string what)
    {
        string name = BadNameOf[what];
        var e = FluentActions.Invoking(() => LayerRegistry.Register<float>(name, _ => new Relu<float>())).Should().Throw<ArgumentException>().Which;
        OneLine(e.Message);
        e.Message.Length.Should().BeLessThan(400, what + " must not be echoed whole");
        LayerRegistry.IsRegistered<float>(name).Should().BeFalse();
    }

    [Fact]
    public void Null_names_and_factories_are_refused()
    {
        FluentActions.Invoking(() => LayerRegistry.Register<float>(null!, _ => new Relu<float>())).Should().Throw<ArgumentNullException>();
        FluentActions.Invoking(() => LayerRegistry.Register<float>("Hostile.NoFactory", null!)).Should().Throw<ArgumentNullException>();
        LayerRegistry.IsRegistered<float>("Hostile.NoFactory").Should().BeFalse();
        LayerRegistry.IsRegistered<float>(null!).Should().BeFalse();
        FluentActions.Invoking(() => LayerRegistry.Create<float>(null!)).Should().Throw<ArgumentNullException>();
    }

    [Fact]
    public void A_factory_that_returns_null_or_another_kind_of_layer_is_named()
    {
        FluentActions.Invoking(() => LayerRegistry.Create<float>(new LayerDescription("Hostile.Null"))).Should().Throw<InvalidOperationException>()
            .WithMessage("The factory of layer type 'Hostile.Null' returned null.");
        FluentActions.Invoking(() => LayerRegistry.Create<float>(new LayerDescription("Hostile.Impostor"))).Should().Throw<InvalidOperationException>()
            .WithMessage("The factory of layer type 'Hostile.Impostor' built a Relu<Single>, which describes itself as 'Relu'.");

        // Cloning through such a factory: refused, naming the layer and what the factory did.
        var impostor = new Sequential<float>(new Tagged("Hostile.Impostor", 1, 0));
        FluentActions.Invoking(() => impostor.Clone()).Should().Throw<NotSupportedException>().WithMessage("*Hostile.Impostor*Relu*");
        var nothing = new Sequential<float>(new Tagged("Hostile.Null", 1, 0));
        FluentActions.Invoking(() => nothing.Clone()).Should().Throw<NotSupportedException>().WithMessage("*returned null*");
    }

    [Fact]
    public void Registering_again_replaces_the_factory_even_while_other_threads_build_layers()
    {
        const string type = "Hostile.Again";
        LayerRegistry.Register<float>(type, _ => new Tagged(type, -1, 0));
        Parallel.For(0, 400, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            if (i % 2 == 0) LayerRegistry.Register<float>(type, _ => new Tagged(type, i, 0));
            else LayerRegistry.Create<float>(new LayerDescription(type)).Should().BeOfType<Tagged>();
        });
        LayerRegistry.Register<float>(type, _ => new Tagged(type, 42, 0));
        LayerRegistry.Create<float>(new LayerDescription(type)).Should().BeOfType<Tagged>().Which.Value.Should().Be(42);
        LayerRegistry.IsRegistered<double>(type).Should().BeFalse("each element type has its own factories");
    }

    // ----- version-2 model files -----

    private static void Name(BinaryWriter w, string name)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(name);
        w.Write((byte)bytes.Length);
        w.Write(bytes);
    }

    private static void Description(BinaryWriter w, string type, params (string Name, double Value)[] settings)
    {
        Name(w, type);
        w.Write((byte)settings.Length);
        foreach (var (name, value) in settings)
        {
            Name(w, name);
            w.Write(value);
        }
    }

    private static void Tensor(BinaryWriter w, string name, int[] shape, int values)
    {
        Name(w, name);
        w.Write((byte)shape.Length);
        foreach (int d in shape) w.Write(d);
        for (int i = 0; i < values; i++) w.Write(0.25f * i);
    }

    private static readonly (string, double)[] LeNetConv = [("in", 1), ("out", 6), ("kh", 5), ("kw", 5), ("stride", 1), ("padding", 0)];

    private static (string, double)[] Conv(string name, double value) =>
        LeNetConv.Select(s => s.Item1 == name ? (s.Item1, value) : s).ToArray();

    /// <summary>The hand-crafted files: what each holds after the header, its layer count, and the message expected after "path: ".</summary>
    private static readonly Dictionary<string, (int Layers, Action<BinaryWriter> Write, string Message)> Crafted = new()
    {
        ["an unknown type"] = (1, w => { Description(w, "Hostile.Nope", ("a", 1)); w.Write((byte)0); },
            "layer 0 (Hostile.Nope(a=1)): expected a built-in layer type (Conv, Relu, MaxPool2x2, Flatten, Linear, Tanh, Sigmoid, LeakyRelu, Dropout, MaxPool2d, AvgPool2d, GlobalAvgPool2d, BatchNorm1d, BatchNorm2d) or one registered for Single with LayerRegistry.Register, found 'Hostile.Nope'."),
        ["an empty type"] = (1, w => { Description(w, ""); w.Write((byte)0); }, "layer 0: *type name*empty*"),
        ["a newline in the type"] = (1, w => { Description(w, "Re\nlu"); w.Write((byte)0); }, "layer 0: *'Re\\u000Alu'*control character*"),
        ["bytes that are not UTF-8 in the type"] = (1, w => { w.Write((byte)2); w.Write((byte)0xFF); w.Write((byte)0xFE); w.Write((byte)0); w.Write((byte)0); },
            "layer 0 (\uFFFD\uFFFD()): expected a built-in layer type * found '\uFFFD\uFFFD'."),
        ["65 settings"] = (1, w => { Name(w, "Relu"); w.Write((byte)65); }, "layer 0 ('Relu'): expected at most 64 settings, found 65."),
        ["a NaN setting"] = (1, w => { Description(w, "Conv", Conv("in", double.NaN)); w.Write((byte)0); },
            "layer 0: Layer 'Conv': setting 'in' is NaN, expected a finite number."),
        ["an infinite setting"] = (1, w => { Description(w, TaggedType, ("value", double.NegativeInfinity), ("n", 0)); w.Write((byte)0); },
            $"layer 0: Layer '{TaggedType}': setting 'value' is -Infinity, expected a finite number."),
        ["a repeated setting"] = (1, w => { Description(w, "Linear", ("in", 2), ("in", 2), ("out", 2)); w.Write((byte)0); },
            "layer 0: Layer 'Linear': setting 'in' is given twice."),
        ["a Conv with no input channels"] = (1, w => { Description(w, "Conv", Conv("in", 0)); w.Write((byte)0); },
            "layer 0 (Conv(in=0, out=6, kh=5, kw=5, stride=1, padding=0)): Layer 'Conv': setting 'in' must be a whole number from 1 to 65536, found 0."),
        ["a Conv with stride 10^10"] = (1, w => { Description(w, "Conv", Conv("stride", 1e10)); w.Write((byte)0); },
            "layer 0 (Conv(*)): Layer 'Conv': setting 'stride' must be a whole number from 1 to 65536, found 10000000000."),
        ["a Conv with padding −1"] = (1, w => { Description(w, "Conv", Conv("padding", -1)); w.Write((byte)0); },
            "layer 0 (Conv(*)): Layer 'Conv': setting 'padding' must be a whole number from 0 to 65536, found -1."),
        ["a Conv with 2.5 output channels"] = (1, w => { Description(w, "Conv", Conv("out", 2.5)); w.Write((byte)0); },
            "layer 0 (Conv(*)): Layer 'Conv': setting 'out' must be a whole number from 1 to 65536, found 2.5."),
        ["a Conv without a stride"] = (1, w => { Description(w, "Conv", LeNetConv.Where(s => s.Item1 != "stride").ToArray()); w.Write((byte)0); },
            "layer 0 (Conv(*)): Layer 'Conv' has no setting 'stride' (it has: in, out, kh, kw, padding)."),
        ["a Conv of 65536⁴ weights"] = (1, w => { Description(w, "Conv", LeNetConv.Select(s => (s.Item1, s.Item1 is "stride" or "padding" ? s.Item2 : 65536.0)).ToArray()); w.Write((byte)2); },
            "truncated: layer 0 (Conv(in=65536, out=65536, kh=65536, kw=65536, stride=1, padding=0)) needs 18,446,744,073,709,617,152 weights (73,786,976,294,838,468,608 bytes), the file has 1 bytes left."),
        ["a Linear of 65536² weights"] = (1, w => { Description(w, "Linear", ("in", 65536), ("out", 65536)); w.Write((byte)2); },
            "truncated: layer 0 (Linear(in=65536, out=65536)) needs 4,295,032,832 weights (17,180,131,328 bytes), the file has 1 bytes left."),
        ["a missing tensor"] = (1, w => { Description(w, TaggedType, ("value", 1), ("n", 4)); w.Write((byte)0); },
            $"layer 0 ({TaggedType} ×1): expected 1 tensors, found 0."),
        ["an extra tensor"] = (1, w => { Description(w, TaggedType, ("value", 1), ("n", 0)); w.Write((byte)1); Tensor(w, "offset", [4], 4); },
            $"layer 0 ({TaggedType} ×1): expected 0 tensors, found 1."),
        ["a tensor of the wrong shape"] = (1, w => { Description(w, TaggedType, ("value", 1), ("n", 4)); w.Write((byte)1); Tensor(w, "offset", [2, 2], 4); },
            "layer 0: expected tensor 'offset' (4), found 'offset' (2, 2)."),
        ["a tensor of the wrong name"] = (1, w => { Description(w, TaggedType, ("value", 1), ("n", 4)); w.Write((byte)1); Tensor(w, "bias", [4], 4); },
            "layer 0: expected tensor 'offset' (4), found 'bias' (4)."),
        ["a tensor cut short"] = (1, w => { Description(w, TaggedType, ("value", 1), ("n", 4)); w.Write((byte)1); Tensor(w, "offset", [4], 2); },
            $"truncated: layer 0 ({TaggedType}(value=1, n=4)): tensor 'offset' (4) needs 4 weights (16 bytes), the file has 8 bytes left."),
        ["a type name cut short"] = (1, w => { w.Write((byte)200); w.Write("Conv"u8); }, "truncated: the file ends inside layer 0 of the 1 it declares (* bytes in all)."),
        ["settings cut short"] = (1, w => { Name(w, "Linear"); w.Write((byte)2); Name(w, "in"); w.Write(3.0); }, "truncated: the file ends inside layer 0 of the 1 it declares (* bytes in all)."),
        ["a layer missing"] = (2, w => { Description(w, "Relu"); w.Write((byte)0); }, "truncated: the file ends inside layer 1 of the 2 it declares (* bytes in all)."),
        ["a factory that throws"] = (1, w => { Description(w, "Hostile.Throws"); w.Write((byte)0); },
            "layer 0 (Hostile.Throws()): cannot be built: the factory registered for 'Hostile.Throws' threw FormatException: the factory choked on two lines"),
        ["a factory that returns null"] = (1, w => { Description(w, "Hostile.Null"); w.Write((byte)0); },
            "layer 0 (Hostile.Null()): cannot be built: The factory of layer type 'Hostile.Null' returned null."),
        ["a factory that returns another kind"] = (1, w => { Description(w, "Hostile.Impostor"); w.Write((byte)0); },
            "layer 0 (Hostile.Impostor()): cannot be built: The factory of layer type 'Hostile.Impostor' built a Relu<Single>, which describes itself as 'Relu'."),
        ["a factory that returns one layer twice"] = (2, w =>
        {
            for (int i = 0; i < 2; i++)
            {
                Description(w, "Hostile.Singleton", ("value", 1), ("n", 0));
                w.Write((byte)0);
            }
        }, "layer 1 (Hostile.Singleton(value=1, n=0)): the factory registered for 'Hostile.Singleton' returned the layer it built for layer 0, expected a new one."),
    };

    public static TheoryData<string> CraftedFiles => new(Crafted.Keys);

    [Theory]
    [MemberData(nameof(CraftedFiles))]
    public void A_hand_crafted_version_2_file_is_refused_in_one_line_naming_the_file_expected_and_found(string what)
    {
        var (layers, write, message) = Crafted[what];
        string path = Path.Combine(Dir, "crafted.model");
        using (var ms = new MemoryStream())
        {
            using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
            {
                w.Write("LNSM"u8);
                w.Write((ushort)2);
                w.Write((byte)4);
                w.Write(layers);
                write(w);
            }

            ms.Write(SHA256.HashData(ms.ToArray())); // a valid checksum: only the reader's checks can stop it
            File.WriteAllBytes(path, ms.ToArray());
        }

        var (error, allocated) = Measure(() => ModelFile.Load<float>(path));
        var e = error.Should().BeOfType<ModelFormatException>().Subject;
        e.FilePath.Should().Be(path);
        OneLine(e.Message);
        e.Message.Should().Match($"{path}: {message}");
        allocated.Should().BeLessThan(1 << 20, "nothing is allocated from a size the file cannot back");
        if (what == "a factory that throws") e.InnerException.Should().BeOfType<FormatException>();
    }

    [Fact]
    public void A_registered_layer_of_ones_own_round_trips_through_a_version_2_file()
    {
        var random = new Random(2);
        var tagged = new Tagged(TaggedType, 0.5, 4);
        for (int i = 0; i < 4; i++) tagged.Parameters[0].Value.Data[i] = random.NextSingle();
        var net = new Sequential<float>(new Flatten<float>(), tagged, new Linear<float>(4, 3, random)) { Backend = ComputeBackend.SimdWithWidth(128) };
        string path = Path.Combine(Dir, "tagged.model");
        ModelFile.Save(net, path);
        File.ReadAllBytes(path)[4].Should().Be(2, "a layer of one's own is stored in version 2");

        var loaded = ModelFile.Load<float>(path);
        loaded.Layers[1].Should().BeOfType<Tagged>().Which.Value.Should().Be(0.5);
        loaded.Parameters.Select(p => p.Value.Data).Should().BeEquivalentTo(net.Parameters.Select(p => p.Value.Data), o => o.WithStrictOrdering());
        var x = new Tensor<float>(2, 2, 2, 1);
        for (int i = 0; i < x.Length; i++) x.Data[i] = i - 3.5f;
        loaded.Backend = ComputeBackend.SimdWithWidth(128);
        loaded.Forward(x).Data.Should().Equal(net.Forward(x).Data);
    }

    // ----- saving -----

    private sealed class Described(LayerDescription? description, string parameterName = "weight", int rank = 1) : ILayer<float>
    {
        public string Name => "described";

        public IReadOnlyList<Parameter<float>> Parameters { get; } = [new Parameter<float>(parameterName, Enumerable.Repeat(1, rank).ToArray())];

        public int[] OutputShape(ReadOnlySpan<int> inputShape) => inputShape.ToArray();

        public Tensor<float> Forward(Tensor<float> input) => input;

        public Tensor<float> Backward(Tensor<float> outputGradient) => outputGradient;

        public LayerDescription Describe() => description ?? (parameterName == "throw" ? throw new InvalidOperationException("Describe failed") : null!);

        public ILayer<float> Clone() => throw new NotSupportedException();
    }

    public static TheoryData<string> UnsavableLayers => new(["an unregistered type", "a built-in type's name", "a Describe that throws", "a Describe that returns null",
        "a parameter name of 300 bytes", "a parameter of rank 256"]);

    [Theory]
    [MemberData(nameof(UnsavableLayers))]
    public void A_network_that_could_not_be_loaded_back_is_not_saved_and_the_previous_file_stays(string what)
    {
        ILayer<float> layer = what switch
        {
            "an unregistered type" => new Tagged("Hostile.Unregistered", 1, 0),
            "a built-in type's name" => new Described(new LayerDescription("Conv", LeNetConv)),
            "a Describe that throws" => new Described(null, "throw"),
            "a Describe that returns null" => new Described(null),
            "a parameter name of 300 bytes" => new Tagged(TaggedType, 1, 2, new string('p', 300)),
            _ => new Described(new LayerDescription(TaggedType, ("value", 1), ("n", 1)), "offset", 256),
        };
        string path = Path.Combine(Dir, "kept.model");
        ModelFile.Save(LeNet.Create<float>(1), path);
        byte[] before = File.ReadAllBytes(path);

        var error = FluentActions.Invoking(() => ModelFile.Save(new Sequential<float>(new Flatten<float>(), layer), path)).Should().Throw<Exception>().Which;

        if (what == "a Describe that throws") error.Should().BeOfType<InvalidOperationException>();
        else error.Should().BeOfType<NotSupportedException>().Which.Message.Should().Contain(layer.Name);
        OneLine(error.Message);
        File.ReadAllBytes(path).Should().Equal(before);
        Directory.GetFileSystemEntries(Dir).Should().Equal([path], "no temporary file is left");
    }

    // ----- Sequential: backend switches, backward after inference, the same layer twice -----

    private static (Tensor<float> X, Tensor<float> Dy) Batch(int seed)
    {
        var random = new Random(seed);
        var x = new Tensor<float>(2, 8, 8, 1);
        for (int i = 0; i < x.Length; i++) x.Data[i] = random.NextSingle();
        var dy = new Tensor<float>(2, 3);
        for (int i = 0; i < dy.Length; i++) dy.Data[i] = random.NextSingle() - 0.5f;
        return (x, dy);
    }

    [Fact]
    public void Switching_the_backend_between_Forward_and_Backward_keeps_the_pending_backward()
    {
        var (x, dy) = Batch(1);
        var net = TestData.SmallNet<float>(3);
        net.Backend = ComputeBackend.SimdWithWidth(128);
        var twin = net.Clone();
        twin.Forward(x);
        float[] expected = twin.Backward(dy).Data.ToArray();

        net.Forward(x);
        net.Backend = ComputeBackend.Reference;
        net.Backward(dy).Data.Should().Equal(expected, "the backward follows the forward that ran");
        net.Parameters.Select(p => p.Gradient.Data).Should().BeEquivalentTo(twin.Parameters.Select(p => p.Gradient.Data), o => o.WithStrictOrdering());

        net.Forward(x);
        net.Runner.LastPlan!.Backend.Should().StartWith("reference", "the next forward uses the new backend");
        net.Backend = ComputeBackend.SimdWithWidth(128);
        net.Forward(x);
        net.Runner.LastPlan!.Backend.Should().Be("simd (Vector128)");
    }

    [Fact]
    public async Task Switching_the_backend_from_another_thread_during_a_forward_is_refused_and_harms_nothing()
    {
        var (x, _) = Batch(2);
        var gate = new GateLayer();
        var net = new Sequential<float>(gate, new Flatten<float>(), new Linear<float>(64, 3, new Random(1))) { Backend = ComputeBackend.SimdWithWidth(128) };
        float[] expected = net.Forward(x).Data.ToArray();

        gate.Armed = true;
        var running = Task.Run(() => net.Forward(x).Data.ToArray());
        gate.Entered.Wait(TimeSpan.FromSeconds(20)).Should().BeTrue();
        FluentActions.Invoking(() => net.Backend = ComputeBackend.Reference).Should().Throw<InvalidOperationException>().WithMessage("*two threads at once*");
        gate.Release.Set();
        (await running).Should().Equal(expected);
        net.Backend.Should().BeSameAs(ComputeBackend.SimdWithWidth(128));

        gate.Armed = false;
        await Task.Run(() => net.Backend = ComputeBackend.Reference); // an idle network may be switched from any thread
        net.Forward(x);
        net.Runner.LastPlan!.Backend.Should().StartWith("reference");
        FluentActions.Invoking(() => net.Backend = null!).Should().Throw<ArgumentNullException>();
    }

    [Fact]
    public void Backward_after_an_inference_forward_is_refused_as_before_Forward()
    {
        var (x, dy) = Batch(3);
        foreach (var backend in new[] { ComputeBackend.Reference, ComputeBackend.SimdWithWidth(128), ComputeBackend.Simd })
        {
            var net = TestData.SmallNet<float>(4);
            net.Backend = backend;
            net.Infer(x);
            FluentActions.Invoking(() => net.Backward(dy)).Should().Throw<InvalidOperationException>()
                .WithMessage("Sequential: Backward was called before Forward.", backend.Name);

            // A training forward, then an inference one (which overwrote what backward needs): refused too.
            net.Forward(x);
            Evaluator.Evaluate(net, TestData.RandomImages(4, 1), batchSize: 2);
            FluentActions.Invoking(() => net.Backward(dy)).Should().Throw<InvalidOperationException>()
                .WithMessage("Sequential: Backward was called before Forward.", backend.Name);
            net.Forward(x);
            net.Backward(dy); // and a forward makes it possible again
        }
    }

    [Fact]
    public void The_same_layer_object_twice_in_one_network_is_refused()
    {
        var linear = new Linear<float>(4, 4, new Random(1));
        FluentActions.Invoking(() => new Sequential<float>(linear, new Relu<float>(), linear)).Should().Throw<ArgumentException>()
            .WithMessage("Layer 2 (Linear 4→4) is the same object as layer 0: a layer holds one pass's buffers, so give each place its own (layer.Clone()).*");
    }

    // ----- layers that cannot be cloned -----

    public static TheoryData<string> CloneFailures => new(["throws NotSupportedException", "throws NotImplementedException", "returns null", "returns itself",
        "returns a copy that fails"]);

    [Theory]
    [MemberData(nameof(CloneFailures))]
    public void A_network_whose_layer_cannot_be_cloned_still_trains_on_the_measured_width(string how)
    {
        var data = TestData.RandomImages(24, 5);
        float[] Train(ComputeBackend backend)
        {
            var random = new Random(6);
            var net = new Sequential<float>(new Conv<float>(1, 4, 3, 3, random), new Relu<float>(), new Uncopyable(how), new MaxPool2x2<float>(),
                new Flatten<float>(), new Linear<float>(36, 3, random)) { Backend = backend };
            using (var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 1, BatchSize = 4, Seed = 2 }))
            {
                trainer.Train(data);
            }

            net.Runner.LastPlan!.Backend.Should().MatchRegex(@"^simd \(Vector(128|256|512)\)$");
            return net.Parameters.SelectMany(p => p.Value.Data).ToArray();
        }

        Train(ComputeBackend.Simd).Should().Equal(Train(ComputeBackend.SimdWithWidth(128)), "every width gives the same bits");
    }

    /// <summary>
    /// The trainer's "saved … (trained at N-bit vectors, measured fastest here)" names the widths of the training plans,
    /// not of an evaluation run after them, and says "measured" only when they were: not for a network that could not
    /// be copied, and not when the CPU has one width.
    /// </summary>
    [Theory]
    [InlineData("copyable")]
    [InlineData("throws NotSupportedException")]
    [InlineData("returns a copy that fails")]
    public void The_trainers_width_line_names_the_training_plans_and_says_measured_only_when_they_were(string how)
    {
        var random = new Random(6);
        ILayer<float> middle = how == "copyable" ? new Relu<float>() : new Uncopyable(how);
        var net = new Sequential<float>(new Conv<float>(1, 4, 3, 3, random), new Relu<float>(), middle, new MaxPool2x2<float>(),
            new Flatten<float>(), new Linear<float>(36, 3, random)) { Backend = ComputeBackend.Simd };
        using (var trainer = new Trainer<float>(net, new TrainingOptions { Epochs = 1, BatchSize = 4, Seed = 2 }))
        {
            trainer.Train(TestData.RandomImages(24, 5));
        }

        var widths = net.Runner.Plans.Where(p => p.Mode == PlanMode.Training).SelectMany(p => p.Widths).Distinct().OrderDescending();
        bool measured = how == "copyable" && ComputeBackend.AcceleratedWidths.Count > 1;
        string line = Trainer.Program.RanAt(net);
        line.Should().Be($" (trained at {string.Join("- and ", widths)}-bit vectors{(measured ? ", measured fastest here" : "")})");
        Evaluator.Evaluate(net, TestData.RandomImages(40, 5)); // inference plans of their own
        Trainer.Program.RanAt(net).Should().Be(line, "an evaluation after training does not change what training ran at");
    }

    public static TheoryData<string, string> BadClones => new()
    {
        { "returns itself", "Layer 'uncopyable (returns itself)' (Uncopyable): Clone returned the layer itself, not a copy." },
        { "returns null", "Layer 'uncopyable (returns null)' (Uncopyable): Clone returned null, not a copy." },
        { "shares its parameter", "Layer 'uncopyable (shares its parameter)' (Uncopyable): its copy shares parameter 'offset' with it, not a copy of it." },
        { "changes the shape", "Layer 'uncopyable (changes the shape)' (Uncopyable): parameter 'offset' is (2), its copy's (3)." },
        { "throws NotSupportedException", "Cannot copy layer 'uncopyable (throws NotSupportedException)' (Uncopyable): *Hostile.Unregistered*" },
    };

    [Theory]
    [MemberData(nameof(BadClones))]
    public void Cloning_a_network_whose_layer_does_not_copy_itself_is_refused_by_name(string how, string message)
    {
        var net = new Sequential<float>(new Flatten<float>(), new Uncopyable(how));
        var e = FluentActions.Invoking(() => net.Clone()).Should().Throw<NotSupportedException>().WithMessage(message).Which;
        OneLine(e.Message);
    }
}
