using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace OrleansGpu.Inference.Onnx;

/// <summary>
/// One ONNX Runtime session over a transformer encoder: token ids in, hidden states <c>[batch, tokens, hidden]</c>
/// out (or <c>[batch, hidden]</c> from a graph that pools, see <see cref="PoolingGraph"/>). Feeds the inputs the graph declares (<c>input_ids</c>, <c>attention_mask</c>, <c>token_type_ids</c> as
/// zeros) with the element type it declares. Safe for concurrent callers: ONNX Runtime sessions are.
/// </summary>
public sealed class OnnxEncoder : IDisposable
{
    private readonly InferenceSession _session;
    private readonly string[] _inputNames;
    private readonly InputRole[] _inputRoles;
    private readonly TensorElementType[] _inputTypes;
    private readonly string[] _outputNames;

    private OnnxEncoder(InferenceSession session, string provider, EncoderOptions options)
    {
        _session = session;
        Provider = provider;
        PassRunner = options.PassRunner;
        Logger = options.Logger;
        _inputNames = [.. session.InputMetadata.Keys];
        _inputRoles = [.. _inputNames.Select(RoleOf)];
        _inputTypes = [.. _inputNames.Select(n => session.InputMetadata[n].ElementDataType)];
        if (!_inputRoles.Contains(InputRole.Ids))
        {
            throw new InvalidDataException($"The encoder has no input_ids input (inputs: {string.Join(", ", _inputNames)}).");
        }

        var output = session.OutputMetadata.First();
        _outputNames = [output.Key];
        var dims = output.Value.Dimensions;
        HiddenSize = dims.Length is 2 or 3 && dims[^1] > 0 ? dims[^1] : -1;
    }

    /// <summary>The execution provider the session runs on: <c>CUDA:0</c> or <c>CPU</c>.</summary>
    public string Provider { get; }

    /// <summary>The hidden size when the graph declares it; otherwise learnt from the first run.</summary>
    public int HiddenSize { get; private set; }

    public bool OnGpu => Provider.StartsWith("CUDA", StringComparison.Ordinal);

    /// <summary>Where the engine runs this encoder's passes (<see cref="EncoderOptions.PassRunner"/>).</summary>
    public IPassRunner PassRunner { get; }

    internal ILogger Logger { get; }

    /// <summary>Opens a session from a model file.</summary>
    public static OnnxEncoder Open(string modelPath, EncoderOptions options) =>
        Open(options, so => new InferenceSession(modelPath, so));

    /// <summary>
    /// Opens a session from model bytes (for instance a graph cut at a layer). External weight files, if the graph
    /// refers to any, are looked up in <paramref name="externalDataFolder"/>.
    /// </summary>
    public static OnnxEncoder Open(byte[] model, string? externalDataFolder, EncoderOptions options) =>
        Open(options, so =>
        {
            if (externalDataFolder is not null)
            {
                so.AddSessionConfigEntry("session.model_external_initializers_file_folder_path", externalDataFolder);
            }

            return new InferenceSession(model, so);
        });

    /// <summary>The CUDA execution provider's options for a session opened with <paramref name="options"/>.</summary>
    internal static Dictionary<string, string> CudaProviderOptions(EncoderOptions options)
    {
        var invariant = System.Globalization.CultureInfo.InvariantCulture;
        var cuda = new Dictionary<string, string>
        {
            ["device_id"] = options.Device.DeviceId.ToString(invariant),
            ["use_tf32"] = options.AllowTf32 ? "1" : "0",
            ["arena_extend_strategy"] = "kSameAsRequested",
        };
        if (options.GpuMemoryLimit is > 0 and var limit)
        {
            cuda["gpu_mem_limit"] = limit.ToString(invariant);
        }

        return cuda;
    }

    private static OnnxEncoder Open(EncoderOptions options, Func<SessionOptions, InferenceSession> create)
    {
        var device = options.Device;
        if (device.Kind != ExecutionDeviceKind.Cpu)
        {
            SessionOptions? cudaOptions = null;
            try
            {
                cudaOptions = NewSessionOptions(options, options.IntraOpThreads);
                using var cuda = new OrtCUDAProviderOptions();
                cuda.UpdateOptions(CudaProviderOptions(options));
                cudaOptions.AppendExecutionProvider_CUDA(cuda);
                var session = create(cudaOptions);
                var provider = $"CUDA:{device.DeviceId}";
                options.Logger.LogInformation("ONNX Runtime session on {Provider} (device setting {Device})", provider, device);
                return new OnnxEncoder(session, provider, options);
            }
            catch (Exception ex) when (device.Kind == ExecutionDeviceKind.Auto && ex is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException)
            {
                options.Logger.LogInformation("CUDA is not usable here ({Reason}); running on the CPU", FirstLine(ex.Message));
            }
            catch (Exception ex) when (device.Kind == ExecutionDeviceKind.Cuda)
            {
                throw new DeviceUnavailableException($"Device {device} was requested but CUDA is not usable: {FirstLine(ex.Message)}", ex);
            }
            finally
            {
                cudaOptions?.Dispose();
            }
        }

        var threads = options.CpuIntraOpThreads;
        using var cpuOptions = NewSessionOptions(options, threads);
        if (options.Float16Graph)
        {
            cpuOptions.GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_EXTENDED;
        }

        var cpuSession = create(cpuOptions);
        options.Logger.LogInformation(
            "ONNX Runtime session on CPU (device setting {Device}; {Threads} intra-op threads per pass, {Passes} passes at once, {Cores} cores)",
            device, threads > 0 ? threads : "ONNX Runtime's default", options.ConcurrentRuns, Environment.ProcessorCount);
        return new OnnxEncoder(cpuSession, "CPU", options);
    }

    private static SessionOptions NewSessionOptions(EncoderOptions options, int intraOpThreads)
    {
        var so = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,

            // Memory patterns are planned per input shape and kept; with a new [batch, tokens] in nearly every pass
            // they buy nothing and hold device memory.
            EnableMemoryPattern = false,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
        if (intraOpThreads > 0)
        {
            so.IntraOpNumThreads = intraOpThreads;
        }

        // A serving process mostly waits; spinning threads would steal the cores that tokenisation needs.
        so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        return so;
    }

    private static string FirstLine(string message) => message.Split('\n', 2)[0].Trim();

    /// <summary>
    /// Runs one padded batch. <paramref name="sequences"/> are token ids with their special tokens; shorter ones
    /// are padded with <paramref name="padId"/> and masked out.
    /// </summary>
    public HiddenStates Run(IReadOnlyList<int[]> sequences, int padId)
    {
        ArgumentOutOfRangeException.ThrowIfZero(sequences.Count);
        var batch = sequences.Count;
        var tokens = sequences.Max(s => s.Length);
        var count = batch * tokens;
        long[] shape = [batch, tokens];

        var ids = ArrayPool<long>.Shared.Rent(count);
        var mask = ArrayPool<long>.Shared.Rent(count);
        var inputs = new List<OrtValue>(_inputNames.Length);
        var rented32 = new List<int[]>();
        try
        {
            for (var b = 0; b < batch; b++)
            {
                var seq = sequences[b];
                var row = b * tokens;
                for (var t = 0; t < tokens; t++)
                {
                    var real = t < seq.Length;
                    ids[row + t] = real ? seq[t] : padId;
                    mask[row + t] = real ? 1 : 0;
                }
            }

            for (var i = 0; i < _inputNames.Length; i++)
            {
                inputs.Add(CreateInput(_inputRoles[i], _inputTypes[i], ids, mask, count, shape, rented32));
            }

            using var runOptions = new RunOptions();
            var outputs = _session.Run(runOptions, _inputNames, inputs, _outputNames);
            var states = new HiddenStates(outputs, batch, tokens);
            if (HiddenSize < 0)
            {
                HiddenSize = states.HiddenSize;
            }

            return states;
        }
        finally
        {
            foreach (var value in inputs)
            {
                value.Dispose();
            }

            ArrayPool<long>.Shared.Return(ids);
            ArrayPool<long>.Shared.Return(mask);
            foreach (var a in rented32)
            {
                ArrayPool<int>.Shared.Return(a);
            }
        }
    }

    private static OrtValue CreateInput(
        InputRole role, TensorElementType type, long[] ids, long[] mask, int count, long[] shape, List<int[]> rented32)
    {
        if (type == TensorElementType.Int64)
        {
            var source = role switch
            {
                InputRole.Ids => ids,
                InputRole.Mask => mask,
                _ => null,
            };
            if (source is null)
            {
                var zeros = new long[count];
                return OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, zeros.AsMemory(), shape);
            }

            return OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, source.AsMemory(0, count), shape);
        }

        if (type == TensorElementType.Int32)
        {
            var buffer = ArrayPool<int>.Shared.Rent(count);
            rented32.Add(buffer);
            for (var k = 0; k < count; k++)
            {
                buffer[k] = role switch
                {
                    InputRole.Ids => (int)ids[k],
                    InputRole.Mask => (int)mask[k],
                    _ => 0,
                };
            }

            return OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, buffer.AsMemory(0, count), shape);
        }

        throw new InvalidDataException($"Encoder input of type {type} is not supported; expected int64 or int32.");
    }

    private static InputRole RoleOf(string name) => name switch
    {
        "input_ids" => InputRole.Ids,
        "attention_mask" => InputRole.Mask,
        _ => InputRole.Zeros, // token_type_ids and anything else that defaults to zeros
    };

    public void Dispose() => _session.Dispose();

    private enum InputRole
    {
        Ids,
        Mask,
        Zeros,
    }
}

/// <summary>
/// The hidden states of one batch, <c>[batch, tokens, hidden]</c>, read in place from ONNX Runtime's output. A graph
/// that pools gives <c>[batch, hidden]</c>: one vector per sequence, seen here as a single token.
/// </summary>
public sealed class HiddenStates : IDisposable
{
    private readonly IDisposableReadOnlyCollection<OrtValue> _outputs;
    private readonly float[]? _converted;

    internal HiddenStates(IDisposableReadOnlyCollection<OrtValue> outputs, int batch, int tokens)
    {
        _outputs = outputs;
        var value = outputs.First();
        var info = value.GetTensorTypeAndShape();
        var shape = info.Shape;
        var pooled = shape.Length == 2 && shape[0] == batch;
        if (!pooled && (shape.Length != 3 || shape[0] != batch || shape[1] != tokens))
        {
            outputs.Dispose();
            throw new InvalidDataException($"Encoder output has shape [{string.Join(", ", shape)}]; expected [{batch}, {tokens}, hidden].");
        }

        Batch = batch;
        Tokens = pooled ? 1 : tokens;
        HiddenSize = (int)shape[^1];
        if (info.ElementDataType == TensorElementType.Float16)
        {
            // ONNX Runtime's Float16 has System.Half's layout; the vectorised conversion is many times faster than a
            // per-value cast, which showed as half the model-only throughput of an fp16 DeBERTa on an H200.
            var half = MemoryMarshal.Cast<Float16, Half>(value.GetTensorDataAsSpan<Float16>());
            _converted = new float[half.Length];
            TensorPrimitives.ConvertToSingle(half, _converted);
        }
        else if (info.ElementDataType != TensorElementType.Float)
        {
            outputs.Dispose();
            throw new InvalidDataException($"Encoder output of type {info.ElementDataType} is not supported.");
        }
    }

    public int Batch { get; }

    public int Tokens { get; }

    public int HiddenSize { get; }

    /// <summary>All values, row-major.</summary>
    public ReadOnlySpan<float> Values => _converted ?? _outputs.First().GetTensorDataAsSpan<float>();

    /// <summary>The hidden vector of token <paramref name="token"/> of sequence <paramref name="sequence"/>.</summary>
    public ReadOnlySpan<float> Token(int sequence, int token) =>
        Values.Slice(((sequence * Tokens) + token) * HiddenSize, HiddenSize);

    public void Dispose() => _outputs.Dispose();
}

/// <summary>The requested device cannot run models (for instance <c>cuda</c> without a usable GPU).</summary>
public sealed class DeviceUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
