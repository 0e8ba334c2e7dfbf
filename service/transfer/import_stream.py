"""An imported weights file received as a stream: its header judged before its tensors arrive.

Why: the body used to be read whole before anything was checked, and reading it (a list of
chunks joined into one bytes object) cost twice its size: a refused 300 MB import raised the
API's resident memory by ~570 MB. Here the 8-byte length and the JSON header are read first and
matched against the model (names, shapes, dtypes: every mismatch named in one 422, the rest of the
body never read); only a body that fits is received, straight into a file in the data folder, so
the API holds a few chunks of it at a time.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from service.transfer.safetensors_header import (
    HeaderRefused,
    TensorEntry,
    check_size,
    header_length,
    parse_entries,
)


class _Prefix:
    """The first bytes of a stream, gathered until a given size; the rest stays in the stream."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self.chunks, self.buffer = chunks, bytearray()

    async def gather(self, size: int) -> bytes:
        async for chunk in self.chunks:
            self.buffer += chunk
            if len(self.buffer) >= size:
                break
        return bytes(self.buffer[:size])


async def receive_weights(
    chunks: AsyncIterator[bytes],
    problems_of: Callable[[dict[str, TensorEntry]], list[str]],
    folder: Path,
    declared_size: int | None,
) -> Path:
    """The body, checked, in a new file under ``folder`` (the caller removes it).

    ``problems_of(entries)`` lists how the header's tensors differ from the model's; any is a
    :class:`WeightsDoNotFit` raised before the tensors are read. A malformed header, or a body
    shorter or longer than its header promises, is a ``HeaderRefused``.
    """
    prefix = _Prefix(chunks)
    length = header_length(await prefix.gather(8), declared_size)
    header = await prefix.gather(8 + length)
    if len(header) < 8 + length:
        check_size(8 + length, len(header))
    entries, data_size = parse_entries(header[8:])
    total = 8 + length + data_size
    if declared_size is not None:
        check_size(total, declared_size)
    problems = problems_of(entries)
    if problems:
        raise WeightsDoNotFit(problems)
    return await _into_file(prefix, total, folder)


async def _into_file(prefix: _Prefix, total: int, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=folder, prefix="import-", suffix=".safetensors")
    received = 0
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(prefix.buffer)
            received = len(prefix.buffer)
            prefix.buffer.clear()
            async for chunk in prefix.chunks:
                received += len(chunk)
                if received > total:
                    break  # more than the header promises: refused below, not read on
                file.write(chunk)
        check_size(total, received)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


class WeightsDoNotFit(ValueError):
    """The header's tensors are not the model's; ``problems`` names each difference."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


__all__ = ["HeaderRefused", "WeightsDoNotFit", "receive_weights"]
