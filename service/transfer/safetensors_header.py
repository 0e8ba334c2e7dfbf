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


def header_length(prefix: bytes, body_size: int | None = None) -> int:
    """The JSON header's length from the body's first 8 bytes (``body_size``: the whole body's,
    when known, so a length pointing past it is refused at once)."""
    if len(prefix) < 8:
        raise HeaderRefused("body is not a safetensors file: too short to hold a header")
    length = struct.unpack("<Q", prefix[:8])[0]
    room = HEADER_LIMIT if body_size is None else min(HEADER_LIMIT, body_size - 8)
    if length > room:
        raise HeaderRefused(
            "body is not a safetensors file: its header length is not valid" + _pickle_hint(prefix)
        )
    return length


def _header_json(text: bytes) -> dict:
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise HeaderRefused("body is not a safetensors file: its header is not JSON") from None
    if not isinstance(header, dict):
        raise HeaderRefused(
            f"body is not a valid safetensors file: its header is a JSON {type(header).__name__}, "
            "not an object"
        )
    return header


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


def parse_entries(text: bytes) -> tuple[dict[str, TensorEntry], int]:
    """Tensor name → its entry from the JSON header ``text``, after checking that the entries
    tile one byte buffer exactly; and that buffer's size."""
    header = _header_json(text)
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
    return entries, position


def check_size(promised: int, received: int) -> None:
    """HeaderRefused unless the body holds exactly the bytes its header promises."""
    if promised > received:
        raise HeaderRefused(
            f"the file is truncated: its header promises {promised} bytes, the body has {received}"
        )
    if promised < received:
        raise HeaderRefused(
            f"body is not a valid safetensors file: {received - promised} bytes follow the last "
            "tensor"
        )


def read_header(body: bytes) -> dict[str, TensorEntry]:
    """The entries of a whole body in memory (see :func:`parse_entries`)."""
    length = header_length(body[:8], len(body))
    entries, data_size = parse_entries(body[8 : 8 + length])
    check_size(8 + length + data_size, len(body))
    return entries
