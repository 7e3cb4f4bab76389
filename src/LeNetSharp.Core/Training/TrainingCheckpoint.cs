using System.Numerics;
using System.Security.Cryptography;
using System.Text;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;

namespace LeNetSharp.Training;

/// <summary>
/// Everything needed to continue a training run exactly: the network, the optimizer's momentum buffers, the
/// learning rate, the position (epoch, batch, running sums) and the options that fix the shuffling order. One
/// file, written atomically, so model and state can never disagree. The epoch count to train to is not recorded:
/// <see cref="Trainer{T}.Resume"/> takes it from its options.
/// <code>
/// "LNSC"                   4 bytes magic
/// version                  uint16 (2)
/// element size             uint8 (4 float32, 8 float64)
/// position                 int32 epoch, int32 batch, float64 loss sum, int64 correct, int64 seen
/// learning rate            float64
/// options                  int32 batch size, int32 seed, uint8 shuffle, float64 decay, float64 momentum, float64 weight decay
/// dataset                  int64 image count (-1: none yet), 32 bytes SHA-256 of the images' shape, pixels and labels
/// momentum buffers         int32 count, then per buffer: int32 length, elements
/// model                    int32 length, then a complete model file (see <see cref="ModelFile"/>)
/// SHA-256                  32 bytes over everything before it
/// </code>
/// </summary>
public static class TrainingCheckpoint
{
    /// <summary>The checkpoint's file name inside its folder.</summary>
    public const string FileName = "checkpoint.lnsc";

    private const int Version = 2;

    /// <summary>The largest checkpoint file <see cref="Load{T}"/> reads (2 GiB).</summary>
    private const long MaxFileBytes = int.MaxValue;
    private static readonly byte[] Magic = "LNSC"u8.ToArray();

    /// <summary>Writes the state of <paramref name="trainer"/> to <paramref name="directory"/>/<see cref="FileName"/> atomically.</summary>
    /// <param name="directory">The checkpoint folder (created if missing).</param>
    /// <param name="trainer">The trainer, between two steps.</param>
    /// <typeparam name="T">Element type.</typeparam>
    public static void Save<T>(string directory, Trainer<T> trainer) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(trainer);
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            var o = trainer.Options;
            var p = trainer.Position;
            w.Write(Magic);
            w.Write((ushort)Version);
            w.Write((byte)(typeof(T) == typeof(float) ? 4 : 8));
            w.Write(p.Epoch);
            w.Write(p.Batch);
            w.Write(p.LossSum);
            w.Write(p.Correct);
            w.Write(p.Seen);
            w.Write(trainer.Optimizer.LearningRate);
            w.Write(o.BatchSize);
            w.Write(o.Seed);
            w.Write(o.Shuffle);
            w.Write(o.Decay);
            w.Write(o.Momentum);
            w.Write(o.WeightDecay);
            var data = trainer.TrainedOn;
            w.Write(data.Count);
            w.Write(Convert.FromHexString(data.Sha256));
            var velocity = trainer.Optimizer.Velocity;
            w.Write(velocity.Length);
            foreach (var v in velocity)
            {
                w.Write(v.Length);
                foreach (T x in v) WriteElement(w, x);
            }

            byte[] model = ModelFile.Serialize(trainer.Network);
            w.Write(model.Length);
            w.Write(model);
        }

        ms.Write(SHA256.HashData(ms.GetBuffer().AsSpan(0, (int)ms.Length)));
        byte[] bytes = ms.ToArray();
        AtomicFile.Write(Path.Combine(directory, FileName), s => s.Write(bytes));
    }

    /// <summary>Reads and verifies the checkpoint in <paramref name="directory"/>.</summary>
    /// <param name="directory">The checkpoint folder.</param>
    /// <typeparam name="T">Element type of the run.</typeparam>
    /// <returns>The decoded checkpoint.</returns>
    /// <exception cref="FileNotFoundException">No checkpoint file in the folder.</exception>
    /// <exception cref="ModelFormatException">
    /// Not a regular file, corrupt, truncated, of another version or element type. Sizes it declares are compared
    /// with the bytes left before anything is allocated.
    /// </exception>
    internal static Contents<T> Load<T>(string directory) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string path = Path.Combine(directory, FileName);
        ModelFormatException Refuse(string problem) => new(path, problem);
        byte[] bytes;
        using (var file = SafeFile.OpenRead(path, Refuse, $"{path}: no checkpoint to resume from."))
        {
            var magic = new byte[Magic.Length];
            if (file.ReadAtLeast(magic, magic.Length, throwOnEndOfStream: false) < Magic.Length || !magic.AsSpan().SequenceEqual(Magic))
            {
                throw Refuse("expected a LeNetSharp checkpoint (magic \"LNSC\").");
            }

            file.Position = 0;
            bytes = SafeFile.ReadRest(file, MaxFileBytes, Refuse);
        }

        if (bytes.Length < Magic.Length + 2 + 32) throw Refuse($"truncated: {bytes.Length} bytes.");
        int version = BitConverter.ToUInt16(bytes, Magic.Length);
        if (version != Version)
        {
            throw new ModelFormatException(path, $"expected checkpoint version {Version}, found {version}"
                + (version == 1 ? " (made before checkpoints recorded their dataset; start a new run)." : "."));
        }
        string expected = Convert.ToHexStringLower(bytes.AsSpan(bytes.Length - 32));
        string actual = Convert.ToHexStringLower(SHA256.HashData(bytes.AsSpan(0, bytes.Length - 32)));
        if (expected != actual)
        {
            throw new ModelFormatException(path, $"checksum mismatch: the file records SHA-256 {expected}, its content hashes to {actual} (corrupt or truncated).");
        }

        try
        {
            using var r = new BinaryReader(new MemoryStream(bytes, Magic.Length + 2, bytes.Length - Magic.Length - 2 - 32));
            int elementSize = r.ReadByte();
            int wanted = typeof(T) == typeof(float) ? 4 : 8;
            if (elementSize != wanted) throw new ModelFormatException(path, $"expected {wanted}-byte elements, the checkpoint has {elementSize}.");
            var position = new TrainingPosition(r.ReadInt32(), r.ReadInt32(), r.ReadDouble(), r.ReadInt64(), r.ReadInt64());
            double learningRate = r.ReadDouble();
            if (!(learningRate > 0 && double.IsFinite(learningRate))) throw Refuse($"expected a positive learning rate, found {learningRate}.");
            var saved = new TrainingOptions
            {
                BatchSize = r.ReadInt32(), Seed = r.ReadInt32(), Shuffle = r.ReadBoolean(),
                Decay = r.ReadDouble(), Momentum = r.ReadDouble(), WeightDecay = r.ReadDouble(),
            };
            var data = new DatasetIdentity(r.ReadInt64(), Convert.ToHexStringLower(r.ReadBytes(32)));
            long Left() => r.BaseStream.Length - r.BaseStream.Position;
            int buffers = r.ReadInt32();
            if (buffers < 0 || buffers > Left() / 4) throw Refuse($"declares {buffers} momentum buffers, the file has {Left():N0} bytes left.");
            var velocity = new T[buffers][];
            for (int i = 0; i < velocity.Length; i++)
            {
                int length = r.ReadInt32();
                if (length < 0 || (long)length * elementSize > Left())
                {
                    throw Refuse($"truncated: momentum buffer {i} declares {length} elements, the file has {Left():N0} bytes left.");
                }

                velocity[i] = new T[length];
                for (int j = 0; j < velocity[i].Length; j++) velocity[i][j] = ReadElement<T>(r);
            }

            int modelLength = r.ReadInt32();
            if (modelLength < 0 || modelLength > Left()) throw Refuse($"truncated: the model declares {modelLength} bytes, the file has {Left():N0} left.");
            byte[] model = r.ReadBytes(modelLength);
            if (Left() != 0) throw Refuse($"{Left()} unexpected bytes after the model.");
            var network = ModelFile.Deserialize<T>(model, path);
            if (position.Epoch < 0 || position.Batch < 0 || position.Seen < 0 || position.Correct < 0 || position.Correct > position.Seen)
            {
                throw Refuse($"inconsistent position (epoch {position.Epoch}, batch {position.Batch}, {position.Correct} right of {position.Seen}).");
            }

            return new Contents<T>(path, network, position, learningRate, saved, velocity, data);
        }
        catch (Exception e) when (e is EndOfStreamException or ArgumentException or OverflowException or FormatException)
        {
            throw new ModelFormatException(path, $"inconsistent content ({ModelFile.OneLine(e.Message)}).");
        }
    }

    private static void WriteElement<T>(BinaryWriter w, T x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float)) w.Write(float.CreateTruncating(x));
        else w.Write(double.CreateTruncating(x));
    }

    private static T ReadElement<T>(BinaryReader r) where T : unmanaged, IFloatingPointIeee754<T> =>
        typeof(T) == typeof(float) ? T.CreateTruncating(r.ReadSingle()) : T.CreateTruncating(r.ReadDouble());

    /// <summary>A decoded checkpoint.</summary>
    internal sealed record Contents<T>(
        string Path, Sequential<T> Network, TrainingPosition Position, double LearningRate, TrainingOptions Saved, T[][] Velocity,
        DatasetIdentity TrainedOn)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        /// <summary>Throws unless <paramref name="options"/> continue the same run.</summary>
        public void EnsureCompatible(TrainingOptions options)
        {
            var mismatches = new List<string>();
            void Check<TV>(string name, TV saved, TV now)
            {
                if (!EqualityComparer<TV>.Default.Equals(saved, now)) mismatches.Add($"{name} {now} (the checkpoint has {saved})");
            }

            Check("batch size", Saved.BatchSize, options.BatchSize);
            Check("seed", Saved.Seed, options.Seed);
            Check("shuffle", Saved.Shuffle, options.Shuffle);
            Check("decay", Saved.Decay, options.Decay);
            Check("momentum", Saved.Momentum, options.Momentum);
            Check("weight decay", Saved.WeightDecay, options.WeightDecay);
            if (mismatches.Count > 0)
            {
                throw new ModelFormatException(Path, $"cannot resume with different options: {string.Join(", ", mismatches)}.");
            }
        }

        /// <summary>Copies the saved momentum buffers into <paramref name="optimizer"/>.</summary>
        public void RestoreVelocity(Sgd<T> optimizer)
        {
            var target = optimizer.Velocity;
            if (target.Length != Velocity.Length || target.Where((v, i) => v.Length != Velocity[i].Length).Any())
            {
                throw new ModelFormatException(Path, "the momentum buffers do not match the network's parameters.");
            }

            for (int i = 0; i < target.Length; i++) Velocity[i].CopyTo(target[i], 0);
        }
    }
}
