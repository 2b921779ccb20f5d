"""The general golden recorder: goldens (golden.h5, format_version 1) for any PyTorch model.

`tools/record_goldens_any.py` is the command; `recorder.py` holds its parts so that the bit-for-bit check
(`tools/golden_recorder/check_bundled.py`) and the tests (`tools/golden_recorder/test_recorder.py`) use the same code:
loading the model (an nn.Module class by import path + constructor kwargs, or a TorchScript file), its weights
(safetensors, load_state_dict(strict=True)) and inputs (.npy / .npz / token ids); one forward pass with every leaf
module hooked; writing the golden with its provenance attributes (docs/recording-goldens.md).
"""
