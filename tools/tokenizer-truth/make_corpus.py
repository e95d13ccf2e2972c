"""Write a deterministic corpus of hostile texts for comparing our tokenizers with Hugging Face's.

usage: python3 make_corpus.py VOCAB_TXT N OUT_JSON

The texts mix ordinary words with every kind of character the tokenizers treat specially: controls, format and
zero-width characters, every Unicode space, combining marks, accented and cased letters, CJK ideographs of every
extension block, scripts and emoji added in recent Unicode versions, private use and unassigned code points,
special-token literals, words around the 100-character WordPiece limit, and texts past 256 tokens.
"""
import json
import random
import sys

# (first, last) code point ranges to draw single characters from.
BLOCKS = [
    (0x0000, 0x001F), (0x007F, 0x009F),                      # C0 and C1 controls
    (0x00A0, 0x00FF), (0x0100, 0x024F), (0x1E00, 0x1EFF),    # Latin-1, Latin Extended, Latin Extended Additional
    (0x0250, 0x02FF), (0x0300, 0x036F), (0x1AB0, 0x1AFF),    # IPA, combining marks
    (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0xFE20, 0xFE2F),
    (0x0370, 0x03FF), (0x0400, 0x052F), (0x0530, 0x058F),    # Greek, Cyrillic, Armenian
    (0x0590, 0x05FF), (0x0600, 0x06FF), (0x0700, 0x074F),    # Hebrew, Arabic, Syriac
    (0x0860, 0x08FF), (0x0900, 0x097F), (0x0980, 0x0DFF),    # Arabic Extended, Indic
    (0x0E00, 0x0E7F), (0x0F00, 0x0FFF), (0x1000, 0x109F),    # Thai, Tibetan, Myanmar
    (0x10A0, 0x10FF), (0x1100, 0x11FF), (0x1200, 0x139F),    # Georgian, Hangul Jamo, Ethiopic
    (0x13A0, 0x13FF), (0x1680, 0x169F), (0x1780, 0x17FF),    # Cherokee, Ogham, Khmer
    (0x1800, 0x18AF), (0x1C80, 0x1CBF), (0x2000, 0x206F),    # Mongolian, Cyrillic Extended-C, General Punctuation
    (0x2070, 0x209F), (0x20A0, 0x20CF), (0x2100, 0x218F),    # super/subscripts, currency, letterlike, number forms
    (0x2190, 0x23FF), (0x2460, 0x24FF), (0x2500, 0x27BF),    # arrows, math, enclosed, box drawing, dingbats
    (0x2C00, 0x2C7F), (0x2C80, 0x2CFF), (0x2D00, 0x2D7F),    # Glagolitic, Coptic, Georgian Supplement
    (0x2E00, 0x2E7F), (0x2E80, 0x2FDF), (0x3000, 0x303F),    # Supplemental Punctuation (2E50+ is recent), radicals
    (0x3040, 0x30FF), (0x3100, 0x31FF), (0x3200, 0x33FF),    # Kana, Bopomofo, enclosed CJK
    (0x3400, 0x4DBF), (0x4DC0, 0x4DFF), (0x4E00, 0x9FFF),    # CJK Ext A, Yijing, CJK
    (0xA000, 0xA4CF), (0xA640, 0xA69F), (0xA720, 0xA7FF),    # Yi, Cyrillic Extended-B, Latin Extended-D
    (0xA830, 0xA83F), (0xA8E0, 0xA8FF), (0xAB30, 0xAB6F),    # Indic numbers, Devanagari Extended, Latin Extended-E
    (0xAC00, 0xD7AF), (0xD7B0, 0xD7FF), (0xE000, 0xF8FF),    # Hangul, Jamo Extended-B, private use
    (0xF900, 0xFAFF), (0xFB00, 0xFB4F), (0xFB50, 0xFDFF),    # CJK compatibility, presentation forms
    (0xFE00, 0xFE0F), (0xFE10, 0xFE1F), (0xFE30, 0xFE6F),    # variation selectors, vertical and small forms
    (0xFE70, 0xFEFF), (0xFF00, 0xFFEF), (0xFFF0, 0xFFFF),    # Arabic forms B, BOM, half/fullwidth, specials
    (0x10000, 0x1007F), (0x10300, 0x1034F), (0x10400, 0x1044F),  # Linear B, Old Italic, Deseret (cased)
    (0x10570, 0x105BF), (0x10D40, 0x10D8F), (0x10EC0, 0x10EFF),  # Vithkuqi (14), Garay (16), Arabic Ext-C (15)
    (0x11F00, 0x11F5F), (0x11BC0, 0x11BFF), (0x13460, 0x143FF),  # Kawi (15), Sunuwar (16), Egyptian Ext-A (16)
    (0x16D40, 0x16D7F), (0x16E40, 0x16E9F), (0x16FE0, 0x16FFF),  # Kirat Rai (16), Medefaidrin (cased), ideographic symbols
    (0x1CC00, 0x1CEBF), (0x1D400, 0x1D7FF), (0x1DF00, 0x1DFFF),  # legacy computing (16), math alphanumerics, Latin Ext-G
    (0x1E030, 0x1E08F), (0x1E4D0, 0x1E4FF), (0x1E900, 0x1E95F),  # Cyrillic Ext-D (15), Nag Mundari (15), Adlam (cased)
    (0x1F000, 0x1F0FF), (0x1F100, 0x1F2FF), (0x1F300, 0x1F5FF),  # game symbols, enclosed, pictographs
    (0x1F600, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF),  # emoticons, transport, supplemental symbols
    (0x1FA70, 0x1FAFF), (0x1FB00, 0x1FBFF),                      # symbols and pictographs Ext-A, legacy computing
    (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),  # CJK Ext B, C, D
    (0x2B820, 0x2CEAF), (0x2CEB0, 0x2EBEF), (0x2EBF0, 0x2EE5F),  # CJK Ext E, F, I
    (0x2F800, 0x2FA1F), (0x30000, 0x3134F), (0x31350, 0x323AF),  # compatibility supplement, Ext G, H
    (0xE0000, 0xE007F), (0xE0100, 0xE01EF), (0xF0000, 0xF00FF),  # tags, variation selectors supplement, PUA-A
    (0x40000, 0x4FFFF),                                          # unassigned plane
]

SPACES = "\t\n\r\u000b\u000c\u001c\u001d\u001e\u001f \u0085\u00a0\u1680\u180e\u2000\u2003\u2007\u200a\u200b" \
         "\u2028\u2029\u202f\u205f\u3000\ufeff"
SPECIALS = ["[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "[cls]", "[CLS", "CLS]", "[[SEP]]", "<s>", "</s>",
            "<mask>", "<pad>", "<unk>", "<|endoftext|>"]
ACCENTED = "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿÀÁÂÃÄÅÆÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝŸßẞİıŁłŒœŠšŽžǅǈǋΣσςΆΈΉΐΰ"
EMOJI_SEQUENCES = ["👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇩🇪", "1️⃣", "🧑🏿‍💻", "🫠", "🫶🏻", "🪿", "🩷", "🫨"]


def random_char(rng):
    lo, hi = rng.choice(BLOCKS)
    cp = rng.randint(lo, hi)
    if 0xD800 <= cp <= 0xDFFF:
        cp = 0xFFFD
    return chr(cp)


def word(rng, words):
    kind = rng.random()
    if kind < 0.45:
        w = rng.choice(words)
        return w.upper() if rng.random() < 0.15 else w.capitalize() if rng.random() < 0.2 else w
    if kind < 0.65:
        return "".join(random_char(rng) for _ in range(rng.randint(1, 6)))
    if kind < 0.75:
        return rng.choice(words) + "".join(rng.choice(ACCENTED) for _ in range(rng.randint(1, 3)))
    if kind < 0.80:
        return rng.choice(SPECIALS)
    if kind < 0.85:
        return rng.choice(EMOJI_SEQUENCES)
    if kind < 0.90:
        return "".join(rng.choice(".,;:!?'\"()[]{}<>-_/\\@#$%^&*+=~`|") for _ in range(rng.randint(1, 4)))
    if kind < 0.93:
        # Around WordPiece's 100-character limit, before and after accent stripping.
        base = rng.choice(["a", "é", "e\u0301", "ab", "ß", "中"])
        return base * rng.randint(45, 105)
    if kind < 0.97:
        return str(rng.randint(0, 10 ** rng.randint(1, 12)))
    return rng.choice(words) + random_char(rng) + rng.choice(words)


def text(rng, words):
    n = rng.choice([1, 2, 3, 5, 8, 13, 21, 40]) if rng.random() < 0.95 else rng.randint(150, 320)
    parts = []
    for _ in range(n):
        parts.append(word(rng, words))
        parts.append(rng.choice(SPACES) if rng.random() < 0.15 else "" if rng.random() < 0.1 else " ")
    t = "".join(parts)
    if rng.random() < 0.1:
        t = rng.choice(SPACES) + t + rng.choice(SPACES)
    return t


def main():
    vocab_path, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(vocab_path, encoding="utf-8") as f:
        words = [w.strip() for w in f if w.strip().isalpha() and w.strip().isascii() and len(w.strip()) > 1]
    rng = random.Random(20261126)
    texts = [text(rng, words) for _ in range(n)]
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"seed": 20261126, "texts": texts}, f, ensure_ascii=True)


if __name__ == "__main__":
    main()
