"""A safetensors header read and checked in full before any tensor is: an upload is untrusted.

The format (huggingface/safetensors): 8 bytes of little-endian header length, a JSON object
mapping each tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (plus an optional
``__metadata__`` of strings), then one byte buffer that the tensors tile exactly, without gaps or
overlaps. Every way a header can break that is a 422 naming the entry, never a 500 from deeper in.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass

HEADER_LIMIT = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


class HeaderRefused(ValueError):
    """The body is not a well-formed safetensors file; the message says where."""


@dataclass(frozen=True)
class TensorEntry:
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _pickle_hint(body: bytes) -> str:
    return (
        " (a .pt/.pth pickle? `lure import` converts one)"
        if body[:2] in (b"\x80\x02", b"PK")
        else ""
    )


def _header_json(body: bytes) -> tuple[dict, int]:
    if len(body) < 8:
        raise HeaderRefused("body is not a safetensors file: too short to hold a header")
    length = struct.unpack("<Q", body[:8])[0]
    if length > min(HEADER_LIMIT, len(body) - 8):
        raise HeaderRefused(
            "body is not a safetensors file: its header length is not valid" + _pickle_hint(body)
        )
    try:
        header = json.loads(body[8 : 8 + length])
    except (UnicodeDecodeError, ValueError):
        raise HeaderRefused("body is not a safetensors file: its header is not JSON") from None
    if not isinstance(header, dict):
        raise HeaderRefused(
            f"body is not a valid safetensors file: its header is a JSON {type(header).__name__}, "
            "not an object"
        )
    return header, length


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _entry(name: str, info: object) -> TensorEntry:
    """One tensor's entry, every field checked against the format."""
    where = f"body is not a valid safetensors file: entry {name!r}"
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
        raise HeaderRefused(f"{where} is malformed (needs dtype, shape and data_offsets)")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in DTYPE_BYTES:
        raise HeaderRefused(f"{where} has the unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise HeaderRefused(f"{where} has a shape that is not a list of sizes")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_is_count, offsets)):
        raise HeaderRefused(f"{where} needs data_offsets [begin, end] of two byte counts")
    begin, end = offsets
    if end - begin != math.prod(shape) * DTYPE_BYTES[dtype]:
        raise HeaderRefused(
            f"{where}: data_offsets [{begin}, {end}] do not hold a {dtype} tensor of shape {shape}"
        )
    return TensorEntry(dtype, tuple(shape), begin, end)


def read_header(body: bytes) -> dict[str, TensorEntry]:
    """Tensor name → its entry, after checking that the entries tile the byte buffer exactly."""
    header, length = _header_json(body)
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise HeaderRefused("body is not a valid safetensors file: __metadata__ must map to text")
    entries = {name: _entry(name, info) for name, info in header.items()}
    position = 0
    for name, entry in sorted(entries.items(), key=lambda item: (item[1].begin, item[1].end)):
        if entry.begin != position:
            problem = "overlaps the tensor before it" if entry.begin < position else "leaves a gap"
            raise HeaderRefused(f"body is not a valid safetensors file: entry {name!r} {problem}")
        position = entry.end
    if 8 + length + position > len(body):
        raise HeaderRefused(
            f"the file is truncated: its header promises {8 + length + position} bytes, "
            f"the body has {len(body)}"
        )
    if 8 + length + position < len(body):
        raise HeaderRefused(
            f"body is not a valid safetensors file: {len(body) - 8 - length - position} bytes "
            "follow the last tensor"
        )
    return entries
