"""Capture every module's output of a Hugging Face `LlamaForCausalLM` forward pass, with the datasets each module read.

Used by tools/llama/record_goldens.py. Hooks cannot do this on torch 1.13 (forward pre-hooks see no keyword
arguments, and a decoder layer gets its mask and position embeddings as keywords), so each module's `forward` is
wrapped on the instance for the duration of one forward pass; the wrapped call is the original call, unchanged.

How a module's inputs are named: every tensor the forward pass produced or was given is registered under its golden
path. A tensor argument resolves to a registered path when it is that very tensor object, or a view with the same
storage, offset, shape and strides (lm_head reads `hidden_states[:, -0:, :]`, a fresh view of the final norm's
output). A tensor argument that nothing registered — computed inline by the caller, e.g. o_proj's input (the heads
concatenated), down_proj's input (act_fn(gate) * up), the residual sum a post-attention norm reads, the 4-D causal
mask — is recorded too, under /intermediates/<first reader>.<argument>, so every module can be fed all its inputs.
"""

import inspect
from collections import OrderedDict

import torch


def _flatten(value):
    """Tensors (and None placeholders for non-tensors) of a nested output, in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if hasattr(value, "to_tuple"):  # transformers ModelOutput
        value = value.to_tuple()
    if isinstance(value, (tuple, list)):
        out = []
        for item in value:
            out += _flatten(item)
        return out
    return [None]


def _view_key(t):
    return (t.data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)


class Capture:
    """One forward pass's records.

    records: OrderedDict path -> dict(array, kind, op, module, inputs, input_args, options, order, outputs, same_as,
    layout, note); `calls`: module name -> number of calls; `not_run`: modules that never ran.
    """

    def __init__(self, model, attention_class_suffix="Attention"):
        self.model = model
        self.records = OrderedDict()
        self.by_id = {}       # id(tensor) -> (path, tensor)   (the tensor is kept alive so ids stay unique)
        self.by_view = {}     # view key -> path
        self.calls = {}
        self.stack = []
        self.attention_suffix = attention_class_suffix
        self.rope = {}        # attention module name -> (q_rope, k_rope, q_in, k_in, cos, sin)

    # -- registry ---------------------------------------------------------------------------------------
    def register(self, path, tensor, **info):
        if path in self.records:
            raise RuntimeError(f"{path} recorded twice")
        info.setdefault("inputs", [])
        info.setdefault("input_args", [])
        self.records[path] = dict(array=tensor.detach().cpu().numpy().copy(), order=len(self.records), **info)
        # The first registration names a tensor: a module that returns a tensor another module produced
        # (self_attn returns o_proj's output, mlp down_proj's) gets its own dataset, but readers keep
        # naming the producer.
        self.by_id.setdefault(id(tensor), (path, tensor))
        self.by_view.setdefault(_view_key(tensor), path)

    def resolve(self, tensor):
        hit = self.by_id.get(id(tensor))
        if hit is not None and hit[1] is tensor:
            return hit[0]
        return self.by_view.get(_view_key(tensor))

    # -- module wrapping --------------------------------------------------------------------------------
    def _wrap(self, name, module):
        original = module.forward
        signature = inspect.signature(original)
        capture = self

        def forward(*args, **kwargs):
            index = capture.calls.get(name, 0)
            capture.calls[name] = index + 1
            bound = signature.bind(*args, **kwargs)
            inputs, input_args, options = [], [], {}
            for arg, value in bound.arguments.items():
                if signature.parameters[arg].kind == inspect.Parameter.VAR_KEYWORD:
                    items = list(value.items())
                else:
                    items = [(arg, value)]
                for key, val in items:
                    flat = _flatten(val)
                    if all(t is None for t in flat):
                        options[key] = val if isinstance(val, (bool, int, float, str, type(None))) else repr(val)
                        continue
                    for i, t in enumerate(flat):
                        if t is None:
                            continue
                        label = key if len(flat) == 1 else f"{key}[{i}]"
                        path = capture.resolve(t)
                        if path is None:
                            path = f"/intermediates/{name}.{label}"
                            capture.register(path, t, kind="intermediate", first_read_by=name, argument=label)
                        inputs.append(path)
                        input_args.append(label)
            capture.stack.append(name)
            try:
                output = original(*args, **kwargs)
            finally:
                capture.stack.pop()
            capture._record_output(name, module, index, output, inputs, input_args, options)
            return output

        module.forward = forward
        return original

    def _record_output(self, name, module, index, output, inputs, input_args, options):
        flat = _flatten(output)
        base = name if index == 0 else f"{name}@{index}"
        paths = []
        for i, t in enumerate(flat):
            if t is None:
                paths.append("")
                continue
            existing = self.resolve(t)
            if i == 0:
                path = f"/activations/{base}"
                self.register(path, t, kind="module", op=type(module).__name__, module=name, call=index,
                              inputs=inputs, input_args=input_args, options=options, same_as=existing or "")
                paths.append(path)
            elif existing is not None:
                paths.append(existing)
            else:
                if type(module).__name__.endswith(self.attention_suffix) and i == 1:
                    path = f"/attention/{base}/probs"
                else:
                    path = f"/activations/{base}:{i}"
                self.register(path, t, kind="output", module=name, output_index=i, inputs=inputs,
                              input_args=input_args)
                paths.append(path)
        self.records[paths[0]]["outputs"] = paths

    def rope_hook(self, q_in, k_in, cos, sin, q_out, k_out):
        attention = next((n for n in reversed(self.stack)
                          if type(self.modules[n]).__name__.endswith(self.attention_suffix)), None)
        if attention is None:
            raise RuntimeError("apply_rotary_pos_emb called outside an attention module")
        index = self.calls[attention] - 1
        base = attention if index == 0 else f"{attention}@{index}"
        sources = [self.resolve(cos), self.resolve(sin)]
        if None in sources:
            raise RuntimeError(f"{attention}: RoPE cos/sin are not recorded tensors")
        q_src = f"/activations/{attention}.q_proj" if index == 0 else None
        k_src = f"/activations/{attention}.k_proj" if index == 0 else None
        for src, t in ((q_src, q_in), (k_src, k_in)):
            # q/k as RoPE reads them are q_proj/k_proj viewed [B, T, heads, D] and transposed to [B, heads, T, D].
            if src is None or src not in self.records:
                raise RuntimeError(f"{attention}: cannot tie the RoPE input to {src}")
            proj = torch.from_numpy(self.records[src]["array"])
            b, h, s, d = t.shape
            if not torch.equal(proj.view(b, s, h, d).transpose(1, 2), t.detach().cpu()):
                raise RuntimeError(f"{attention}: RoPE input is not {src} split into heads")
        self.register(f"/attention/{base}/q_rope", q_out, kind="attention", module=attention,
                      inputs=[q_src] + sources, input_args=["q", "cos", "sin"], layout="BHTD")
        self.register(f"/attention/{base}/k_rope", k_out, kind="attention", module=attention,
                      inputs=[k_src] + sources, input_args=["k", "cos", "sin"], layout="BHTD")

    # -- run --------------------------------------------------------------------------------------------
    def run(self, given_inputs, call):
        """given_inputs: [(path, tensor)] registered first; call(): runs the forward pass."""
        import transformers.models.llama.modeling_llama as llama
        self.modules = dict(self.model.named_modules())
        for path, t in given_inputs:
            self.register(path, t, kind="input")
        originals = {}
        rope = llama.apply_rotary_pos_emb
        capture = self

        def traced_rope(q, k, cos, sin, *args, **kwargs):
            q_out, k_out = rope(q, k, cos, sin, *args, **kwargs)
            capture.rope_hook(q, k, cos, sin, q_out, k_out)
            return q_out, k_out

        for name, module in self.model.named_modules():
            if name:  # the root's output is lm_head's logits wrapped in a ModelOutput; it has no name
                originals[name] = (module, self._wrap(name, module))
        llama.apply_rotary_pos_emb = traced_rope
        try:
            with torch.no_grad():
                call()
        finally:
            llama.apply_rotary_pos_emb = rope
            for module, original in originals.values():
                del module.forward  # the instance attribute; the class method shows through again
        self.not_run = [name for name in originals if name not in self.calls]
        return self
