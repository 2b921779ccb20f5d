"""Minimal safetensors writer and reader for float32 tensors.

Written here instead of depending on the pip `safetensors` package (not packaged for Debian's
interpreter). Layout (https://huggingface.co/docs/safetensors):
    8 bytes   little-endian u64 N
    N bytes   UTF-8 JSON header, padded with spaces so that 8 + N is a multiple of 8
    data      raw little-endian tensor bytes, contiguous, in the order of data_offsets
The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative
to the start of the data section), preceded by "__metadata__": {"format": "pt"}.
"""

import json
import struct

import numpy as np

_METADATA = {"format": "pt"}


def write_safetensors(path, tensors):
    """Write {name: float32 array} to `path`, tensors in sorted name order, no holes."""
    header = {"__metadata__": _METADATA}  # first, where the reference implementation writes it
    blobs = []
    offset = 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        if array.dtype != np.float32:
            raise TypeError(f"{name}: only float32 is supported, got {array.dtype}")
        blob = array.astype("<f4", copy=False).tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    # Compact separators: the header is part of the hashed file, keep it stable and small.
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for blob in blobs:
            f.write(blob)


def read_safetensors(path):
    """Read a float32 safetensors file into {name: array}, validating the layout strictly."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors header")
    (header_len,) = struct.unpack("<Q", data[:8])
    if 8 + header_len > len(data):
        raise ValueError(f"{path}: header length {header_len} exceeds file size {len(data)}")
    header = json.loads(data[8:8 + header_len].decode("utf-8"))
    header.pop("__metadata__", None)
    body = data[8 + header_len:]

    tensors = {}
    expected_begin = 0
    # Walk tensors in data order to prove the data section is contiguous with no holes or overlaps.
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
        if entry["dtype"] != "F32":
            raise ValueError(f"{path}: {name}: unsupported dtype {entry['dtype']}")
        begin, end = entry["data_offsets"]
        shape = tuple(entry["shape"])
        if begin != expected_begin or end - begin != 4 * int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{path}: {name}: bad data_offsets {[begin, end]} for shape {list(shape)}")
        tensors[name] = np.frombuffer(body, dtype="<f4", count=end // 4 - begin // 4,
                                      offset=begin).reshape(shape).astype(np.float32)
        expected_begin = end
    if expected_begin != len(body):
        raise ValueError(f"{path}: {len(body) - expected_begin} trailing bytes after the last tensor")
    return tensors
