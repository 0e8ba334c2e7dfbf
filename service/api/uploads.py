"""Images as people send them, beside JSON: ``multipart/form-data`` file uploads
(``curl -F image=@cat.jpg``) and a raw ``image/*`` body (``curl --data-binary @cat.jpg``).

The body's size was already bounded by the request guard; here the number of files is bounded
before a file is read, and every problem is a 4xx naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import HTTPException, Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

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
    """The uploaded image files (in order) and the form's text fields."""
    if content_type.startswith("image/"):
        if content_type not in IMAGE_TYPES:
            raise HTTPException(415, f"{content_type} bodies are not read: send PNG or JPEG")
        body = await request.body()
        if not body:
            raise HTTPException(422, "the image body is empty")
        return Upload([body])
    try:
        form = await request.form(max_files=max_files, max_fields=max_files + 16)
    except (MultiPartException, StarletteHTTPException) as error:  # Starlette wraps it as a 400
        message = getattr(error, "detail", None) or str(error)
        status = 413 if "Too many" in message else 422
        raise HTTPException(status, f"multipart body: {message}") from None
    upload = Upload([])
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name != IMAGE_FIELD:
                    raise HTTPException(
                        422, f"file field {name!r}: send images as '{IMAGE_FIELD}' file fields"
                    )
                upload.images.append(await value.read())
            else:
                upload.fields.setdefault(name, []).append(value)
    finally:
        await form.close()
    if not upload.images:
        raise HTTPException(
            422, f"the multipart body has no '{IMAGE_FIELD}' file (curl -F {IMAGE_FIELD}=@cat.jpg)"
        )
    return upload


def integer_labels(texts: list[str], count: int) -> list[int]:
    """One integer label per image, in order, or a 422 naming the bad one."""
    if len(texts) != count:
        raise HTTPException(
            422, f"{count} images but {len(texts)} labels: send one 'label' per image, in order"
        )
    labels = []
    for position, text in enumerate(texts):
        if not text.strip().lstrip("-").isdigit():
            raise HTTPException(422, f"label[{position}] = {text!r} is not an integer")
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
