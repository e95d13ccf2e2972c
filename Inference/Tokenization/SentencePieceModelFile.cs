using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace OrleansGpu.Inference.Tokenization;

/// <summary>
/// A SentencePiece ModelProto read when a repo has no <c>tokenizer.json</c>, turned into the tokenizer transformers'
/// converter makes of it. DeBERTa v2/v3's <c>spm.model</c> (microsoft/deberta-v3-* ship only this), as
/// DebertaV2Converter: the pieces with their scores and ids, control, user-defined and unknown pieces (and
/// <c>added_tokens.json</c>) split off as added tokens, normalizer [Lowercase when do_lower_case] Strip, Precompiled
/// (the model's charsmap), Replace <c>" {2,}"</c> → <c>" "</c>; Metaspace (prepend always); [CLS] … [SEP].
/// XLM-RoBERTa's <c>sentencepiece.bpe.model</c> (a Unigram model despite its name), as XLMRobertaConverter: fairseq's
/// ids (&lt;s&gt; 0, &lt;pad&gt; 1, &lt;/s&gt; 2, &lt;unk&gt; 3, every later piece at its spm id + 1, &lt;mask&gt; last),
/// normalizer Precompiled, Strip (right), Replace <c>" {2,}"</c> → <c>"▁"</c> (SpmConverter's own, as transformers
/// writes it today); Metaspace (prepend always); &lt;s&gt; … &lt;/s&gt;. CamemBERT's file of the same name (config.json
/// says <c>camembert</c>) as CamembertConverter lays its ids out.
/// </summary>
public static class SentencePieceModelFile
{
    public const string FileName = "spm.model";

    public const string XlmRobertaFileName = "sentencepiece.bpe.model";

    private const int Unigram = 1;
    private const int TypeUnknown = 2;
    private const int TypeControl = 3;
    private const int TypeUserDefined = 4;

    /// <summary>The SentencePiece model file of <paramref name="directory"/> this class reads, or null.</summary>
    public static string? In(string directory) =>
        new[] { FileName, XlmRobertaFileName }.Select(f => Path.Combine(directory, f)).FirstOrDefault(File.Exists);

    /// <summary>Why the SentencePiece model at <paramref name="path"/> cannot be read as a tokenizer, or null.</summary>
    public static string? Problem(string path)
    {
        var name = Path.GetFileName(path);
        try
        {
            var model = Parse(File.ReadAllBytes(path));
            if (model.ModelType != Unigram)
            {
                return $"its {name} is a SentencePiece {(model.ModelType == 2 ? "BPE" : $"type {model.ModelType}")} model; this service reads SentencePiece Unigram models";
            }

            if (name == XlmRobertaFileName)
            {
                CheckXlmRoberta(model);
            }
            else
            {
                _ = Specials(model, []);
            }

            return null;
        }
        catch (InvalidDataException ex)
        {
            return $"its {name} cannot be read: {ex.Message}";
        }
    }

    /// <summary>
    /// The tokenizer of a folder holding DeBERTa's <c>spm.model</c> (and maybe <c>added_tokens.json</c>) or
    /// XLM-RoBERTa's <c>sentencepiece.bpe.model</c>.
    /// </summary>
    public static UnigramTokenizer Load(string directory, bool lowercase)
    {
        var path = In(directory) ?? throw new FileNotFoundException($"No {FileName} or {XlmRobertaFileName} in {directory}.");
        var model = Parse(File.ReadAllBytes(path));
        if (model.ModelType != Unigram)
        {
            throw new InvalidDataException($"{Path.GetFileName(path)} is a SentencePiece model of type {model.ModelType}, not Unigram.");
        }

        // CamemBERT ships a file of the same name and layout, whose ids its own converter lays out otherwise.
        return Path.GetFileName(path) == XlmRobertaFileName
            ? LoadXlmRoberta(model, camembert: ModelType(directory) == "camembert")
            : LoadDeberta(directory, model, lowercase);
    }

    private static UnigramTokenizer LoadDeberta(string directory, SpmModel model, bool lowercase)
    {
        var added = new List<(string Text, int Id, bool StripLeft, bool StripRight)>();
        for (var id = 0; id < model.Pieces.Count; id++)
        {
            // Control and user-defined pieces are added tokens in the converted tokenizer; the unknown piece is one of the
            // special tokens the fast tokenizer adds ([UNK]).
            if (model.Pieces[id].Type is TypeControl or TypeUserDefined or TypeUnknown)
            {
                added.Add((model.Pieces[id].Piece, id, false, false));
            }
        }

        var addedJson = Path.Combine(directory, "added_tokens.json");
        if (File.Exists(addedJson))
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(addedJson));
            foreach (var entry in document.RootElement.EnumerateObject())
            {
                added.Add((entry.Name, entry.Value.GetInt32(), false, false));
            }
        }

        var (start, end, pad) = Specials(model, added);
        var normalizers = new List<SentencePiecePipeline.Normalizer>();
        if (lowercase)
        {
            normalizers.Add(SentencePiecePipeline.ReadNormalizer(Json("""{"type": "Lowercase"}"""))!);
        }

        normalizers.Add(SentencePiecePipeline.ReadNormalizer(Json("""{"type": "Strip", "strip_left": true, "strip_right": true}"""))!);
        var unknown = model.Pieces.FindIndex(p => p.Type == TypeUnknown);
        List<SentencePiecePipeline.Normalizer> after =
            [SentencePiecePipeline.ReadNormalizer(Json("""{"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}"""))!];
        return Build(
            [.. model.Pieces.Select(p => new UnigramPiece(p.Piece, p.Score))],
            new SpecialTokenIds(start, end, pad, model.UnknownId),
            model.UnknownId >= 0 ? model.UnknownId : unknown >= 0 ? unknown : null,
            model.ByteFallback,
            normalizers,
            after,
            model,
            added);
    }

    private static UnigramTokenizer LoadXlmRoberta(SpmModel model, bool camembert)
    {
        CheckXlmRoberta(model);

        // fairseq's dictionary puts <pad> at 1 and <unk> at 3. XLM-R: spm's <unk> <s> </s> (0..2) give way to four
        // specials and every later piece moves up by one. CamemBERT: four placeholders and spm's <unk> kept out of use
        // (-100) come first, then every spm piece but <unk>, four up, its own <s> (5) and </s> (6) among them.
        // <mask> is appended to both.
        List<UnigramPiece> pieces = camembert
            ? [new("<s>NOTUSED", 0), new("<pad>", 0), new("</s>NOTUSED", 0), new("<unk>", 0), new("<unk>NOTUSED", -100)]
            : [new("<s>", 0), new("<pad>", 0), new("</s>", 0), new("<unk>", 0)];
        var added = pieces.Select((p, id) => (p.Piece, id, false, false)).ToList();
        var shift = camembert ? 4 : 1;
        for (var id = camembert ? 1 : 3; id < model.Pieces.Count; id++)
        {
            pieces.Add(new UnigramPiece(model.Pieces[id].Piece, model.Pieces[id].Score));
            if (model.Pieces[id].Type is TypeControl or TypeUserDefined)
            {
                added.Add((model.Pieces[id].Piece, id + shift, false, false));
            }
        }

        // Both tokenizers' mask token strips the space before it.
        added.Add(("<mask>", pieces.Count, true, false));
        pieces.Add(new UnigramPiece("<mask>", 0));

        // The converter does not carry byte fallback over (handle_byte_fallback is off for XLM-R). Its normalizer is
        // SpmConverter's: trailing spaces go and runs of spaces become one ▁, as SentencePiece itself treats them.
        List<SentencePiecePipeline.Normalizer> after =
        [
            SentencePiecePipeline.ReadNormalizer(Json("""{"type": "Strip", "strip_left": false, "strip_right": true}"""))!,
            SentencePiecePipeline.ReadNormalizer(Json("""{"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "▁"}"""))!,
        ];
        var special = camembert ? new SpecialTokenIds(1 + shift, 2 + shift, 1, 3) : new SpecialTokenIds(0, 2, 1, 3);
        return Build(pieces, special, 3, byteFallback: false, [], after, model, added);
    }

    private static void CheckXlmRoberta(SpmModel model)
    {
        if (model.Pieces.Count < 3 || model.Pieces[0].Type != TypeUnknown || model.Pieces[1].Piece != "<s>" || model.Pieces[2].Piece != "</s>")
        {
            throw new InvalidDataException("it does not begin with <unk>, <s>, </s> as XLM-RoBERTa's does");
        }
    }

    /// <summary>
    /// The tokenizer of <paramref name="pieces"/>: the <paramref name="before"/> normalizers, Precompiled (the model's
    /// charsmap), the <paramref name="after"/> ones; Metaspace, prepend always.
    /// </summary>
    private static UnigramTokenizer Build(
        List<UnigramPiece> pieces,
        SpecialTokenIds special,
        int? unknownId,
        bool byteFallback,
        List<SentencePiecePipeline.Normalizer> before,
        List<SentencePiecePipeline.Normalizer> after,
        SpmModel model,
        List<(string Text, int Id, bool StripLeft, bool StripRight)> added)
    {
        var normalizers = new List<SentencePiecePipeline.Normalizer>(before);
        if (model.CharsMap.Length > 0)
        {
            var map = PrecompiledCharsMap.Parse(model.CharsMap);
            normalizers.Add((string text, ref bool _) => map.Normalize(text));
        }

        normalizers.AddRange(after);
        return new UnigramTokenizer(
            pieces,
            special,
            new UnigramOptions
            {
                UnknownId = unknownId,
                ByteFallback = byteFallback,
                Normalizer = (string text, ref bool dropped) =>
                {
                    foreach (var step in normalizers)
                    {
                        text = step(text, ref dropped);
                    }

                    return text;
                },
                PreTokenizer = SentencePiecePipeline.ReadPreTokenizer(Json("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}""")),
                AddedTokens = added,
            });
    }

    /// <summary>config.json's <c>model_type</c>, or null when there is none or it cannot be read.</summary>
    private static string? ModelType(string directory)
    {
        var config = Path.Combine(directory, "config.json");
        if (!File.Exists(config))
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(config));
            return document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("model_type", out var type)
                && type.ValueKind == JsonValueKind.String ? type.GetString() : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static (int Start, int End, int Pad) Specials(SpmModel model, List<(string Text, int Id, bool, bool)> added)
    {
        int Id(string token)
        {
            var index = model.Pieces.FindIndex(p => p.Piece == token);
            return index >= 0 ? index : added.FirstOrDefault(a => a.Text == token) is { Text: not null } a ? a.Id : -1;
        }

        var (cls, sep) = (Id("[CLS]"), Id("[SEP]"));
        if (cls < 0 || sep < 0)
        {
            throw new InvalidDataException("it has no [CLS] and [SEP] pieces, which a DeBERTa spm.model has");
        }

        return (cls, sep, Math.Max(Id("[PAD]"), 0));
    }

    private static JsonElement Json(string json) => JsonDocument.Parse(json).RootElement;

    private sealed record SpmModel(List<(string Piece, float Score, int Type)> Pieces, int ModelType, int UnknownId, bool ByteFallback, byte[] CharsMap);

    /// <summary>The parts of a SentencePiece ModelProto used here: pieces (1), trainer_spec (2), normalizer_spec (3).</summary>
    private static SpmModel Parse(byte[] bytes)
    {
        var pieces = new List<(string, float, int)>();
        int modelType = Unigram, unknownId = 0;
        var byteFallback = false;
        byte[] charsMap = [];
        var reader = new ProtoReader(bytes);
        while (reader.Next(out var field, out var wire))
        {
            if (field == 1 && wire == 2)
            {
                var piece = new ProtoReader(reader.Bytes());
                string text = "";
                float score = 0;
                var type = 1;
                while (piece.Next(out var f, out var w))
                {
                    switch (f, w)
                    {
                        case (1, 2): text = Encoding.UTF8.GetString(piece.Bytes()); break;
                        case (2, 5): score = piece.Fixed32(); break;
                        case (3, 0): type = (int)piece.Varint(); break;
                        default: piece.Skip(w); break;
                    }
                }

                pieces.Add((text, score, type));
            }
            else if (field == 2 && wire == 2)
            {
                var spec = new ProtoReader(reader.Bytes());
                while (spec.Next(out var f, out var w))
                {
                    switch (f, w)
                    {
                        case (3, 0): modelType = (int)spec.Varint(); break;
                        case (35, 0): byteFallback = spec.Varint() != 0; break;
                        case (40, 0): unknownId = (int)spec.Varint(); break;
                        default: spec.Skip(w); break;
                    }
                }
            }
            else if (field == 3 && wire == 2)
            {
                var spec = new ProtoReader(reader.Bytes());
                while (spec.Next(out var f, out var w))
                {
                    if (f == 2 && w == 2)
                    {
                        charsMap = spec.Bytes();
                    }
                    else
                    {
                        spec.Skip(w);
                    }
                }
            }
            else
            {
                reader.Skip(wire);
            }
        }

        if (pieces.Count == 0)
        {
            throw new InvalidDataException("it holds no pieces");
        }

        return new SpmModel(pieces, modelType, unknownId, byteFallback, charsMap);
    }

    /// <summary>A minimal protobuf wire-format reader; anything malformed is an <see cref="InvalidDataException"/>.</summary>
    private sealed class ProtoReader(byte[] data)
    {
        private int _at;

        public bool Next(out int field, out int wire)
        {
            if (_at >= data.Length)
            {
                field = wire = 0;
                return false;
            }

            var key = Varint();
            field = (int)(key >> 3);
            wire = (int)(key & 7);
            if (field == 0)
            {
                throw new InvalidDataException("it is not a SentencePiece model (field 0)");
            }

            return true;
        }

        public ulong Varint()
        {
            ulong value = 0;
            for (var shift = 0; shift < 64; shift += 7)
            {
                if (_at >= data.Length)
                {
                    throw new InvalidDataException("it ends inside a number");
                }

                var b = data[_at++];
                value |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80)
                {
                    return value;
                }
            }

            throw new InvalidDataException("it holds a number over 64 bits");
        }

        public byte[] Bytes()
        {
            var length = Varint();
            if (length > (ulong)(data.Length - _at))
            {
                throw new InvalidDataException("a field runs past its end");
            }

            var result = data.AsSpan(_at, (int)length).ToArray();
            _at += (int)length;
            return result;
        }

        public float Fixed32()
        {
            Need(4);
            var value = BinaryPrimitives.ReadSingleLittleEndian(data.AsSpan(_at));
            _at += 4;
            return value;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: Varint(); break;
                case 1: Need(8); _at += 8; break;
                case 2: Bytes(); break;
                case 5: Need(4); _at += 4; break;
                default: throw new InvalidDataException($"it is not a SentencePiece model (wire type {wire})");
            }
        }

        private void Need(int count)
        {
            if (data.Length - _at < count)
            {
                throw new InvalidDataException("a field runs past its end");
            }
        }
    }
}
