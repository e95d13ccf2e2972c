using Microsoft.Extensions.Logging;

namespace OrleansGpu.Inference.Onnx;

/// <summary>
/// Runs a pass through the encoder's <see cref="IPassRunner"/> and, when the device runs out of memory for it, runs its
/// two halves instead, recursively, down to one sequence: the same rows come out, in smaller passes. Each sequence's
/// result depends only on its own row (padding is masked), so the split changes nothing but float rounding.
/// </summary>
internal static class PassSplitting
{
    /// <summary>
    /// Runs <paramref name="sequences"/> and hands each pass's states to <paramref name="consume"/> with the index of its
    /// first sequence. A sequence that fails alone for memory goes to <paramref name="refuse"/>; any other failure of a
    /// pass is thrown as a <see cref="PassFailedException"/>. Returns how many times a pass was split.
    /// </summary>
    public static int Run(
        OnnxEncoder encoder,
        IReadOnlyList<int[]> sequences,
        int padId,
        Action<HiddenStates, int> consume,
        Action<int, DeviceOutOfMemoryException> refuse)
    {
        var splits = 0;
        RunRange(0, sequences.Count);
        return splits;

        void RunRange(int start, int count)
        {
            var slice = start == 0 && count == sequences.Count ? sequences : sequences.Skip(start).Take(count).ToList();
            HiddenStates states;
            try
            {
                states = encoder.PassRunner.Run(encoder, slice, padId);
            }
            catch (Exception ex) when (OutOfDeviceMemory.Is(ex))
            {
                var tokens = slice.Max(s => s.Length);
                if (count == 1)
                {
                    encoder.Logger.LogWarning(
                        "Out of device memory for one sequence of {Tokens} tokens on {Provider}; that request fails on this host ({Reason})",
                        tokens, encoder.Provider, FirstLine(ex.Message));
                    refuse(start, new DeviceOutOfMemoryException(
                        $"The device ({encoder.Provider}) ran out of memory for a single text of {tokens} tokens.", ex));
                    return;
                }

                splits++;
                encoder.Logger.LogWarning(
                    "Out of device memory for a pass of {Sequences} sequences × {Tokens} tokens on {Provider}; running it in two halves ({Reason})",
                    count, tokens, encoder.Provider, FirstLine(ex.Message));
                var half = count / 2;
                RunRange(start, half);
                RunRange(start + half, count - half);
                return;
            }
            catch (Exception ex) when (ex is not PassFailedException)
            {
                throw new PassFailedException($"A forward pass on {encoder.Provider} failed: {FirstLine(ex.Message)}", ex);
            }

            using (states)
            {
                consume(states, start);
            }
        }
    }

    private static string FirstLine(string message) => message.Split('\n', 2)[0].Trim();
}
