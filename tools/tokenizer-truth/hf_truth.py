"""Record what Hugging Face's tokenizers do, so that ours can be compared with them on a machine without them.

usage: python3 hf_truth.py VOCAB_TXT GPT2_DIR CORPUS_JSON ORACLE_JSON OUTDIR

Needs transformers (and its tokenizers); runs offline. GPT2_DIR holds GPT-2's vocab.json and merges.txt (RoBERTa
and DeBERTa v1 share its merges). Writes to OUTDIR:
- facts.json: library versions, and how bert_score 0.3.13 would call each tokenizer class here;
- wordpiece.json: all-MiniLM-L6-v2's tokenizer (built the way that reproduces ORACLE_JSON's ids) on every corpus
  text, truncated at 256;
- wordpiece-tables.json: BertNormalizer and BertPreTokenizer rule by rule, for every code point: "clean" (R removed,
  W made a space, . kept), "chinese" (C spaced as a CJK ideograph), "split" (P punctuation, W whitespace, . inside
  a word), "strip_accents" and "lowercase" ([code point, result] where the result is not the character itself);
- bytelevel-classes.txt: one letter per code point, the class GPT-2's pre-tokenizer puts it in (L letter, N number,
  O other, S the space, ? any other whitespace, - surrogate);
- roberta.json, deberta.json: per corpus text, the ids bert_score's sent_encode gets ("bert_score"), and those of
  the stripped text without and with a space before it ("plain", "prefixed"), from GPT-2's vocabulary with each
  model's special tokens appended (unless SKIP_BPE is set).
"""
import json
import multiprocessing
import os
import shutil
import sys

import tokenizers
import transformers
from tokenizers import normalizers, pre_tokenizers

LIMIT = 0x110000


def wordpiece_classes(span):
    """One letter per code point for each rule of BertNormalizer and BertPreTokenizer, taken one at a time."""
    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False)
    cjk = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False)
    lower = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    cleaned, chinese, split, stripped, lowered = [], [], [], [], []
    for cp in range(*span):
        if 0xD800 <= cp <= 0xDFFF:
            cleaned.append("-"), chinese.append("-"), split.append("-")
            continue
        c = chr(cp)
        n = clean.normalize_str(c)
        cleaned.append("R" if n == "" else "W" if n == " " and c != " " else "." if n == c else "?")
        chinese.append("C" if cjk.normalize_str(c) == " " + c + " " else ".")
        pieces = [p for p, _ in pre.pre_tokenize_str("a" + c + "a")]
        split.append("." if len(pieces) == 1 else "W" if pieces == ["a", "a"] else "P" if pieces == ["a", c, "a"] else "?")
        s = strip.normalize_str(c)
        if s != c:
            stripped.append([cp, s])
        low = lower.normalize_str(c)
        if low != c:
            lowered.append([cp, low])
    return "".join(cleaned), "".join(chinese), "".join(split), stripped, lowered


def bytelevel_classes(span):
    pre = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)

    def count(s):
        return len(pre.pre_tokenize_str(s))

    out = []
    for cp in range(*span):
        if 0xD800 <= cp <= 0xDFFF:
            out.append("-")
            continue
        c = chr(cp)
        if count("a" + c + "a") == 1:
            out.append("L")
        elif count("1" + c + "1") == 1:
            out.append("N")
        elif count("!" + c + "!") == 1:
            out.append("O")
        elif count("!" + c + c + "!") == 3:
            out.append("S")
        else:
            out.append("?")
    return "".join(out)


def spans(step=0x8000):
    return [(lo, min(lo + step, LIMIT)) for lo in range(0, LIMIT, step)]


def bpe_folder(gpt2_dir, out, specials):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(gpt2_dir, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    for token in specials:
        vocab.setdefault(token, len(vocab))
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    shutil.copy(os.path.join(gpt2_dir, "merges.txt"), os.path.join(out, "merges.txt"))
    return out


def bert_score_encode(tokenizer, sent):
    """bert_score 0.3.13 utils.sent_encode, for transformers >= 4."""
    sent = sent.strip()
    if sent == "":
        return tokenizer.build_inputs_with_special_tokens([])
    if isinstance(tokenizer, (transformers.GPT2Tokenizer, transformers.RobertaTokenizer)):
        return tokenizer.encode(sent, add_special_tokens=True, add_prefix_space=True,
                                max_length=tokenizer.model_max_length, truncation=True)
    return tokenizer.encode(sent, add_special_tokens=True, max_length=tokenizer.model_max_length, truncation=True)


def bpe_truth(cls, folder, texts, facts, name):
    tok = cls.from_pretrained(folder, model_max_length=512)
    info = {"class": type(tok).__name__, "mro": [c.__name__ for c in type(tok).__mro__],
            "is_gpt2_or_roberta": isinstance(tok, (transformers.GPT2Tokenizer, transformers.RobertaTokenizer))}
    rows = []
    for t in texts:
        row = {}
        try:
            row["bert_score"] = bert_score_encode(tok, t)
        except Exception as ex:  # noqa: BLE001 - recorded, not fatal
            row["bert_score_error"] = repr(ex)[:200]
        s = t.strip()
        row["plain"] = tok.encode(s, add_special_tokens=True, max_length=512, truncation=True)
        row["prefixed"] = tok.encode(" " + s, add_special_tokens=True, max_length=512, truncation=True)
        rows.append(row)
    info["bert_score_equals_prefixed"] = sum(1 for r in rows if r.get("bert_score") == r["prefixed"])
    info["bert_score_equals_plain"] = sum(1 for r in rows if r.get("bert_score") == r["plain"])
    info["errors"] = sum(1 for r in rows if "bert_score_error" in r)
    facts[name] = info
    return rows


class RawWordPiece:
    """The Rust pipeline that BertTokenizerFast wraps, called the same way."""

    def __init__(self, vocab_txt):
        self.tok = tokenizers.BertWordPieceTokenizer(vocab_txt, lowercase=True)

    def __call__(self, texts, truncation, max_length):
        self.tok.enable_truncation(max_length)
        return {"input_ids": [e.ids for e in self.tok.encode_batch(texts)]}


def wordpiece(vocab_txt, oracle_path, texts, out, facts):
    """all-MiniLM-L6-v2's tokenizer, built the ways transformers allows; the one that reproduces the oracle's ids is used."""
    folder = os.path.join(out, "minilm-tokenizer")
    os.makedirs(folder, exist_ok=True)
    shutil.copy(vocab_txt, os.path.join(folder, "vocab.txt"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "BertTokenizer"}, f)
    with open(oracle_path, encoding="utf-8") as f:
        oracle = json.load(f)
    makers = {
        "BertTokenizerFast.from_pretrained": lambda: transformers.BertTokenizerFast.from_pretrained(folder),
        "AutoTokenizer.from_pretrained": lambda: transformers.AutoTokenizer.from_pretrained(folder),
        "BertTokenizerFast(path)": lambda: transformers.BertTokenizerFast(vocab_txt, do_lower_case=True),
        "tokenizers.BertWordPieceTokenizer": lambda: RawWordPiece(vocab_txt),
    }
    scores, best = {}, None
    for name, make in makers.items():
        try:
            tok = make()
            got = tok(oracle["texts"], truncation=True, max_length=256)["input_ids"]
            scores[name] = sum(1 for a, b in zip(got, oracle["input_ids"]) if a == b)
            if scores[name] == len(oracle["texts"]) and best is None:
                best = (name, tok)
        except Exception as ex:  # noqa: BLE001 - recorded
            scores[name] = repr(ex)[:200]
    facts["wordpiece_oracle_matches"] = scores
    facts["wordpiece_oracle_texts"] = len(oracle["texts"])
    if best is None:
        print("no construction reproduces the oracle", scores, flush=True)
        return
    facts["wordpiece_used"] = best[0]
    ids = best[1](texts, truncation=True, max_length=256)["input_ids"]
    with open(os.path.join(out, "wordpiece.json"), "w") as f:
        json.dump({"texts": texts, "input_ids": ids}, f, ensure_ascii=True)
    print("wordpiece corpus done with", best[0], flush=True)
    shutil.rmtree(folder, ignore_errors=True)


def main():
    vocab_txt, gpt2_dir, corpus_path, oracle_path, out = sys.argv[1:6]
    os.makedirs(out, exist_ok=True)
    with open(corpus_path, encoding="utf-8") as f:
        texts = json.load(f)["texts"]
    facts = {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__}

    try:
        wordpiece(vocab_txt, oracle_path, texts, out, facts)
    except Exception:  # noqa: BLE001 - the other parts still run
        import traceback
        traceback.print_exc()
    try:
        with multiprocessing.Pool(min(16, os.cpu_count() or 1)) as pool:
            parts = pool.map(wordpiece_classes, spans())
            classes = "".join(pool.map(bytelevel_classes, spans()))
        tables = {name: "".join(p[k] for p in parts) for k, name in enumerate(["clean", "chinese", "split"])}
        tables["strip_accents"] = [r for p in parts for r in p[3]]
        tables["lowercase"] = [r for p in parts for r in p[4]]
        with open(os.path.join(out, "wordpiece-tables.json"), "w") as f:
            json.dump(tables, f, ensure_ascii=True)
        with open(os.path.join(out, "bytelevel-classes.txt"), "w") as f:
            f.write(classes)
        print("code point tables done", flush=True)
    except Exception:  # noqa: BLE001 - the other parts still run
        import traceback
        traceback.print_exc()

    roberta = bpe_folder(gpt2_dir, os.path.join(out, "roberta-vocab"), ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    deberta = bpe_folder(gpt2_dir, os.path.join(out, "deberta-vocab"), ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"])
    bpe = [("roberta", transformers.RobertaTokenizer, roberta), ("deberta", transformers.DebertaTokenizer, deberta)]
    for name, cls, folder in bpe if not os.environ.get("SKIP_BPE") else []:
        try:
            rows = bpe_truth(cls, folder, texts, facts, name)
            with open(os.path.join(out, f"{name}.json"), "w") as f:
                json.dump(rows, f)
        except Exception as ex:  # noqa: BLE001 - recorded, not fatal
            import traceback
            traceback.print_exc()
            facts[name] = {"error": repr(ex)[:500]}
        print(name, "done", flush=True)
        shutil.rmtree(folder, ignore_errors=True)

    with open(os.path.join(out, "facts.json"), "w") as f:
        json.dump(facts, f, indent=1)
    print(json.dumps(facts, indent=1))


if __name__ == "__main__":
    main()
