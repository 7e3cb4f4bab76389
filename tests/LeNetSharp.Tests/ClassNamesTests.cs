using System.Security.Cryptography;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;
using LeNetSharp.Tensors;
using LeNetSharp.Training;

namespace LeNetSharp.Tests;

/// <summary>Class names and the input shape: on datasets and their views, on networks, in model files and checkpoints.</summary>
public sealed class ClassNamesTests : TempDirectoryTest
{
    private static readonly string[] Abc = ["ant", "bee", "cat"];

    [Fact]
    public void A_dataset_keeps_its_class_names_through_every_view()
    {
        var data = TestData.RandomImages(20, 1).WithClassNames(Abc);
        data.ClassNames.Should().Equal(Abc);
        data.Take(5).ClassNames.Should().Equal(Abc);
        data.Skip(5).ClassNames.Should().Equal(Abc);
        data.Normalize(0.5f, 0.25f).ClassNames.Should().Equal(Abc);
        var (train, validation) = data.Split(0.25, seed: 1);
        train.ClassNames.Should().Equal(Abc);
        validation.ClassNames.Should().Equal(Abc);
        data.WithClassNames(null).ClassNames.Should().BeNull();
        TestData.RandomImages(20, 1).ClassNames.Should().BeNull();
    }

    [Fact]
    public void Names_do_not_change_what_a_checkpoint_records_of_the_data()
    {
        var data = TestData.RandomImages(20, 1);
        DatasetIdentity.Of(data.WithClassNames(Abc)).Should().Be(DatasetIdentity.Of(data));
    }

    [Theory]
    [InlineData(new[] { "a", "b" }, "The dataset has 3 classes, got 2 class names.*")]
    [InlineData(new[] { "a", "b", "a" }, "Classes 0 and 2 are both named 'a'.*")]
    [InlineData(new[] { "a", " ", "c" }, "The name of class 1 is empty or blank*")]
    [InlineData(new[] { "a", "b\nc", "d" }, "The name of class 1 'b\\u000Ac' *")]
    [InlineData(new[] { "a", "b\u001B[31mc", "d" }, "The name of class 1 'b\\u001B[31mc' holds U+001B, a control character*")]
    [InlineData(new[] { "a", "b\u0085c", "d" }, "The name of class 1 'b\\u0085c' holds U+0085, a control character*")]
    [InlineData(new[] { "a", "b\u202Ec", "d" }, "The name of class 1 'b\\u202Ec' holds U+202E, a bidirectional embedding, override or isolate*")]
    [InlineData(new[] { "a", "\u2066b", "d" }, "The name of class 1 '\\u2066b' holds U+2066, a bidirectional embedding, override or isolate*")]
    public void Bad_class_names_are_refused_naming_the_class(string[] names, string message)
    {
        FluentActions.Invoking(() => TestData.RandomImages(4, 1).WithClassNames(names)).Should().Throw<ArgumentException>().WithMessage(message);
        if (names.Length == 3) FluentActions.Invoking(() => TestData.SmallNet<float>(1).ClassNames = names).Should().Throw<ArgumentException>();
    }

    [Fact]
    public void A_network_s_names_and_input_shape_are_copied_and_carried_by_clones()
    {
        var names = new List<string>(Abc);
        var net = TestData.SmallNet<float>(1);
        net.ClassNames = names;
        net.InputShape = (8, 8, 1);
        names[0] = "changed";
        net.ClassNames.Should().Equal(Abc, "the list is copied");
        var clone = net.Clone();
        clone.ClassNames.Should().Equal(Abc);
        clone.InputShape.Should().Be((8, 8, 1));
        FluentActions.Invoking(() => net.InputShape = (0, 8, 1)).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => net.InputShape = (8, 70_000, 1)).Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void A_model_file_stores_names_and_shape_as_version_3_and_without_them_stays_byte_identical()
    {
        var net = TestData.SmallNet<float>(1);
        byte[] plain = ModelFile.Serialize(net);
        BitConverter.ToUInt16(plain, 4).Should().Be(1);

        net.ClassNames = Abc;
        net.InputShape = (8, 8, 1);
        string path = Path.Combine(Dir, "named.model");
        ModelFile.Save(net, path);
        byte[] named = File.ReadAllBytes(path);
        BitConverter.ToUInt16(named, 4).Should().Be(3);
        var loaded = ModelFile.Load<float>(path);
        loaded.ClassNames.Should().Equal(Abc);
        loaded.InputShape.Should().Be((8, 8, 1));
        var x = new Tensor<float>(2, 8, 8, 1);
        for (int i = 0; i < x.Length; i++) x.Data[i] = (i % 13) / 13f;
        loaded.Forward(x).Data.ToArray().Should().Equal(net.Forward(x).Data.ToArray());

        net.ClassNames = null;
        net.InputShape = null;
        ModelFile.Serialize(net).Should().Equal(plain, "a network without metadata is written as before");

        net.ClassNames = Abc; // names alone, and a shape alone, are version 3 too
        ModelFile.Load<float>(Saved(net, "names.model")).InputShape.Should().BeNull();
        net.ClassNames = null;
        net.InputShape = (9, 9, 1);
        var shapeOnly = ModelFile.Load<float>(Saved(net, "shape.model"));
        (shapeOnly.ClassNames, shapeOnly.InputShape).Should().Be((null, (9, 9, 1)));
    }

    [Fact]
    public void Names_that_do_not_match_the_outputs_for_the_recorded_shape_are_not_saved()
    {
        var net = LeNet.Create<float>(1);
        net.ClassNames = Abc;
        net.InputShape = (28, 28, 1);
        string path = Path.Combine(Dir, "wrong.model");
        FluentActions.Invoking(() => ModelFile.Save(net, path)).Should().Throw<InvalidOperationException>()
            .WithMessage("The model format cannot store the network's metadata: 3 class names, but the network gives (10) outputs for its recorded 28x28x1 input");
        File.Exists(path).Should().BeFalse();
        net.InputShape = (12, 12, 1);
        FluentActions.Invoking(() => ModelFile.Save(net, path)).Should().Throw<InvalidOperationException>()
            .WithMessage("*the network does not take its recorded 12x12x1 input*");
    }

    [Fact]
    public void Damaged_metadata_is_refused_naming_the_file()
    {
        var net = TestData.SmallNet<float>(1);
        net.ClassNames = Abc; // metadata: flag 0, count 3, then 1 'a'... : 1 + 4 + 3·4 bytes before the hash
        byte[] good = ModelFile.Serialize(net);
        int flag = good.Length - 32 - 17, count = flag + 1, firstName = count + 4;

        Load(Edit(good, b => b[flag] = 2)).Should().Throw<ModelFormatException>().WithMessage("*: metadata: expected an input-shape flag of 0 or 1, found 2.");
        Load(Edit(good, b => BitConverter.TryWriteBytes(b.AsSpan(count), int.MaxValue)))
            .Should().Throw<ModelFormatException>().WithMessage("*: metadata: expected 0 to 65,536 class names that the 12 bytes left can hold, found a count of 2,147,483,647.");
        Load(Edit(good, b => b[firstName + 1] = (byte)'b')) // "bnt", "bee", "cat": still three different names
            .Should().NotThrow();
        Load(Edit(good, b => { b[firstName + 1] = (byte)'b'; b[firstName + 2] = (byte)'e'; b[firstName + 3] = (byte)'e'; }))
            .Should().Throw<ModelFormatException>().WithMessage("*: metadata: Classes 0 and 1 are both named 'bee'.");
        Load(Edit(good, b => b[firstName + 2] = (byte)'\n')).Should().Throw<ModelFormatException>().WithMessage("*: metadata: The name of class 0 *");
        Load(Edit(good, b => BitConverter.TryWriteBytes(b.AsSpan(count), 2)))
            .Should().Throw<ModelFormatException>().WithMessage("*: 4 unexpected bytes after the metadata.");
        byte[] cut = good[..(good.Length - 32 - 3)];
        Load(cut.Concat(SHA256.HashData(cut)).ToArray()).Should().Throw<ModelFormatException>().WithMessage("*: truncated: the file ends inside the metadata*");

        Action Load(byte[] bytes) => () => ModelFile.Deserialize<float>(bytes, "damaged.model");
    }

    [Theory]
    [InlineData(new byte[] { 0xFF, 0xFE, 0xFD })] // bytes UTF-8 never uses
    [InlineData(new byte[] { 0xC0, 0xAF, 0x41 })] // an overlong '/'
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 })] // a lone surrogate, U+D800
    public void Class_names_that_are_not_valid_utf8_are_refused_naming_the_file_and_the_class(byte[] name)
    {
        var net = TestData.SmallNet<float>(1);
        net.ClassNames = Abc; // metadata: flag 0, count 3, then 3 'bee'… : the second name's bytes start 10 bytes after the count
        byte[] good = ModelFile.Serialize(net);
        int second = good.Length - 32 - 17 + 1 + 4 + 4 + 1;

        FluentActions.Invoking(() => ModelFile.Deserialize<float>(Edit(good, b => name.CopyTo(b, second)), "bad.model"))
            .Should().Throw<ModelFormatException>()
            .WithMessage($"bad.model*metadata: the name of class 1 is not valid UTF-8 (bytes {Convert.ToHexString(name)}).");
    }

    [Fact]
    public void A_bidirectional_override_in_a_stored_class_name_is_refused_at_load()
    {
        var net = TestData.SmallNet<float>(1);
        net.ClassNames = Abc;
        byte[] good = ModelFile.Serialize(net);
        int second = good.Length - 32 - 17 + 1 + 4 + 4 + 1;
        byte[] bad = Edit(good, b => "\u202E"u8.ToArray().CopyTo(b, second)); // U+202E is three UTF-8 bytes, as "bee" is

        FluentActions.Invoking(() => ModelFile.Deserialize<float>(bad, "bad.model")).Should().Throw<ModelFormatException>()
            .WithMessage("bad.model*metadata: The name of class 1 '\\u202E' holds U+202E, a bidirectional*");
    }

    [Fact]
    public void A_checkpoint_keeps_the_network_s_names()
    {
        var data = TestData.RandomImages(8, 1).WithClassNames(Abc);
        var options = new TrainingOptions { Epochs = 1, BatchSize = 4, CheckpointDirectory = Dir };
        var net = TestData.SmallNet<float>(1);
        net.ClassNames = data.ClassNames;
        net.InputShape = (8, 8, 1);
        using (var trainer = new Trainer<float>(net, options)) trainer.Train(data);
        using var resumed = Trainer<float>.Resume(Dir, options);
        resumed.Network.ClassNames.Should().Equal(Abc);
        resumed.Network.InputShape.Should().Be((8, 8, 1));
    }

    [Fact]
    public void LeNet_for_other_images_is_the_tutorial_s_network_at_28x28x1_and_10_classes()
    {
        ModelFile.Serialize(LeNet.ForImages<float>(7, 28, 28, 1, 10)).Should().Equal(ModelFile.Serialize(LeNet.Create<float>(7)));
        var colour = LeNet.ForImages<float>(1, 32, 40, 3, 5);
        colour.OutputShapes([2, 32, 40, 3])[^1].Should().Equal(2, 5);
        ((Linear<float>)colour.Layers[^1]).InFeatures.Should().Be(16 * 5 * 7); // 32 → 28 → 14 → 10 → 5; 40 → 36 → 18 → 14 → 7
        FluentActions.Invoking(() => LeNet.ForImages<float>(1, 15, 28, 1, 10)).Should().Throw<ArgumentOutOfRangeException>()
            .WithMessage("LeNet takes images of at least 16x16 pixels (two 5x5 convolutions, each followed by a 2x2 pool), got 15x28.*");
        FluentActions.Invoking(() => LeNet.ForImages<float>(1, 300, 300, 1, 10)).Should().Throw<ArgumentOutOfRangeException>()
            .WithMessage("LeNet on 300x300 images would end in a Linear layer of 82,944 inputs, above the 65,536 a model file stores*");
        FluentActions.Invoking(() => LeNet.ForImages<float>(1, 28, 28, 1, 1)).Should().Throw<ArgumentOutOfRangeException>();
    }

    private string Saved(Sequential<float> net, string name)
    {
        string path = Path.Combine(Dir, name);
        ModelFile.Save(net, path);
        return path;
    }

    private static byte[] Edit(byte[] file, Action<byte[]> change)
    {
        byte[] payload = file[..^32];
        change(payload);
        return [.. payload, .. SHA256.HashData(payload)];
    }
}
