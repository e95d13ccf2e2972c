using System.Buffers;
using System.IO.MemoryMappedFiles;

namespace OrleansGpu.Inference.Checkpoints;

/// <summary>
/// A whole file mapped read-only for the lifetime of a checkpoint. Tensor bytes are read where they lie: only the
/// pages a caller touches are loaded, and nothing is copied through streams.
/// </summary>
internal sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _start;
    private bool _disposed;

    private MappedFile(string path, long length, MemoryMappedFile map, MemoryMappedViewAccessor view)
    {
        Name = Path.GetFileName(path);
        Length = length;
        _map = map;
        _view = view;
        byte* pointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        _start = pointer + view.PointerOffset;
    }

    /// <summary>The file's name, for messages.</summary>
    public string Name { get; }

    public long Length { get; }

    /// <summary>Maps <paramref name="path"/> (symbolic links followed, as in the Hugging Face cache's snapshots).</summary>
    public static MappedFile Open(string path)
    {
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        MemoryMappedFile? map = null;
        try
        {
            var length = stream.Length;
            if (length == 0)
            {
                throw new CheckpointException($"{Path.GetFileName(path)} is empty.");
            }

            map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            return new MappedFile(path, length, map, view);
        }
        catch
        {
            if (map is null)
            {
                stream.Dispose();
            }
            else
            {
                map.Dispose();
            }

            throw;
        }
    }

    /// <summary>Whether <c>[offset, offset + length)</c> lies inside the file (overflow-safe).</summary>
    public bool Holds(long offset, long length) => offset >= 0 && length >= 0 && offset <= Length && length <= Length - offset;

    /// <summary>The bytes <c>[offset, offset + length)</c>; a range outside the file is a <see cref="CheckpointException"/>.</summary>
    public ReadOnlySpan<byte> Span(long offset, long length)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!Holds(offset, length))
        {
            throw new CheckpointException($"{Name}: bytes [{offset}, {offset}+{length}) lie outside the {Length}-byte file.");
        }

        if (length > int.MaxValue)
        {
            throw new CheckpointException($"{Name}: a single read of {length} bytes is over the 2 GiB a reader handles at once.");
        }

        return new ReadOnlySpan<byte>(_start + offset, (int)length);
    }

    /// <summary>The bytes from <paramref name="offset"/> to the end of the file, at most 2 GiB of them.</summary>
    public ReadOnlySpan<byte> From(long offset) => Span(offset, Math.Min(Length - offset, int.MaxValue));

    public long ReadInt64(long offset) => BitConverter.ToInt64(Span(offset, 8));

    /// <summary>
    /// The float32 elements <c>[offset, offset + 4·count)</c> as memory that stays valid until this file is disposed,
    /// for handing weights to ONNX Runtime without a copy; null where the data is not 4-byte aligned.
    /// </summary>
    public ReadOnlyMemory<float>? Float32Memory(long offset, int count)
    {
        var span = Span(offset, 4L * count);
        fixed (byte* pointer = span)
        {
            if ((nint)pointer % sizeof(float) != 0)
            {
                return null;
            }

            return new MappedMemory((float*)pointer, count).Memory;
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    /// <summary>Memory over mapped pages; pinning is free because the pages never move.</summary>
    private sealed class MappedMemory(float* pointer, int length) : MemoryManager<float>
    {
        public override Span<float> GetSpan() => new(pointer, length);

        public override MemoryHandle Pin(int elementIndex = 0) => new(pointer + elementIndex);

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
        }
    }
}
