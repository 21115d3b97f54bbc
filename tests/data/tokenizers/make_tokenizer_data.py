#!/usr/bin/python3
"""Makes the tokenizer fixtures of tests/test_tokenizers.cpp and the ids they must give.

  tokenizer_2/spiece.model   a SentencePiece unigram model trained on corpus.txt with T5's
                             conventions (pad 0, eos 1, unk 2, no bos), by Debian's spm_train
  tokenizer/vocab.json,      a CLIP-style byte-level BPE learned on corpus.txt by this script
  tokenizer/merges.txt       (CLIP's file formats: 256 byte characters, the same with </w>, one
                             entry per merge, then <|startoftext|> and <|endoftext|>)
  expected.json              the ids of awkward strings under both, from independent references:
                             T5: Python's sentencepiece binding, plus the EOS/truncation/padding
                             of the FLUX pipelines written here; CLIP: OpenAI's simple_tokenizer
                             algorithm written here from its description, with the `regex`
                             module's true \\p{L}/\\p{N}/\\s and Python's full str.lower();
                             plus Python's lower-casing and character classes of the Unicode
                             blocks that src/text/unicode.cpp claims to get exactly right.

The fixtures are committed and CI only reads them. To make them again (Debian 12):
  apt-get install sentencepiece python3-sentencepiece python3-regex
  /usr/bin/python3 tests/data/tokenizers/make_tokenizer_data.py            # expected.json only
  /usr/bin/python3 tests/data/tokenizers/make_tokenizer_data.py --retrain  # the models too
"""
import argparse
import collections
import json
import pathlib
import shutil
import subprocess
import tempfile
import unicodedata

import regex
import sentencepiece

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus.txt"
SPIECE = HERE / "tokenizer_2" / "spiece.model"
VOCAB = HERE / "tokenizer" / "vocab.json"
MERGES = HERE / "tokenizer" / "merges.txt"
EXPECTED = HERE / "expected.json"

T5_VOCAB_SIZE = 400
CLIP_MERGES = 400
CLIP_MAX_TOKENS = 77
BOS, EOS = "<|startoftext|>", "<|endoftext|>"

# ---- CLIP: OpenAI's simple_tokenizer, from its description ----------------------------------
# The pre-tokenization pattern, compiled with the `regex` module as the reference does.
CLIP_PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE)


def byte_characters():
    """bytes_to_unicode: printable bytes stand for themselves, the rest for U+0100 on, in order."""
    printable = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_CHARS = byte_characters()


def clip_words(text):
    """Clean-up (white space collapsed and stripped; no ftfy, no HTML unescaping), lower-casing,
    then the pattern's matches."""
    text = regex.sub(r"\s+", " ", text).strip().lower()
    return CLIP_PATTERN.findall(text)


def initial_symbols(word):
    chars = [BYTE_CHARS[b] for b in word.encode("utf-8")]
    chars[-1] += "</w>"
    return chars


def apply_merges(symbols, ranks):
    """Repeatedly joins the adjacent pair with the lowest rank (all its occurrences, left to
    right) until no adjacent pair has a rank."""
    symbols = list(symbols)
    while len(symbols) > 1:
        ranked = [(ranks[p], p) for p in zip(symbols, symbols[1:]) if p in ranks]
        if not ranked:
            break
        _, (a, b) = min(ranked)
        out, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
                out.append(a + b)
                i += 2
            else:
                out.append(symbols[i])
                i += 1
        symbols = out
    return symbols


class ClipReference:
    def __init__(self, vocab_path, merges_path):
        self.vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
        lines = merges_path.read_text(encoding="utf-8").splitlines()
        assert lines[0].startswith("#version")
        self.ranks = {tuple(line.split()): n for n, line in enumerate(l for l in lines[1:] if l.strip())}
        self.bos, self.eos = self.vocab[BOS], self.vocab[EOS]
        self.pad = self.eos  # FLUX's CLIPTokenizer pads with <|endoftext|>

    def words(self, text):
        ids = []
        for word in clip_words(text):
            if word in (BOS, EOS):
                ids.append(self.vocab[word])
                continue
            ids.extend(self.vocab.get(s, self.eos) for s in apply_merges(initial_symbols(word), self.ranks))
        return ids

    def encode(self, text, max_tokens=CLIP_MAX_TOKENS):
        ids = [self.bos] + self.words(text)[: max_tokens - 2] + [self.eos]
        length = len(ids)
        eot = ids.index(self.eos)
        return ids + [self.pad] * (max_tokens - length), eot, length


def learn_clip_bpe(corpus_text, merges_wanted):
    """Byte-level BPE with CLIP's end-of-word suffix: counts words, then repeatedly merges the
    most frequent adjacent pair (ties: the smallest pair), never making a symbol twice."""
    counts = collections.Counter()
    for line in corpus_text.splitlines():
        for w in clip_words(line):
            if w not in (BOS, EOS):
                counts[tuple(initial_symbols(w))] += 1
    chars = list(BYTE_CHARS.values())
    vocab = chars + [c + "</w>" for c in chars]
    known = set(vocab)
    words = dict(counts)
    merges = []
    while len(merges) < merges_wanted:
        pairs = collections.Counter()
        for symbols, n in words.items():
            for p in zip(symbols, symbols[1:]):
                pairs[p] += n
        candidates = [(-n, p) for p, n in pairs.items() if n >= 2 and p[0] + p[1] not in known]
        if not candidates:
            break
        _, best = min(candidates)
        merges.append(best)
        known.add(best[0] + best[1])
        vocab.append(best[0] + best[1])
        ranks = {best: 0}
        words = {tuple(apply_merges(s, ranks)): n for s, n in words.items()}
    vocab += [BOS, EOS]
    return {piece: i for i, piece in enumerate(vocab)}, merges


# ---- T5: SentencePiece and the FLUX pipelines' EOS, truncation and padding ------------------
class T5Reference:
    def __init__(self, model_path):
        self.sp = sentencepiece.SentencePieceProcessor(model_file=str(model_path))
        assert (self.sp.pad_id(), self.sp.eos_id(), self.sp.unk_id(), self.sp.bos_id()) == (0, 1, 2, -1)

    def encode(self, text, max_tokens):
        ids = self.sp.encode(text)[: max_tokens - 1] + [self.sp.eos_id()]
        length = len(ids)
        return ids + [self.sp.pad_id()] * (max_tokens - length), length


# ---- the strings ---------------------------------------------------------------------------
LONG_PROMPT = " ".join(
    ["A highly detailed matte painting of a vast floating city above the clouds at sunset, with "
     "bridges of light, waterfalls pouring into the sky, airships docked at crystal towers, "
     "tiny figures walking on terraces, gardens of glowing flowers, birds circling the spires,"] * 4)

# (text, T5 token count: 512 for FLUX.1-dev, 256 for schnell, small ones for truncation)
CASES = [
    ("a red fox in the snow", 512),
    ("café naïve", 512),
    ("CAFÉ NAÏVE, Crème Brûlée à Montréal", 256),
    ("Hello, World! HELLO world hello", 512),
    ("A photo of a 🦊 and a 🐱‍👤, ❤️ 👍🏽", 512),
    ("東京の夜景、美しい。 한국어 텍스트", 256),
    ("pneumonoultramicroscopicsilicovolcanoconiosis" * 3, 512),
    ("", 512),
    ("   \t\n  \u3000 ", 256),
    ("a cat <|endoftext|> a dog", 512),
    ("<|startoftext|>hello<|endoftext|>", 512),
    ("<|ENDOFTEXT|> shouted", 256),
    ("!<|endoftext|>", 256),
    (LONG_PROMPT, 256),
    (LONG_PROMPT, 16),
    ("it's the cat's toy, isn't it? They're here, we've been; I'm sure you'll see, he'd go", 512),
    ("IT'S DON'T 'tis ''s' 'S", 256),
    ("2048x2048, 1024×768 at 1.5x, 8k, 3/14, 1e-4", 512),
    ("x² + y³ = ½ ⅓ Ⅻ ①", 256),
    ("ＦＵＬＬＷＩＤＴＨ ２０４８ ｓｔｙｌｅ！", 512),
    ("cafe\u0301 vs café", 256),
    ("ΑΘΗΝΑ και ΜΟΣΚΒΑ, МОСКВА и Київ", 512),
    ("Straße ẞ İstanbul Ǆ ǅ", 256),
    ("مرحبا ١٢٣ שלום", 512),
    ("नमस्ते दुनिया १२३", 256),
    ("a.b,c;d:e!f?g -- e-mail@example.com (x) [y] {z} <w> ...!!!???", 512),
    ("$19.99 €25 £30 ¥1500 50% #hashtag @user ~tilde `tick` ^caret |pipe| \\back", 256),
    ("   leading and trailing   spaces\t\ttabs\nnew lines   ", 512),
    ("no\u00a0break\u2003em\u2009thin\u200bzero-width", 256),
    ("bell\u0007and\u001fcontrols", 256),
    ("hello", 1),
    ("hello world", 2),
    ("a red fox in the snow", 5),
]

# Strings where src/text/unicode.cpp knowingly differs from the reference (docs/text-encoders.md):
# the test checks that it still does, so that the documentation is updated when it stops.
CLIP_KNOWN_DIFFERENCES = [
    ("ΟΔΟΣ ΚΑΙ ΝΟΜΟΣ", "final sigma: Python lower-cases a word-final Σ to ς, Fresco to σ"),
    ("বাংলা ভাষা", "Bengali vowel signs are marks (Mc/Mn), not \\p{L}; Fresco counts them as letters"),
]

# Unicode blocks where unicode.cpp's tables claim to be exact, and the code points to check.
LOWER_BLOCKS = [(0x0000, 0x058F), (0x1E00, 0x1EFF), (0x2100, 0x218F), (0x2460, 0x24FF), (0xFF00, 0xFFEF)]
CLASS_BLOCKS = [(0x0000, 0x058F), (0x0590, 0x06FF), (0x0900, 0x097F), (0x0E00, 0x0E7F),
                (0x2000, 0x2BFF), (0x2E00, 0x2FFF), (0x3000, 0x30FF), (0x3200, 0x33FF), (0xE000, 0xF8FF),
                (0xFE00, 0xFE6F), (0xFF00, 0xFFFF), (0x1D000, 0x1D24F), (0x1F000, 0x1FBFF)]


def assigned(cp):
    return unicodedata.category(chr(cp)) not in ("Cn", "Cs")


def char_class(cp):
    ch = chr(cp)
    if regex.match(r"\s", ch):
        return "S"
    if regex.match(r"\p{L}", ch):
        return "L"
    if regex.match(r"\p{N}", ch):
        return "N"
    return "O"


def unicode_checks():
    lower = []
    for lo, hi in LOWER_BLOCKS:
        cps = [cp for cp in range(lo, hi + 1) if assigned(cp) and cp != 0]
        lower.append({"first": lo, "last": hi,
                      "text": "".join(chr(cp) for cp in cps),
                      "lower": "".join(chr(cp).lower() for cp in cps)})  # one at a time: no final sigma
    classes = []
    for lo, hi in CLASS_BLOCKS:
        classes.append({"first": lo, "last": hi,
                        "classes": "".join(char_class(cp) if assigned(cp) else "-" for cp in range(lo, hi + 1))})
    return lower, classes


def dump(value, indent=0):
    """JSON with one case (a dict inside a list) per line, so that a change reads as a diff."""
    pad = " " * indent
    if isinstance(value, dict) and indent < 4:
        items = [f'{pad}  {json.dumps(k)}: {dump(v, indent + 2).lstrip()}' for k, v in value.items()]
        return pad + "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and value and isinstance(value[0], dict):
        items = [pad + "  " + json.dumps(v, ensure_ascii=False) for v in value]
        return pad + "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return pad + json.dumps(value, ensure_ascii=False)


def train_models():
    SPIECE.parent.mkdir(exist_ok=True)
    VOCAB.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # relative names: the model records them, and so stays the same wherever it is made
        shutil.copyfile(CORPUS, f"{tmp}/corpus.txt")
        subprocess.run(["spm_train", "--input=corpus.txt", "--model_prefix=spiece",
                        "--model_type=unigram", f"--vocab_size={T5_VOCAB_SIZE}",
                        "--pad_id=0", "--eos_id=1", "--unk_id=2", "--bos_id=-1",
                        "--pad_piece=<pad>", "--eos_piece=</s>", "--unk_piece=<unk>",
                        "--character_coverage=1.0", "--num_threads=1", "--minloglevel=2"],
                       check=True, cwd=tmp)
        shutil.copyfile(f"{tmp}/spiece.model", SPIECE)
    vocab, merges = learn_clip_bpe(CORPUS.read_text(encoding="utf-8"), CLIP_MERGES)
    VOCAB.write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
    MERGES.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
    print(f"spiece.model: {T5_VOCAB_SIZE} pieces; vocab.json: {len(vocab)} entries, {len(merges)} merges")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--retrain", action="store_true", help="train the two tokenizers again")
    args = ap.parse_args()
    if args.retrain or not (SPIECE.exists() and VOCAB.exists() and MERGES.exists()):
        train_models()
    t5 = T5Reference(SPIECE)
    clip = ClipReference(VOCAB, MERGES)
    t5_cases, clip_cases = [], []
    for text, t5_tokens in CASES:
        ids, length = t5.encode(text, t5_tokens)
        t5_cases.append({"text": text, "max_tokens": t5_tokens, "length": length, "ids": ids})
    for text in dict.fromkeys(t for t, _ in CASES):
        ids, eot, length = clip.encode(text)
        clip_cases.append({"text": text, "eot_index": eot, "length": length, "ids": ids})
    differences = []
    for text, why in CLIP_KNOWN_DIFFERENCES:
        ids, eot, length = clip.encode(text)
        differences.append({"text": text, "why": why, "eot_index": eot, "length": length, "ids": ids})
    lower, classes = unicode_checks()
    expected = {
        "about": "Made by make_tokenizer_data.py (python3-sentencepiece " + sentencepiece.__version__ +
                 ", regex " + regex.__version__ + ", Unicode " + unicodedata.unidata_version + ")",
        "t5": {"model": "tokenizer_2/spiece.model", "eos_id": 1, "pad_id": 0, "cases": t5_cases},
        "clip": {"vocab": "tokenizer/vocab.json", "merges": "tokenizer/merges.txt",
                 "bos_id": clip.bos, "eos_id": clip.eos, "pad_id": clip.pad,
                 "max_tokens": CLIP_MAX_TOKENS, "cases": clip_cases, "known_differences": differences},
        "lowercase": lower,
        "classes": classes,
    }
    EXPECTED.write_text(dump(expected), encoding="utf-8")
    json.loads(EXPECTED.read_text(encoding="utf-8"))
    print(f"{EXPECTED.name}: {len(t5_cases)} T5 cases, {len(clip_cases)} CLIP cases, "
          f"{len(differences)} known differences")


if __name__ == "__main__":
    main()
