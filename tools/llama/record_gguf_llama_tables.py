#!/usr/bin/env python3
"""Record what llama.cpp's converter and quantizer wrote, key by key and tensor by tensor, read with llama.cpp's gguf-py.

    PYTHONPATH=.build-llama/src/llama_cpp_python-0.3.36/vendor/llama.cpp/gguf-py \\
        .build-venv-tools/bin/python tools/llama/record_gguf_llama_tables.py [ECOSYSTEM_DIR] [OUT_JSON]

Reads ECOSYSTEM_DIR/gguf/tiny-llama-{f32,f16,bf16,q8_0,Q4_0,Q4_K_M}.gguf (written by tools/llama/make_ecosystem_files.sh;
default .build-llama/ecosystem) and writes OUT_JSON (default Tests/ParityTests/Fixtures/llama/gguf-llama-tables.json):
per file its bytes and SHA-256, every metadata key in file order with its GGUF type and value (an array as its element
type, count and the SHA-256 of its items serialized as GGUF stores them: a string as u64 length + UTF-8 bytes, a number
little-endian), and every tensor in file order with its ggml type, ne and the SHA-256 of its data bytes. These are the
files' own bytes; Parity's converter must reproduce them (Tests/ParityTests/GGUFLlamaConverterTests.swift).
Only deterministic tools made these files (no importance matrix), so a rerun of the tools gives the same table.
"""
import hashlib
import json
import os
import sys

import gguf
import numpy as np

FILES = ["f32", "f16", "bf16", "q8_0", "Q4_0", "Q4_K_M"]


def field_record(field):
    types = field.types
    vtype = types[0]
    if vtype == gguf.GGUFValueType.ARRAY:
        # parts: key length, key, value type, element type, count, then the items (strings as length + bytes)
        items = b"".join(np.asarray(p).tobytes() for p in field.parts[5:])
        return {"key": field.name, "type": "ARRAY", "element_type": types[1].name, "count": len(field.data),
                "sha256": hashlib.sha256(items).hexdigest()}
    value = field.contents()
    if isinstance(value, (np.floating, float)):
        value = float(value)
    elif isinstance(value, (np.integer,)):
        value = int(value)
    elif isinstance(value, (np.bool_,)):
        value = bool(value)
    return {"key": field.name, "type": vtype.name, "value": value}


def main():
    eco = sys.argv[1] if len(sys.argv) > 1 else ".build-llama/ecosystem"
    out = sys.argv[2] if len(sys.argv) > 2 else "Tests/ParityTests/Fixtures/llama/gguf-llama-tables.json"
    files = {}
    for t in FILES:
        path = os.path.join(eco, "gguf", f"tiny-llama-{t}.gguf")
        raw = open(path, "rb").read()
        reader = gguf.GGUFReader(path)
        metadata = [field_record(f) for name, f in reader.fields.items() if not name.startswith("GGUF.")]
        tensors = [{"name": x.name, "type": x.tensor_type.name, "ne": [int(n) for n in x.shape],
                    "sha256": hashlib.sha256(np.ascontiguousarray(x.data).tobytes()).hexdigest()} for x in reader.tensors]
        files[os.path.basename(path)] = {"bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest(),
                                         "metadata": metadata, "tensors": tensors}
    doc = {
        "what": "llama.cpp's GGUF files of golden/tiny-llama, key by key and tensor by tensor (gguf-py GGUFReader)",
        "made_by": "tools/llama/record_gguf_llama_tables.py",
        "gguf_py": getattr(gguf, "__version__", None) or "llama.cpp vendored gguf-py",
        "array_sha256": "SHA-256 of the items as GGUF serializes them (string: u64 length + UTF-8; numbers little-endian)",
        "files": files,
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {out}: {len(files)} files")


if __name__ == "__main__":
    main()
