using System.Buffers.Binary;
using OrleansGpu.Inference.Checkpoints;

namespace OrleansGpu.Tests.Inference.Checkpoints;

public sealed class SafetensorsCheckpointTests
{
    // Edge cases of each format (zeros, one, extremes, subnormals, infinities, NaN) plus seeded random patterns.
    private static readonly ushort[] HalfEdges = [0x0000, 0x8000, 0x3C00, 0xC000, 0x7BFF, 0xFBFF, 0x0001, 0x03FF, 0x0400, 0x3555, 0x7C00, 0xFC00, 0x7E00, 0x7C01];
    private static readonly ushort[] BFloat16Edges = [0x0000, 0x8000, 0x3F80, 0xC000, 0x7F7F, 0xFF7F, 0x0001, 0x007F, 0x0080, 0x3EAB, 0x7F80, 0xFF80, 0x7FC0, 0x7F81];

    [Fact]
    public void Float16_weights_are_upcast_exactly()
    {
        var bits = HalfEdges.Concat(RandomPatterns(1)).ToArray();
        var values = ReadBack("F16", bits);
        for (var i = 0; i < bits.Length; i++)
        {
            // Half: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits.
            AssertSameFloat(FromFields(bits[i] >> 15, (bits[i] >> 10) & 0x1F, bits[i] & 0x3FF, exponentBits: 5, mantissaBits: 10), values[i], bits[i]);
        }
    }

    [Fact]
    public void Bfloat16_weights_are_upcast_exactly()
    {
        var bits = BFloat16Edges.Concat(RandomPatterns(2)).ToArray();
        var values = ReadBack("BF16", bits);
        for (var i = 0; i < bits.Length; i++)
        {
            // bfloat16: 1 sign bit, 8 exponent bits (bias 127), 7 mantissa bits.
            AssertSameFloat(FromFields(bits[i] >> 15, (bits[i] >> 7) & 0xFF, bits[i] & 0x7F, exponentBits: 8, mantissaBits: 7), values[i], bits[i]);
        }
    }

    [Fact]
    public void Float64_weights_are_rounded_to_float32()
    {
        double[] values = [0, -0.0, 1, 1.0 / 3, 1e-40, 3.4e38, double.PositiveInfinity];
        using var folder = new TempFolder();
        var data = values.SelectMany(v => BitConverter.GetBytes(v)).ToArray();
        SafetensorsFiles.Write(folder.File("w.safetensors"), [new("w", "F64", [values.Length], data)]);

        using var checkpoint = SafetensorsCheckpoint.Open(folder.File("w.safetensors"));
        Assert.Equal(values.Select(v => (float)v), checkpoint.ReadFloat32("w"));
        Assert.False(checkpoint.TryGetFloat32Memory("w", out _));
    }

    [Fact]
    public void Metadata_and_shapes_are_read()
    {
        using var folder = new TempFolder();
        SafetensorsFiles.Write(folder.File("w.safetensors"), [new("a.weight", "F32", [2, 3], new byte[24]), new("scalar", "F32", [], new byte[4]), new("empty", "F32", [0, 5], [])]);

        using var checkpoint = SafetensorsCheckpoint.Open(folder.File("w.safetensors"));
        Assert.Equal("pt", checkpoint.Metadata["format"]);
        Assert.Equal([2L, 3L], checkpoint.Info("a.weight").Shape);
        Assert.Single(checkpoint.ReadFloat32("scalar"));
        Assert.Empty(checkpoint.ReadFloat32("empty"));
    }

    [Theory]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]", "malformed")]
    [InlineData("[1, 2, 3]", "not a JSON object")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [2]}}", "malformed")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": \"2\", \"data_offsets\": [0, 8]}}", "malformed")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [2.5], \"data_offsets\": [0, 8]}}", "malformed")]
    [InlineData("{\"w\": 7}", "malformed")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8000]}}", "do not fit")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}", "do not fit")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [-8, 0]}}", "do not fit")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 9223372036854775807]}}", "do not fit")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", "do not fit")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", "do not fit")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 4], \"data_offsets\": [0, 8]}}", "do not fit")]
    [InlineData("{\"w\": {\"dtype\": \"F8_E4M3\", \"shape\": [8], \"data_offsets\": [0, 8]}}", "F8_E4M3")]
    [InlineData("{\"w\": {\"dtype\": null, \"shape\": [2], \"data_offsets\": [0, 8]}}", "not supported")]
    public void A_malformed_header_is_a_checkpoint_error(string header, string expected)
    {
        using var folder = new TempFolder();
        SafetensorsFiles.WriteRaw(folder.File("w.safetensors"), header, new byte[8]);

        var error = Assert.Throws<CheckpointException>(() => SafetensorsCheckpoint.Open(folder.File("w.safetensors")));
        Assert.Contains(expected, error.Message);
        Assert.Contains("w.safetensors", error.Message);
    }

    [Fact]
    public void An_empty_shape_dimension_makes_an_empty_tensor_not_a_wrapped_size()
    {
        // [2^62, 4, 0] has no elements, however large its other dimensions ([2^62, 4] alone is refused above).
        using var folder = new TempFolder();
        SafetensorsFiles.WriteRaw(folder.File("w.safetensors"), "{\"w\": {\"dtype\": \"F32\", \"shape\": [4611686018427387904, 4, 0], \"data_offsets\": [0, 0]}}", []);
        using var checkpoint = SafetensorsCheckpoint.Open(folder.File("w.safetensors"));
        Assert.Empty(checkpoint.ReadFloat32("w"));
    }

    [Theory]
    [InlineData(-1L)]
    [InlineData(0L)]
    [InlineData(4096L)]
    [InlineData(long.MaxValue)]
    public void A_header_length_that_does_not_fit_the_file_is_a_checkpoint_error(long claimed)
    {
        using var folder = new TempFolder();
        SafetensorsFiles.WriteRaw(folder.File("w.safetensors"), "{}", new byte[8], claimedHeaderLength: claimed);

        var error = Assert.Throws<CheckpointException>(() => SafetensorsCheckpoint.Open(folder.File("w.safetensors")));
        Assert.Contains("header length", error.Message);
    }

    [Fact]
    public void A_file_shorter_than_its_length_field_is_a_checkpoint_error()
    {
        using var folder = new TempFolder();
        File.WriteAllBytes(folder.File("w.safetensors"), [1, 2, 3]);

        Assert.Throws<CheckpointException>(() => SafetensorsCheckpoint.Open(folder.File("w.safetensors")));
    }

    [Fact]
    public void Integer_tensors_are_not_read_as_float32()
    {
        using var folder = new TempFolder();
        SafetensorsFiles.Write(folder.File("w.safetensors"), [new("ids", "I64", [2], new byte[16])]);
        using var checkpoint = SafetensorsCheckpoint.Open(folder.File("w.safetensors"));

        var error = Assert.Throws<CheckpointException>(() => checkpoint.ReadFloat32("ids"));
        Assert.Contains("ids", error.Message);
        Assert.Equal(16, checkpoint.ReadBytes("ids").Length);
    }

    private static float[] ReadBack(string dtype, ushort[] bits)
    {
        using var folder = new TempFolder();
        var data = new byte[bits.Length * 2];
        for (var i = 0; i < bits.Length; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(i * 2), bits[i]);
        }

        SafetensorsFiles.Write(folder.File("w.safetensors"), [new("w", dtype, [bits.Length], data)]);
        using var checkpoint = ModelWeights.OpenFile(folder.File("w.safetensors"));
        Assert.Equal(dtype == "F16" ? TensorDType.F16 : TensorDType.BF16, checkpoint.Info("w").DType);
        Assert.False(checkpoint.TryGetFloat32Memory("w", out _));
        return checkpoint.ReadFloat32("w");
    }

    private static IEnumerable<ushort> RandomPatterns(int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, 2000).Select(_ => (ushort)random.Next(0, 65536));
    }

    /// <summary>The value IEEE 754 gives a binary float's fields, computed in double (exact for both formats).</summary>
    private static double FromFields(int sign, int exponent, int mantissa, int exponentBits, int mantissaBits)
    {
        var bias = (1 << (exponentBits - 1)) - 1;
        var maxExponent = (1 << exponentBits) - 1;
        var magnitude = exponent == maxExponent
            ? (mantissa == 0 ? double.PositiveInfinity : double.NaN)
            : exponent == 0
                ? Math.ScaleB(mantissa, 1 - bias - mantissaBits)
                : Math.ScaleB((1 << mantissaBits) + mantissa, exponent - bias - mantissaBits);
        return sign == 1 ? -magnitude : magnitude;
    }

    private static void AssertSameFloat(double expected, float actual, ushort bits)
    {
        if (double.IsNaN(expected))
        {
            Assert.True(float.IsNaN(actual), $"0x{bits:x4} should read as NaN, not {actual}");
            return;
        }

        // Bitwise, so that -0 and +0 are told apart; every such value is exact in float32.
        Assert.True(BitConverter.SingleToInt32Bits((float)expected) == BitConverter.SingleToInt32Bits(actual) && (double)actual == expected, $"0x{bits:x4}: expected {expected:R}, read {actual:R}");
    }
}
