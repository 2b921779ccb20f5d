#!/usr/bin/env python3
"""Train the bundled reference `tiny-llama`: a small Llama (GQA, RMSNorm, RoPE, SwiGLU, untied lm_head) with a real
SentencePiece tokenizer, saved as a Hugging Face checkpoint directory that llama.cpp's `convert_hf_to_gguf.py` and
`mlx_lm convert` take as it is.

    tools/llama/setup-venvs.sh llama                         # once: .build-venv-llama (Debian's torch + transformers)
    .build-venv-llama/bin/python tools/llama/train_tiny_llama.py [--out golden/tiny-llama] [--steps 300]

Why these dimensions (hidden 256, 3 layers, 8 heads of 32, 4 KV heads, intermediate 512, vocab 512):
  * every weight matrix has rows and columns that are multiples of 256, so every GGUF block type (32-wide Q4_0/Q8_0
    blocks, 256-wide K-quant super-blocks) and every MLX group size (32/64/128) applies to every tensor: nothing
    falls back to F16 or stays unquantized because of its shape;
  * GQA (8 query heads share 4 KV heads), so KV-head repetition is exercised;
  * size: the repository keeps golden/ under ~20 MB. An f32 checkpoint is 4 bytes per parameter; 3 layers give
    2,033,408 parameters (8.1 MB) and leave room for golden.h5 (every module's output for every token); 4 layers
    would cost 2.4 MB more weights plus a third more activations. 3 layers still show llama-quantize's per-layer
    choices (Q4_K_M gives attn_v/ffn_down of the last layer more bits than the first two).

Text: the license texts in /usr/share/common-licenses (Debian's base-files). They are pinned by SHA-256 below so the
corpus cannot drift with what is installed; `Artistic` is held out of training (the goldens' prompts come from it).
Deterministic: fixed seeds, one thread, torch.use_deterministic_algorithms; rerunning gives byte-identical files
with the same torch/transformers/sentencepiece versions.
"""

import argparse
import hashlib
import io
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from parity_models import reference_framework  # noqa: E402  (Debian's torch calls itself 1.13.0a0; it is 1.13.1)

LICENSE_DIR = "/usr/share/common-licenses"
# Training files (regular files only; GPL, LGPL, GFDL are symlinks to these) and their SHA-256 in base-files 12.4.
TRAIN_FILES = {
    "Apache-2.0": "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30",
    "BSD": "5d588eb3b157d52112afea935c88a7ff9efddc1e2d95a42c25d3b96ad9055008",
    "CC0-1.0": "a2010f343487d3f7618affe54f789f5487602331c0a8d03f49e9a7c547cf0499",
    "GFDL-1.2": "d8e94ae5fdb5433fcae2961aeb1a8cf17174d6f4a0465d24bf37dd8a038bd439",
    "GFDL-1.3": "110535522396708cea37c72a802c5e7e81391139f5f7985631c93ef242b206a4",
    "GPL-1": "d77d235e41d54594865151f4751e835c5a82322b0e87ace266567c3391a4b912",
    "GPL-2": "8177f97513213526df2cf6184d8ff986c675afb514d4e68a404010521b880643",
    "GPL-3": "3972dc9744f6499f0f9b2dbf76696f2ae7ad8af9b23dde66d6af86c9dfb36986",
    "LGPL-2": "681e386e44a19d7d0674b4320272c90e66b6610b741e7e6305f8219c42e85366",
    "LGPL-2.1": "dc626520dcd53a22f727af3ee42c770e56c97a64fe3adb063799d8ab032fe551",
    "LGPL-3": "e3a994d82e644b03a792a930f574002658412f62407f5fee083f2555c5f23118",
    "MPL-1.1": "f849fc26a7a99981611a3a370e83078deb617d12a45776d6c4cada4d338be469",
    "MPL-2.0": "fab3dd6bdab226f1c08630b1dd917e11fcb4ec5e1e020e2c16f83a0a13863e85",
}
HELD_OUT_FILE = "Artistic"
HELD_OUT_SHA256 = "b7fd9b73ea99602016a326e0b62e6646060d18febdd065ceca8bb482208c3d88"
SEED = 20261129
VOCAB_SIZE = 512
DIMS = dict(hidden_size=256, num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=4,
            intermediate_size=512, vocab_size=VOCAB_SIZE)


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def read_corpus():
    """{file name: text} of the training files and the held-out text."""
    texts = {}
    for name in list(TRAIN_FILES) + [HELD_OUT_FILE]:
        with open(os.path.join(LICENSE_DIR, name), "rb") as f:
            data = f.read()
        expected = TRAIN_FILES.get(name, HELD_OUT_SHA256)
        if sha256_bytes(data) != expected:
            sys.exit(f"{LICENSE_DIR}/{name}: SHA-256 {sha256_bytes(data)} is not the pinned {expected} "
                     "(another base-files version?); the corpus would differ")
        texts[name] = data.decode("utf-8")
    return texts


def train_tokenizer(train_texts, out_dir):
    """A SentencePiece BPE model (Llama's settings: byte fallback, no normalisation, dummy prefix, split digits)."""
    import sentencepiece as spm
    lines = [line for text in train_texts for line in text.splitlines() if line.strip()]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type="bpe", vocab_size=VOCAB_SIZE,
        # 1.0 fails at vocab 512 ("Vocabulary size is smaller than required_chars"); rare characters are covered
        # by the byte-fallback tokens anyway.
        character_coverage=0.9995, byte_fallback=True, split_digits=True, add_dummy_prefix=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2)
    path = os.path.join(out_dir, "tokenizer.model")
    with open(path, "wb") as f:
        f.write(model.getvalue())
    return path


def save_hf_tokenizer(sp_path, out_dir):
    """tokenizer.model + tokenizer.json + tokenizer_config.json + special_tokens_map.json, as transformers saves them."""
    from transformers import LlamaTokenizerFast
    # legacy=True + add_prefix_space=True is the combination whose tokenizer.json gives exactly SentencePiece's
    # ids (checked on every corpus file below); legacy=False, or add_prefix_space left unset, drops the dummy prefix.
    tok = LlamaTokenizerFast(vocab_file=sp_path, legacy=True, add_prefix_space=True, add_bos_token=True,
                             add_eos_token=False, from_slow=True)
    tok.model_max_length = 512
    tok.save_pretrained(out_dir)
    return tok


def check_tokenizers_agree(sp_path, tok, texts):
    """tokenizer.json (used by mlx-lm and transformers) must give SentencePiece's ids (used by llama.cpp)."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=sp_path)
    for name, text in texts.items():
        if tok(text)["input_ids"] != [sp.bos_id()] + sp.encode(text):
            sys.exit(f"tokenizer.json and tokenizer.model tokenize {name} differently")


def make_config():
    from transformers import LlamaConfig
    return LlamaConfig(**DIMS, max_position_embeddings=512, rms_norm_eps=1e-5, rope_theta=10000.0,
                       hidden_act="silu", tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
                       bos_token_id=1, eos_token_id=2, initializer_range=0.02, torch_dtype="float32",
                       attn_implementation="eager")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="golden/tiny-llama")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(SEED)
    from transformers import LlamaForCausalLM
    import transformers
    import sentencepiece

    texts = read_corpus()
    hashes = {name: sha256_bytes(texts[name].encode("utf-8")) for name in texts}
    os.makedirs(args.out, exist_ok=True)
    sp_path = train_tokenizer([texts[n] for n in TRAIN_FILES], args.out)
    tok = save_hf_tokenizer(sp_path, args.out)
    check_tokenizers_agree(sp_path, tok, texts)

    # One token stream: each training file tokenized with BOS first, concatenated in the fixed order above.
    stream = []
    for name in TRAIN_FILES:
        stream += tok(texts[name])["input_ids"]
    stream = torch.tensor(stream, dtype=torch.long)
    held = torch.tensor(tok(texts[HELD_OUT_FILE])["input_ids"], dtype=torch.long)
    print(f"tokens: train {len(stream)}, held-out {len(held)} ({HELD_OUT_FILE})", flush=True)

    config = make_config()
    model = LlamaForCausalLM(config)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    generator = torch.Generator().manual_seed(SEED)
    warmup = 20

    def lr_at(step):  # linear warm-up, cosine decay to 10 %
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    def held_out_loss():
        model.eval()
        with torch.no_grad():
            n = (len(held) - 1) // args.seq
            x = held[: n * args.seq].view(n, args.seq)
            loss = model(input_ids=x, labels=x).loss.item()
        model.train()
        return loss

    curve = []
    start = time.time()
    for step in range(args.steps):
        starts = torch.randint(0, len(stream) - args.seq, (args.batch,), generator=generator)
        x = torch.stack([stream[s: s + args.seq] for s in starts])
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 20 == 0 or step == args.steps - 1:
            entry = {"step": step, "train_loss": round(loss.item(), 4), "seconds": round(time.time() - start, 1)}
            if step % 60 == 0 or step == args.steps - 1:
                entry["held_out_loss"] = round(held_out_loss(), 4)
            curve.append(entry)
            print(json.dumps(entry), flush=True)
    seconds = time.time() - start

    model.eval()
    model.save_pretrained(args.out, safe_serialization=True)
    os.chmod(os.path.join(args.out, "model.safetensors"), 0o644)  # save_pretrained leaves it 0600
    with open(os.path.join(args.out, "model.safetensors"), "rb") as f:
        weights_sha = sha256_bytes(f.read())
    training = {
        "name": "tiny-llama",
        "description": "Parity's reference Llama: trained briefly on Debian's license texts",
        "generator": "tools/llama/train_tiny_llama.py",
        "seed": SEED,
        "torch": reference_framework().split()[1], "transformers": transformers.__version__,
        "sentencepiece": sentencepiece.__version__,
        "corpus": {"directory": LICENSE_DIR, "train_files": list(TRAIN_FILES), "held_out_file": HELD_OUT_FILE,
                   "sha256": hashes, "train_tokens": len(stream), "held_out_tokens": len(held)},
        "optimizer": {"name": "AdamW", "lr": args.lr, "betas": [0.9, 0.95], "weight_decay": 0.1,
                      "warmup_steps": warmup, "schedule": "cosine to 10 %", "grad_clip": 1.0},
        "steps": args.steps, "batch": args.batch, "sequence_length": args.seq, "threads": 1,
        "seconds": round(seconds, 1), "loss_curve": curve,
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights_sha256": weights_sha,
    }
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump(training, f, indent=1)
        f.write("\n")
    print(f"trained {args.steps} steps in {seconds:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
