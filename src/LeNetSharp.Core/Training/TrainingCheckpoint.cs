using System.Globalization;
using System.Numerics;
using System.Security.Cryptography;
using System.Text;
using LeNetSharp.Data;
using LeNetSharp.Layers;
using LeNetSharp.Persistence;

namespace LeNetSharp.Training;

/// <summary>
/// Everything needed to continue a training run exactly: the network, the optimizer's state (momentum buffers, Adam's
/// moments and step count), the learning rate and where the schedule started, the position (epoch, batch, running
/// sums) and the options that fix the shuffling order and the updates. One file, written atomically, so model and
/// state can never disagree. The epoch count to train to is not recorded: <see cref="Trainer{T}.Resume"/> takes it
/// from its options.
/// <code>
/// "LNSC"                   4 bytes magic
/// version                  uint16 (5)
/// element size             uint8 (4 float32, 8 float64)
/// position                 int32 epoch, int32 batch, float64 loss sum, int64 correct, int64 seen
/// learning rate            float64, the optimizer's current one
/// options                  int32 batch size, int32 seed, uint8 shuffle, float64 decay, float64 momentum, float64 weight decay,
///                          uint8 optimizer (0 SGD, 1 Adam, 2 AdamW), uint8 nesterov, float64 dampening, float64 beta1,
///                          float64 beta2, float64 epsilon, uint8 amsgrad, float64 max gradient norm (0: none),
///                          string schedule (its description; empty: the tutorial's with the decay above)
/// schedule origin          int64 epoch, float64 rate: 0 and the initial learning rate (another epoch: a run resumed
///                          from a version-2 file, whose tutorial schedule goes on from that epoch's rate)
/// augmentation             uint8 (0: none, then nothing; 1: float64 max shift, float64 max rotation, float64 min scale,
///                          float64 max scale, int32 seed, then from version 5 uint8 flip horizontal)
/// dataset                  int64 image count (-1: none yet), 32 bytes SHA-256 of the images' shape, pixels and labels
/// optimizer state          string kind, int64 steps, int32 buffer count, then per buffer: string name, int32 array
///                          count, then per array: int32 length, elements
/// model                    int32 length, then a complete model file (see <see cref="ModelFile"/>)
/// SHA-256                  32 bytes over everything before it
/// </code>
/// Strings are UTF-8 with a 7-bit-encoded length, as <see cref="BinaryWriter"/> writes them. Version-2 files (SGD and
/// the tutorial's schedule only; momentum buffers where version 3 has the optimizer state, none of the fields added
/// to the options), version-3 files (without the augmentation, which a resume then does not check) and version-4 files
/// (without the flip: none) still load.
/// </summary>
public static class TrainingCheckpoint
{
    /// <summary>The checkpoint's file name inside its folder.</summary>
    public const string FileName = "checkpoint.lnsc";

    private const int Version = 5;

    /// <summary>The oldest version <see cref="Load{T}"/> reads.</summary>
    private const int OldestVersion = 2;

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
            w.Write((byte)o.Optimizer);
            w.Write(o.Nesterov);
            w.Write(o.Dampening);
            w.Write(o.Beta1);
            w.Write(o.Beta2);
            w.Write(o.Epsilon);
            w.Write(o.AmsGrad);
            w.Write(o.MaxGradientNorm ?? 0);
            w.Write(o.Schedule?.ToString() ?? "");
            w.Write(trainer.ScheduleOrigin.Epoch);
            w.Write(trainer.ScheduleOrigin.Rate);
            w.Write(o.Augmentation is not null);
            if (o.Augmentation is { } a)
            {
                w.Write(a.MaxShift);
                w.Write(a.MaxRotation);
                w.Write(a.MinScale);
                w.Write(a.MaxScale);
                w.Write(a.Seed);
                w.Write(a.FlipHorizontal);
            }

            var data = trainer.TrainedOn;
            w.Write(data.Count);
            w.Write(Convert.FromHexString(data.Sha256));
            var state = trainer.Optimizer.SaveState();
            w.Write(state.Optimizer);
            w.Write(state.Steps);
            w.Write(state.Buffers.Count);
            foreach (var (name, arrays) in state.Buffers.OrderBy(b => b.Key, StringComparer.Ordinal))
            {
                w.Write(name);
                w.Write(arrays.Length);
                foreach (var array in arrays)
                {
                    w.Write(array.Length);
                    foreach (T x in array) WriteElement(w, x);
                }
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
        if (version < OldestVersion || version > Version)
        {
            throw new ModelFormatException(path, $"expected checkpoint version {OldestVersion} to {Version}, found {version}"
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
            string schedule = "";
            (long Epoch, double Rate) origin = (position.Epoch, learningRate); // version 2: the tutorial's, from here
            if (version >= 3)
            {
                byte kind = r.ReadByte();
                if (!Enum.IsDefined((OptimizerKind)kind)) throw Refuse($"unknown optimizer {kind}.");
                saved = saved with
                {
                    Optimizer = (OptimizerKind)kind, Nesterov = r.ReadBoolean(), Dampening = r.ReadDouble(), Beta1 = r.ReadDouble(),
                    Beta2 = r.ReadDouble(), Epsilon = r.ReadDouble(), AmsGrad = r.ReadBoolean(),
                };
                double maxNorm = r.ReadDouble();
                saved = saved with { MaxGradientNorm = maxNorm == 0 ? null : maxNorm };
                schedule = r.ReadString();
                origin = (r.ReadInt64(), r.ReadDouble());
                if (origin.Epoch < 0 || origin.Epoch > position.Epoch || !(origin.Rate > 0 && double.IsFinite(origin.Rate))
                    || (origin.Epoch != 0 && schedule.Length != 0))
                {
                    throw Refuse($"inconsistent schedule origin (epoch {origin.Epoch}, rate {origin.Rate}"
                        + (schedule.Length == 0 ? ")." : $", schedule {schedule}): only the tutorial's schedule goes on from a version-2 run."));
                }
            }

            if (version >= 4)
            {
                byte augmented = r.ReadByte();
                if (augmented > 1) throw Refuse($"expected an augmentation flag of 0 or 1, found {augmented}.");
                if (augmented == 1)
                {
                    var augmentation = new ImageAugmentation
                    {
                        MaxShift = r.ReadDouble(), MaxRotation = r.ReadDouble(), MinScale = r.ReadDouble(), MaxScale = r.ReadDouble(), Seed = r.ReadInt32(),
                    };
                    if (version >= 5)
                    {
                        byte flip = r.ReadByte();
                        if (flip > 1) throw Refuse($"expected a flip flag of 0 or 1, found {flip}.");
                        augmentation = augmentation with { FlipHorizontal = flip == 1 };
                    }

                    augmentation.Validate();
                    saved = saved with { Augmentation = augmentation };
                }
            }

            var data = new DatasetIdentity(r.ReadInt64(), Convert.ToHexStringLower(r.ReadBytes(32)));
            long Left() => r.BaseStream.Length - r.BaseStream.Position;
            T[][] ReadArrays(string what)
            {
                int count = r.ReadInt32();
                if (count < 0 || count > Left() / 4) throw Refuse($"declares {count} {what}, the file has {Left():N0} bytes left.");
                var arrays = new T[count][];
                for (int i = 0; i < arrays.Length; i++)
                {
                    int length = r.ReadInt32();
                    if (length < 0 || (long)length * elementSize > Left())
                    {
                        throw Refuse($"truncated: {what} {i} declares {length} elements, the file has {Left():N0} bytes left.");
                    }

                    arrays[i] = new T[length];
                    for (int j = 0; j < arrays[i].Length; j++) arrays[i][j] = ReadElement<T>(r);
                }

                return arrays;
            }

            OptimizerState<T> state;
            if (version >= 3)
            {
                string optimizer = r.ReadString();
                long steps = r.ReadInt64();
                int count = r.ReadInt32();
                if (count < 0 || count > Left() / 5) throw Refuse($"declares {count} optimizer buffers, the file has {Left():N0} bytes left.");
                var buffers = new Dictionary<string, T[][]>(StringComparer.Ordinal);
                for (int i = 0; i < count; i++)
                {
                    string name = r.ReadString();
                    if (!buffers.TryAdd(name, ReadArrays($"\"{name}\" buffers"))) throw Refuse($"the optimizer buffer \"{name}\" appears twice.");
                }

                if (string.IsNullOrWhiteSpace(optimizer) || steps < 0) throw Refuse($"inconsistent optimizer state ({optimizer}, {steps} steps).");
                state = new OptimizerState<T>(optimizer, steps, buffers);
            }
            else
            {
                var velocity = ReadArrays("momentum buffers");
                long batches = data.Count > 0 ? (data.Count + saved.BatchSize - 1) / Math.Max(1, saved.BatchSize) : 0;
                var buffers = velocity.Length > 0 ? new Dictionary<string, T[][]> { ["momentum_buffer"] = velocity } : [];
                state = new OptimizerState<T>("SGD", Math.Max(0, position.Epoch * batches + position.Batch), buffers);
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

            return new Contents<T>(path, network, position, learningRate, saved, schedule, origin, state, data, RecordsAugmentation: version >= 4);
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
    /// <param name="Path">The checkpoint file.</param>
    /// <param name="Network">The network it holds.</param>
    /// <param name="Position">Where the run stood.</param>
    /// <param name="LearningRate">The optimizer's rate when it was written.</param>
    /// <param name="Saved">The options it records (the schedule apart).</param>
    /// <param name="Schedule">The schedule's description; empty for the tutorial's.</param>
    /// <param name="ScheduleOrigin">Epoch 0 and the initial rate, or where a version-2 run's tutorial schedule goes on from.</param>
    /// <param name="State">The optimizer's state.</param>
    /// <param name="TrainedOn">The dataset of the run.</param>
    /// <param name="RecordsAugmentation">Whether the file records the augmentation (version 4 on), so that a resume can check it.</param>
    internal sealed record Contents<T>(
        string Path, Sequential<T> Network, TrainingPosition Position, double LearningRate, TrainingOptions Saved, string Schedule,
        (long Epoch, double Rate) ScheduleOrigin, OptimizerState<T> State, DatasetIdentity TrainedOn, bool RecordsAugmentation)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        /// <summary>The run's initial learning rate, when the checkpoint knows it (not for a version-2 run past epoch 0).</summary>
        public double? InitialLearningRate => ScheduleOrigin.Epoch == 0 ? ScheduleOrigin.Rate : null;

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
            Check("optimizer", Saved.Optimizer, options.Optimizer);
            Check("nesterov", Saved.Nesterov, options.Nesterov);
            Check("dampening", Saved.Dampening, options.Dampening);
            Check("beta1", Saved.Beta1, options.Beta1);
            Check("beta2", Saved.Beta2, options.Beta2);
            Check("epsilon", Saved.Epsilon, options.Epsilon);
            Check("amsgrad", Saved.AmsGrad, options.AmsGrad);
            Check("max gradient norm", Saved.MaxGradientNorm?.ToString(CultureInfo.InvariantCulture) ?? "none",
                options.MaxGradientNorm?.ToString(CultureInfo.InvariantCulture) ?? "none");
            Check("schedule", Schedule.Length == 0 ? "the tutorial's" : Schedule, options.Schedule?.ToString() ?? "the tutorial's");
            if (RecordsAugmentation) Check("augmentation", Describe(Saved.Augmentation), Describe(options.Augmentation));
            if (mismatches.Count > 0)
            {
                throw new ModelFormatException(Path, $"cannot resume with different options: {string.Join(", ", mismatches)}.");
            }
        }

        /// <summary>An augmentation's settings on one line ("none" without one), as a resume's mismatch message names them.</summary>
        private static string Describe(ImageAugmentation? a) => a is null ? "none" : string.Create(CultureInfo.InvariantCulture,
            $"(max shift {a.MaxShift}, max rotation {a.MaxRotation}, scale {a.MinScale} to {a.MaxScale}, {(a.FlipHorizontal ? "" : "no ")}flip, seed {a.Seed})");

        /// <summary>Gives <paramref name="optimizer"/> the saved state (buffers and step count).</summary>
        public void RestoreOptimizer(IOptimizer<T> optimizer)
        {
            try
            {
                optimizer.LoadState(State);
            }
            catch (ArgumentException e)
            {
                throw new ModelFormatException(Path, $"the optimizer state does not fit the network ({ModelFile.OneLine(e.Message)}).");
            }
        }
    }
}
