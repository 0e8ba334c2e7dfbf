"""A chunk's body, parsed and checked: JSON (base64 images), a bulk ``.npz``, multipart file
uploads or one raw image, each decoded into the model's uint8 (N, H, W, C) layout with its labels
and split, or a 4xx naming the problem. CPU work: the route runs it off the event loop.
"""

from __future__ import annotations

import numpy as np
from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from lure_core.recipe import Recipe
from service.api.schemas import ChunkCreate
from service.api.uploads import Upload, integer_labels
from service.ingest.images import ImageError, decode_base64_images, decode_images, fit_array_images
from service.ingest.npz import ChunkLimits, NpzError, read_npz_chunk

NPZ_TYPES = ("application/octet-stream", "application/x-npz", "application/npz")
Parsed = tuple[str, np.ndarray, np.ndarray]  # split, images, labels


def _parse_json(body: bytes, recipe: Recipe, limits: ChunkLimits) -> Parsed:
    try:
        chunk = ChunkCreate.model_validate_json(body)
    except ValidationError as error:
        raise RequestValidationError(
            error.errors(include_url=False, include_context=False, include_input=False)
        ) from None
    _check_count(len(chunk.images), limits)
    _check_labels(np.asarray(chunk.labels), recipe.num_classes)
    x = decode_base64_images(
        chunk.images,
        recipe.preprocessing,
        limits.max_side,
        limits.max_decoded_bytes,
    )
    return chunk.split, x, np.asarray(chunk.labels, dtype=np.int64)


def _parse_npz(body: bytes, split: str | None, recipe: Recipe, limits: ChunkLimits) -> Parsed:
    if split is None:
        raise HTTPException(422, "an .npz body needs the query parameter split=train or split=test")
    try:
        x, y = read_npz_chunk(body, limits)
    except NpzError as error:
        raise HTTPException(error.status, str(error)) from None
    _check_labels(y, recipe.num_classes)
    return split, fit_array_images(x, recipe.preprocessing, limits.max_side), y


def parse_upload(
    upload: Upload, split: str | None, label: int | None, recipe: Recipe, limits: ChunkLimits
) -> Parsed:
    """Multipart files with a ``label`` field each, or one raw image with ``?label=``."""
    _check_count(len(upload.images), limits)
    texts = upload.values("label") or ([] if label is None else [str(label)])
    labels = np.asarray(integer_labels(texts, len(upload.images)), dtype=np.int64)
    _check_labels(labels, recipe.num_classes)
    chosen = split or (upload.values("split") or ["train"])[0]
    if chosen not in ("train", "test"):
        raise HTTPException(422, f"split {chosen!r}: use train or test")
    try:
        x = decode_images(
            upload.images, recipe.preprocessing, limits.max_side, limits.max_decoded_bytes
        )
    except ImageError as error:
        raise HTTPException(422, str(error)) from None
    return chosen, x, labels


def sniff_content_type(body: bytes) -> str:
    """What a body without a content type is: an .npz (a zip archive) or JSON, by its first
    bytes; '' when neither."""
    if body.startswith(b"PK\x03\x04"):
        return "application/octet-stream"
    if body.lstrip()[:1] == b"{":
        return "application/json"
    return ""


def parse_body(
    body: bytes, content_type: str, split: str | None, recipe: Recipe, limits: ChunkLimits
) -> Parsed:
    """Validate and decode a body (CPU work: runs off the event loop)."""
    content_type = content_type or sniff_content_type(body)
    try:
        if content_type == "application/json":
            return _parse_json(body, recipe, limits)
        if content_type in NPZ_TYPES:
            return _parse_npz(body, split, recipe, limits)
    except ImageError as error:
        raise HTTPException(422, str(error)) from None
    raise HTTPException(
        415,
        f"content type {content_type or 'missing'!r}: send application/json, "
        "application/octet-stream (.npz), multipart/form-data or image/png|jpeg",
    )


def _check_count(n: int, limits: ChunkLimits) -> None:
    if n == 0:
        raise HTTPException(422, "chunk is empty: send at least one image")
    if n > limits.max_samples:
        raise HTTPException(413, f"chunk has {n} samples; the limit is {limits.max_samples}")


def _check_labels(labels: np.ndarray, num_classes: int) -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        i = int(bad[0])
        raise HTTPException(422, f"labels[{i}] = {int(labels[i])} is outside 0..{num_classes - 1}")
