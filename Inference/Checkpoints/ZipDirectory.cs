using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace OrleansGpu.Inference.Checkpoints;

/// <summary>
/// The entries of a zip file read straight from its mapping: the central directory (zip64 included, which
/// <c>torch.save</c> writes for large files) and each entry's local header, which fixes where its data starts
/// (PyTorch pads it to 64 bytes). Stored entries are then read in place; nothing is copied through streams.
/// </summary>
internal sealed class ZipDirectory
{
    private const uint LocalHeaderSignature = 0x04034b50;
    private const uint CentralHeaderSignature = 0x02014b50;
    private const uint EndSignature = 0x06054b50;
    private const uint Zip64EndSignature = 0x06064b50;
    private const uint Zip64LocatorSignature = 0x07064b50;
    private const int EndRecordSize = 22;
    private const int CentralHeaderSize = 46;
    private const int LocalHeaderSize = 30;

    // Deflate cannot compress better than 1032:1; a larger claimed size is a lie meant to make us allocate.
    private const long MaxDeflateRatio = 1032;

    private readonly MappedFile _file;
    private readonly Dictionary<string, ZipEntry> _entries;

    private ZipDirectory(MappedFile file, List<ZipEntry> entries, Dictionary<string, ZipEntry> byName)
    {
        _file = file;
        Entries = entries;
        _entries = byName;
    }

    /// <summary>The entries in central-directory order.</summary>
    public IReadOnlyList<ZipEntry> Entries { get; }

    public static bool LooksLikeZip(ReadOnlySpan<byte> start) =>
        start.Length >= 4 && BinaryPrimitives.ReadUInt32LittleEndian(start) is LocalHeaderSignature or EndSignature;

    public static ZipDirectory Read(MappedFile file)
    {
        var (count, directoryOffset, directorySize) = FindCentralDirectory(file);
        if (!file.Holds(directoryOffset, directorySize) || count > directorySize / CentralHeaderSize)
        {
            throw Malformed(file, $"its central directory ({count} entries, {directorySize} bytes at {directoryOffset}) does not fit the file");
        }

        var entries = new List<ZipEntry>((int)Math.Min(count, 1 << 16));
        var byName = new Dictionary<string, ZipEntry>(StringComparer.Ordinal);
        var pos = directoryOffset;
        var end = directoryOffset + directorySize;
        for (var i = 0L; i < count; i++)
        {
            var entry = ReadEntry(file, ref pos, end);
            if (!byName.TryAdd(entry.Name, entry))
            {
                throw Malformed(file, $"the entry {StateDictUnpickler.Sanitize(entry.Name)} appears twice");
            }

            entries.Add(entry);
        }

        return new ZipDirectory(file, entries, byName);
    }

    public bool TryGet(string name, out ZipEntry entry) => _entries.TryGetValue(name, out entry!);

    /// <summary>
    /// The entry's bytes: a slice of the mapping when stored (as <c>torch.save</c> writes them), inflated into a new
    /// array when a tool recompressed the archive.
    /// </summary>
    public ReadOnlySpan<byte> Read(ZipEntry entry)
    {
        var stored = _file.Span(entry.DataOffset, entry.CompressedSize);
        if (entry.Method == 0)
        {
            return stored;
        }

        if (entry.Size > int.MaxValue)
        {
            throw Malformed(_file, $"the compressed entry {entry.Name} inflates to {entry.Size} bytes, over the 2 GiB read at once; unzip and re-save it uncompressed");
        }

        var buffer = new byte[entry.Size];
        try
        {
            unsafe
            {
                fixed (byte* source = stored)
                {
                    using var input = new UnmanagedMemoryStream(source, stored.Length);
                    using var inflate = new DeflateStream(input, CompressionMode.Decompress);
                    inflate.ReadExactly(buffer);
                    if (inflate.ReadByte() >= 0)
                    {
                        throw Malformed(_file, $"the entry {entry.Name} inflates to more than its {entry.Size} bytes");
                    }
                }
            }
        }
        catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException)
        {
            throw Malformed(_file, $"the entry {entry.Name} does not inflate to its {entry.Size} bytes ({ex.Message})");
        }

        return buffer;
    }

    private static (long Count, long Offset, long Size) FindCentralDirectory(MappedFile file)
    {
        // The end record is the last thing in the file, followed only by a comment of at most 65535 bytes.
        var searchStart = Math.Max(0, file.Length - EndRecordSize - ushort.MaxValue);
        var tail = file.Span(searchStart, file.Length - searchStart);
        var at = -1;
        for (var i = tail.Length - EndRecordSize; i >= 0; i--)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(tail[i..]) == EndSignature)
            {
                at = i;
                break;
            }
        }

        if (at < 0)
        {
            throw Malformed(file, "it has no end-of-central-directory record (truncated?)");
        }

        var record = tail.Slice(at, EndRecordSize);
        long count = BinaryPrimitives.ReadUInt16LittleEndian(record[10..]);
        long size = BinaryPrimitives.ReadUInt32LittleEndian(record[12..]);
        long offset = BinaryPrimitives.ReadUInt32LittleEndian(record[16..]);
        if (count != ushort.MaxValue && size != uint.MaxValue && offset != uint.MaxValue)
        {
            return (count, offset, size);
        }

        // Zip64: a locator just before the end record points at the zip64 end record holding 64-bit fields.
        var locator = searchStart + at - 20;
        if (locator < 0 || BinaryPrimitives.ReadUInt32LittleEndian(file.Span(locator, 20)) != Zip64LocatorSignature)
        {
            throw Malformed(file, "its end record asks for zip64 fields but there is no zip64 locator");
        }

        var zip64End = BinaryPrimitives.ReadInt64LittleEndian(file.Span(locator + 8, 8));
        if (zip64End < 0 || !file.Holds(zip64End, 56) || BinaryPrimitives.ReadUInt32LittleEndian(file.Span(zip64End, 4)) != Zip64EndSignature)
        {
            throw Malformed(file, "its zip64 locator does not point at a zip64 end record");
        }

        var zip64 = file.Span(zip64End, 56);
        return (BinaryPrimitives.ReadInt64LittleEndian(zip64[32..]), BinaryPrimitives.ReadInt64LittleEndian(zip64[48..]), BinaryPrimitives.ReadInt64LittleEndian(zip64[40..]));
    }

    private static ZipEntry ReadEntry(MappedFile file, ref long pos, long end)
    {
        if (end - pos < CentralHeaderSize)
        {
            throw Malformed(file, "its central directory ends inside an entry");
        }

        var header = file.Span(pos, CentralHeaderSize);
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != CentralHeaderSignature)
        {
            throw Malformed(file, $"a central directory entry at byte {pos} has no signature");
        }

        var flags = BinaryPrimitives.ReadUInt16LittleEndian(header[8..]);
        var method = BinaryPrimitives.ReadUInt16LittleEndian(header[10..]);
        long compressed = BinaryPrimitives.ReadUInt32LittleEndian(header[20..]);
        long size = BinaryPrimitives.ReadUInt32LittleEndian(header[24..]);
        var nameLength = BinaryPrimitives.ReadUInt16LittleEndian(header[28..]);
        var extraLength = BinaryPrimitives.ReadUInt16LittleEndian(header[30..]);
        var commentLength = BinaryPrimitives.ReadUInt16LittleEndian(header[32..]);
        long localOffset = BinaryPrimitives.ReadUInt32LittleEndian(header[42..]);
        var variable = (long)nameLength + extraLength + commentLength;
        if (end - pos - CentralHeaderSize < variable)
        {
            throw Malformed(file, "its central directory ends inside an entry's name or extra fields");
        }

        var name = Encoding.UTF8.GetString(file.Span(pos + CentralHeaderSize, nameLength));
        var extra = file.Span(pos + CentralHeaderSize + nameLength, extraLength);
        pos += CentralHeaderSize + variable;

        // Zip64 extended information: the 64-bit values of exactly the fields saturated above, in this order.
        var zip64 = FindExtra(extra, 0x0001);
        var z = 0;
        if (size == uint.MaxValue)
        {
            size = Zip64Field(file, zip64, ref z, name);
        }

        if (compressed == uint.MaxValue)
        {
            compressed = Zip64Field(file, zip64, ref z, name);
        }

        if (localOffset == uint.MaxValue)
        {
            localOffset = Zip64Field(file, zip64, ref z, name);
        }

        var safeName = StateDictUnpickler.Sanitize(name);
        if ((flags & 1) != 0)
        {
            throw Malformed(file, $"the entry {safeName} is encrypted");
        }

        if (method is not (0 or 8))
        {
            throw Malformed(file, $"the entry {safeName} uses compression method {method}; only stored and deflated entries are read");
        }

        if (size < 0 || compressed < 0 || (method == 0 && size != compressed) || (method == 8 && size / MaxDeflateRatio > compressed))
        {
            throw Malformed(file, $"the entry {safeName} claims {size} bytes from {compressed} stored");
        }

        if (!file.Holds(localOffset, LocalHeaderSize)
            || BinaryPrimitives.ReadUInt32LittleEndian(file.Span(localOffset, 4)) != LocalHeaderSignature)
        {
            throw Malformed(file, $"the entry {safeName} has no local header at byte {localOffset}");
        }

        var local = file.Span(localOffset, LocalHeaderSize);
        var dataOffset = localOffset + LocalHeaderSize + BinaryPrimitives.ReadUInt16LittleEndian(local[26..]) + BinaryPrimitives.ReadUInt16LittleEndian(local[28..]);
        if (!file.Holds(dataOffset, compressed))
        {
            throw Malformed(file, $"the data of entry {safeName} ({compressed} bytes at {dataOffset}) lies outside the file");
        }

        return new ZipEntry(name, dataOffset, compressed, size, method);
    }

    private static ReadOnlySpan<byte> FindExtra(ReadOnlySpan<byte> extra, ushort id)
    {
        while (extra.Length >= 4)
        {
            var blockId = BinaryPrimitives.ReadUInt16LittleEndian(extra);
            var blockSize = BinaryPrimitives.ReadUInt16LittleEndian(extra[2..]);
            if (blockSize > extra.Length - 4)
            {
                break;
            }

            if (blockId == id)
            {
                return extra.Slice(4, blockSize);
            }

            extra = extra[(4 + blockSize)..];
        }

        return [];
    }

    private static long Zip64Field(MappedFile file, ReadOnlySpan<byte> zip64, ref int index, string name)
    {
        if (zip64.Length < index + 8)
        {
            throw Malformed(file, $"the entry {StateDictUnpickler.Sanitize(name)} lacks its zip64 sizes");
        }

        var value = BinaryPrimitives.ReadInt64LittleEndian(zip64[index..]);
        index += 8;
        return value;
    }

    private static CheckpointException Malformed(MappedFile file, string what) => new($"{file.Name} is not a readable zip: {what}.");
}

/// <summary>One zip entry: where its (stored or deflated) data lies in the file and how large it is.</summary>
internal readonly record struct ZipEntry(string Name, long DataOffset, long CompressedSize, long Size, ushort Method);
