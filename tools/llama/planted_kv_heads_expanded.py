#!/usr/bin/env python3
"""Grouped-query K/V heads expanded to one per query head, written by llama.cpp's own converter.

    .build-venv-llama/bin/python tools/llama/planted_kv_heads_expanded.py tiled|repeat_kv LLAMA_CPP_DIR -- HF_DIR --outtype f32 --outfile X.gguf

Converters for runtimes without grouped-query attention expand the n_kv K/V heads to n_heads (multi-head attention).
transformers' repeat_kv gives query head h the KV head h // (n_heads / n_kv): each KV head repeated in place
(`repeat_kv`: the same model, stored as multi-head). The planted mistake (`tiled`) expands with `torch.Tensor.repeat`
on the whole matrix instead, which tiles the heads (0, 1, 2, 3, 0, 1, 2, 3): llama.cpp then gives query head h the
original KV head h mod n_kv. Either way the unmodified convert_hf_to_gguf.py runs with num_key_value_heads set to
num_attention_heads, so the file says what it holds (llama.attention.head_count_kv, the Q/K permutation per head), and
llama.cpp loads it.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_hf_to_gguf_compat import run_converter  # noqa: E402


def expand_kv_heads(order):
    from conversion.llama import LlamaModel
    original_init, original_modify = LlamaModel.__init__, LlamaModel.modify_tensors

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        heads, kv_heads = self.hparams["num_attention_heads"], self.hparams["num_key_value_heads"]
        self.kv_copies = heads // kv_heads
        self.head_dim = self.hparams.get("head_dim") or self.hparams["hidden_size"] // heads
        self.hparams["num_key_value_heads"] = heads

    def modify_tensors(self, data_torch, name, bid):
        if name.endswith(("k_proj.weight", "v_proj.weight")):
            columns = data_torch.shape[-1]
            if order == "tiled":  # whole [n_kv·D, C] blocks: head j at j, j + n_kv, …
                data_torch = data_torch.repeat(self.kv_copies, 1)
            else:  # each head repeated in place: head j at j·g … j·g + g − 1 (lazy tensors have no repeat_interleave)
                data_torch = data_torch.reshape(-1, 1, self.head_dim, columns).repeat(1, self.kv_copies, 1, 1).reshape(-1, columns)
        return original_modify(self, data_torch, name, bid)

    LlamaModel.__init__ = init
    LlamaModel.modify_tensors = modify_tensors


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[1] not in ("tiled", "repeat_kv") or sys.argv[3] != "--":
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    order = sys.argv[1]
    sys.exit(run_converter(sys.argv[2], sys.argv[4:], prepare=lambda: expand_kv_heads(order)))
