"""Images as people send them, beside JSON: ``multipart/form-data`` file uploads
(``curl -F image=@cat.jpg``) and a raw ``image/*`` body (``curl --data-binary @cat.jpg``).

The body's size was already bounded by the request guard; here the number of files is bounded
before a file is read, and every problem is a 4xx naming it.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from fastapi import HTTPException, Request
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

IMAGE_FIELD = "image"
IMAGE_TYPES = ("image/png", "image/jpeg")


@dataclass
class Upload:
    images: list[bytes]
    fields: dict[str, list[str]] = field(default_factory=dict)  # the form's other fields

    def values(self, name: str) -> list[str]:
        return self.fields.get(name, [])


def content_type_of(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_upload(content_type: str) -> bool:
    return content_type == "multipart/form-data" or content_type.startswith("image/")


async def read_upload(request: Request, content_type: str, max_files: int) -> Upload:
    """The uploaded image files (in order) and the form's text fields.

    The multipart body (its size already bounded) has its parts counted before any is parsed,
    and is parsed in a worker thread: 50,001 empty parts parsed on the event loop stalled every
    other request, ``/healthz`` included, for four seconds.
    """
    if content_type.startswith("image/"):
        if content_type not in IMAGE_TYPES:
            raise HTTPException(415, f"{content_type} bodies are not read: send PNG or JPEG")
        body = await request.body()
        if not body:
            raise HTTPException(422, "the image body is empty")
        return Upload([body])
    body = await request.body()
    max_fields = max_files + 16
    _check_part_count(request.headers.get("content-type", ""), body, max_files + max_fields)
    return await run_in_threadpool(_parse_form, request.headers, body, max_files, max_fields)


def _check_part_count(header: str, body: bytes, limit: int) -> None:
    _, options = parse_options_header(header)
    boundary = options.get(b"boundary", b"")
    if not boundary:
        raise HTTPException(422, "multipart body: its content type names no boundary")
    parts = body.count(b"--" + boundary) - 1  # the last one closes the body
    if parts > limit:
        raise HTTPException(
            413, f"multipart body: {parts} parts, more than the limit of {limit}; send fewer"
        )


def _parse_form(headers: Headers, body: bytes, max_files: int, max_fields: int) -> Upload:
    """Parse in this (worker) thread, on an event loop of its own."""

    async def chunks():
        yield body

    async def parse() -> Upload:
        parser = MultiPartParser(headers, chunks(), max_files=max_files, max_fields=max_fields)
        try:
            form = await parser.parse()
        except (MultiPartException, StarletteHTTPException) as error:
            message = getattr(error, "detail", None) or str(error)
            status = 413 if "Too many" in message else 422
            raise HTTPException(status, f"multipart body: {message}") from None
        try:
            return _upload_of(form)
        finally:
            await form.close()

    return asyncio.run(parse())


def _upload_of(form) -> Upload:
    upload = Upload([])
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name != IMAGE_FIELD:
                raise HTTPException(
                    422, f"file field {name!r}: send images as '{IMAGE_FIELD}' file fields"
                )
            value.file.seek(0)
            upload.images.append(value.file.read())
        else:
            upload.fields.setdefault(name, []).append(value)
    if not upload.images:
        raise HTTPException(
            422, f"the multipart body has no '{IMAGE_FIELD}' file (curl -F {IMAGE_FIELD}=@cat.jpg)"
        )
    return upload


# ASCII digits only: str.isdigit() also accepts '²' (int() then fails: a 500) and '٣' (read as 3)
_LABEL = re.compile(r"[+-]?[0-9]{1,10}", re.ASCII)


def integer_labels(texts: list[str], count: int) -> list[int]:
    """One integer label per image, in order, or a 422 naming the bad one."""
    if len(texts) != count:
        raise HTTPException(
            422, f"{count} images but {len(texts)} labels: send one 'label' per image, in order"
        )
    labels = []
    for position, text in enumerate(texts):
        if not _LABEL.fullmatch(text.strip()):
            shown = text if len(text) <= 40 else text[:40] + "…"
            raise HTTPException(
                422, f"label[{position}] = {shown!r} is not an integer label (ASCII digits)"
            )
        labels.append(int(text))
    return labels


UPLOAD_DOC = {
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {
                IMAGE_FIELD: {
                    "type": "array",
                    "items": {"type": "string", "format": "binary"},
                    "description": "PNG or JPEG files, one field each",
                },
            },
        }
    },
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
}
