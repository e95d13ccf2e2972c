using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace OrleansGpu.Inference.Tokenization;

/// <summary>
/// SentencePiece's <c>precompiled_charsmap</c>, the normalisation rules of a SentencePiece model (NFKC and its own
/// extras, compiled): a little-endian u32 giving the byte size of a darts-clone double-array trie, the trie's u32 units,
/// then a pool of NUL-terminated replacement strings. A trie key is a UTF-8 sequence; its value is the offset of its
/// replacement in the pool.
/// </summary>
/// <remarks>
/// Applied as Hugging Face's <c>Precompiled</c> normalizer does, which differs from SentencePiece's own longest match:
/// text is cut into extended grapheme clusters; a cluster under 6 UTF-8 bytes is looked up whole and, when any prefix of
/// it is a key, the whole cluster becomes the replacement of the SHORTEST such prefix; otherwise each code point is
/// looked up alone and kept when it is no key.
/// </remarks>
public sealed class PrecompiledCharsMap
{
    private readonly uint[] _units;
    private readonly byte[] _pool;

    private PrecompiledCharsMap(uint[] units, byte[] pool)
    {
        _units = units;
        _pool = pool;
    }

    /// <summary>Reads the blob; an <see cref="InvalidDataException"/> when it is cut short or its strings are not UTF-8.</summary>
    public static PrecompiledCharsMap Parse(ReadOnlySpan<byte> blob)
    {
        if (blob.Length < 4)
        {
            throw new InvalidDataException("The precompiled_charsmap is shorter than its 4-byte header.");
        }

        var trieBytes = BinaryPrimitives.ReadUInt32LittleEndian(blob);
        if (trieBytes > blob.Length - 4L)
        {
            throw new InvalidDataException($"The precompiled_charsmap declares a {trieBytes}-byte trie but holds {blob.Length - 4} bytes.");
        }

        var units = new uint[trieBytes / 4];
        for (var i = 0; i < units.Length; i++)
        {
            units[i] = BinaryPrimitives.ReadUInt32LittleEndian(blob[(4 + (4 * i))..]);
        }

        var pool = blob[(4 + (int)(trieBytes / 4 * 4))..].ToArray();
        try
        {
            _ = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(pool);
        }
        catch (DecoderFallbackException)
        {
            throw new InvalidDataException("The precompiled_charsmap's replacement strings are not UTF-8.");
        }

        return new PrecompiledCharsMap(units, pool);
    }

    /// <summary>The text with every rule applied (see the remarks on the class).</summary>
    public string Normalize(string text)
    {
        StringBuilder? sb = null;
        Span<byte> bytes = stackalloc byte[8];
        var i = 0;
        while (i < text.Length)
        {
            var length = StringInfo.GetNextTextElementLength(text.AsSpan(i));
            var cluster = text.AsSpan(i, length);
            var written = Encoding.UTF8.GetByteCount(cluster) < 6 ? Encoding.UTF8.GetBytes(cluster, bytes) : -1;
            if (written > 0 && Transform(bytes[..written]) is { } whole)
            {
                (sb ??= Begin(text, i)).Append(whole);
            }
            else
            {
                var j = 0;
                while (j < cluster.Length)
                {
                    var runeLength = char.IsHighSurrogate(cluster[j]) && j + 1 < cluster.Length && char.IsLowSurrogate(cluster[j + 1]) ? 2 : 1;
                    var rune = cluster.Slice(j, runeLength);
                    var n = Encoding.UTF8.GetBytes(rune, bytes);
                    if (Transform(bytes[..n]) is { } replaced)
                    {
                        (sb ??= Begin(text, i + j)).Append(replaced);
                    }
                    else
                    {
                        sb?.Append(rune);
                    }

                    j += runeLength;
                }
            }

            i += length;
        }

        return sb?.ToString() ?? text;
    }

    private static StringBuilder Begin(string text, int upTo) => new StringBuilder(text.Length + 16).Append(text.AsSpan(0, upTo));

    /// <summary>The replacement of the shortest prefix of <paramref name="key"/> that is a key, or null.</summary>
    private string? Transform(ReadOnlySpan<byte> key)
    {
        if (_units.Length == 0)
        {
            return null;
        }

        long position = Offset(_units[0]);
        foreach (var c in key)
        {
            if (c == 0)
            {
                return null;
            }

            position ^= c;
            if (position >= _units.Length)
            {
                return null;
            }

            var unit = _units[position];
            if ((unit & 0x800000FFu) != c)
            {
                return null;
            }

            position ^= Offset(unit);
            if (((unit >> 8) & 1) == 1)
            {
                return position < _units.Length ? Replacement((int)(_units[position] & 0x7FFFFFFFu)) : null;
            }
        }

        return null;
    }

    private static long Offset(uint unit) => (long)(unit >> 10) << (int)((unit & (1u << 9)) >> 6);

    private string? Replacement(int start)
    {
        if (start > _pool.Length)
        {
            return null;
        }

        var end = Array.IndexOf(_pool, (byte)0, start);
        return Encoding.UTF8.GetString(_pool, start, (end < 0 ? _pool.Length : end) - start);
    }
}
