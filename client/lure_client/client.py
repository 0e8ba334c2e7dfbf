"""A small Python client for the LURE server over httpx: what the CLI and user scripts call.

Chunk pushes carry an Idempotency-Key derived from each chunk's own data and position, so running
a push again (after an interruption, or after fixing a bad row) re-sends safely: the server answers
chunks it already holds with their first result, stores nothing twice, and stores what is new.
"""

from __future__ import annotations

import base64
import hashlib
import io
import pickle
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


class LureError(RuntimeError):
    """A 4xx/5xx answer; ``detail`` is the server's own explanation."""

    def __init__(self, status: int, detail) -> None:
        super().__init__(f"{status}: {detail}")
        self.status, self.detail = status, detail


def encode_npz(
    x: np.ndarray, y: np.ndarray, *, compressed: bool = True, **extra: np.ndarray
) -> bytes:
    """A chunk body: an ``.npz`` holding uint8 images ``x`` (N, H, W[, C]) and labels ``y``."""
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, x=x, y=y, **extra)
    return buffer.getvalue()


def encode_image(image: np.ndarray | bytes | str | Path) -> str:
    """A path or raw PNG/JPEG bytes as they are, or a uint8 (H, W[, C]) array as PNG; base64."""
    if isinstance(image, (str, Path)):
        return base64.b64encode(Path(image).read_bytes()).decode()
    if isinstance(image, bytes):
        return base64.b64encode(image).decode()
    array = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def load_image_folder(folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``folder/<class>/*.png|jpg``: classes sorted by name (numeric names keep their number)."""
    classes = sorted(
        (d.name for d in folder.iterdir() if d.is_dir()),
        key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n),
    )
    if not classes:
        raise ValueError(f"{folder} has no class subfolders")
    numeric = all(c.isdigit() for c in classes)
    images, labels = [], []
    for position, name in enumerate(classes):
        for path in sorted((folder / name).iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                images.append(np.asarray(Image.open(path).convert("RGB")))
                labels.append(int(name) if numeric else position)
    if not images:
        raise ValueError(f"{folder} holds no .png or .jpg images")
    sizes = {i.shape for i in images}
    if len(sizes) > 1:
        raise ValueError(
            f"{folder}: images differ in size {sorted(sizes)[:3]}; resize them or push as JSON"
        )
    return np.stack(images), np.asarray(labels, np.int64), classes


def load_npz_arrays(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``x``/``y``, or ``x_train``/``y_train`` / ``x_test``/``y_test`` for the requested split."""
    with np.load(path, allow_pickle=False) as archive:
        for xk, yk in (("x", "y"), (f"x_{split}", f"y_{split}")):
            if xk in archive and yk in archive:
                return archive[xk], archive[yk]
    raise ValueError(f"{path} has neither x/y nor x_{split}/y_{split}")


def chunk_key(x: np.ndarray, y: np.ndarray, split: str, start: int) -> str:
    """The Idempotency-Key of one chunk: its own data and where it starts, so a push re-run
    after a fix elsewhere in the file replays the unchanged chunks and sends the changed ones."""
    digest = hashlib.sha256(x.tobytes() + np.asarray(y, np.int64).tobytes() + split.encode())
    return f"{digest.hexdigest()[:40]}-{start}-{start + len(x)}"


_CHUNK_INDEX = re.compile(r"\b(labels|images)\[(\d+)\]")


class PushRefused(LureError):
    """A chunk of a push was refused; ``detail`` names the row of the pushed arrays at fault."""

    def __init__(self, error: LureError, start: int, stop: int) -> None:
        detail = str(error.detail)

        def as_row(found: re.Match) -> str:
            field, index = found.group(1), int(found.group(2))
            return f"row {start + index} ({field}[{index}] of that chunk)"

        stored = (
            f"rows 0-{start - 1} ({start} samples) are stored; fix the data and push again: "
            "only what is missing is sent"
            if start
            else "nothing of this push is stored"
        )
        super().__init__(
            error.status,
            f"rows {start}-{stop - 1} were refused: {_CHUNK_INDEX.sub(as_row, detail)}. {stored}",
        )
        self.start, self.stop = start, stop


class LureClient:
    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        timeout: float = 120,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(
            base_url=url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> LureClient:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs):
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            if response.status_code == 401 and "authorization" not in self.http.headers:
                detail = (
                    f"{detail} (no key was sent: export LURE_API_KEY=<key> or pass --api-key; "
                    "`lure up` prints a key at its first start, `lure keys create` makes one)"
                )
            raise LureError(response.status_code, detail)
        return response

    def wait_until_healthy(self, timeout: float = 60.0) -> None:
        """Poll ``/healthz`` until the server answers (it may still be starting)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.http.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"the server did not answer /healthz within {timeout} s")

    # models
    def create_model(self, name: str, **config) -> dict:
        return self._call("POST", "/v1/models", json={"name": name, **config}).json()

    def model(self, name: str) -> dict:
        return self._call("GET", f"/v1/models/{name}").json()

    def models(self) -> list[dict]:
        return self._call("GET", "/v1/models").json()

    # data
    def push_arrays(
        self,
        model: str,
        x: np.ndarray,
        y: np.ndarray,
        split: str = "train",
        chunk_size: int = 500,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[dict]:
        """Send (x, y) in chunks; re-running the same push stores only what is missing.

        A refused chunk raises :class:`PushRefused`, naming the array's row at fault and how many
        rows before it are stored."""
        if len(x) != len(y):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
        answers = []
        for start in range(0, len(x), chunk_size):
            stop = min(start + chunk_size, len(x))
            chunk_x, chunk_y = np.ascontiguousarray(x[start:stop]), np.asarray(y[start:stop])
            key = chunk_key(chunk_x, chunk_y, split, start)
            try:
                answers.append(
                    self._call(
                        "POST",
                        f"/v1/models/{model}/chunks",
                        params={"split": split},
                        content=encode_npz(chunk_x, chunk_y),
                        headers={
                            "content-type": "application/octet-stream",
                            "Idempotency-Key": key,
                        },
                    ).json()
                )
            except LureError as error:
                raise PushRefused(error, start, stop) from None
            if progress:
                progress(stop, len(x))
        return answers

    def push_images(
        self, model: str, images: Sequence, labels: Sequence[int], split: str = "train"
    ) -> dict:
        return self._call(
            "POST",
            f"/v1/models/{model}/chunks",
            json={
                "split": split,
                "images": [encode_image(i) for i in images],
                "labels": [int(v) for v in labels],
            },
        ).json()

    def seal(self, model: str) -> dict:
        return self._call("POST", f"/v1/models/{model}/megabatches/seal").json()

    def megabatches(self, model: str) -> list[dict]:
        return self._call("GET", f"/v1/models/{model}/megabatches").json()

    def decide_quarantined(self, model: str, index: int, action: str) -> dict:
        """``release`` (train it) or ``discard`` a mega-batch the data gate quarantined."""
        return self._call("POST", f"/v1/models/{model}/megabatches/{index}/{action}").json()

    # versions and jobs
    def versions(self, model: str) -> list[dict]:
        return self._call("GET", f"/v1/models/{model}/versions").json()

    def shadow(self, model: str) -> dict:
        """The shadow versions' record: agreement with live, accuracy on feedback."""
        return self._call("GET", f"/v1/models/{model}/shadow").json()

    def version(self, model: str, number: int) -> dict:
        return self._call("GET", f"/v1/models/{model}/versions/{number}").json()

    # the loop from /predict back into the stream
    def feedback(self, model: str, items: list[dict]) -> dict:
        """Labels by prediction id: ``[{"prediction_id": ..., "label": ...}]``."""
        return self._call("POST", f"/v1/models/{model}/feedback", json=items).json()

    def label_queue(
        self, model: str, by: str = "margin", limit: int = 50, version: int | None = None
    ) -> list[dict]:
        params = {"by": by, "limit": limit} | ({} if version is None else {"version": version})
        return self._call("GET", f"/v1/models/{model}/label-queue", params=params).json()

    def prediction_image(self, url_path: str) -> bytes:
        return self._call("GET", url_path).content

    def promote(self, model: str, number: int) -> dict:
        return self._call("POST", f"/v1/models/{model}/versions/{number}/promote").json()

    def audit(self, model: str, number: int, timeout: float = 3600) -> dict:
        """Rebuild a version from its records; ``result`` is match, mismatch or not_auditable."""
        return self._call(
            "POST", f"/v1/models/{model}/versions/{number}/audit", timeout=timeout
        ).json()

    def change_model(self, model: str, **changes) -> dict:
        """PATCH the fields that may change: strategy, challengers, retire_after, promotion,
        class_names."""
        return self._call("PATCH", f"/v1/models/{model}", json=changes).json()

    def jobs(self, model: str, limit: int = 20) -> list[dict]:
        return self._call("GET", f"/v1/models/{model}/jobs", params={"limit": limit}).json()

    def job(self, job_id: int) -> dict:
        return self._call("GET", f"/v1/jobs/{job_id}").json()

    def retry_job(self, job_id: int) -> dict:
        return self._call("POST", f"/v1/jobs/{job_id}/retry").json()

    # bring your own model, take any version out
    def import_weights(self, model: str, safetensors: bytes) -> dict:
        """Upload a safetensors state dict as version 0 of ``model`` (see ``state_dict_file``)."""
        return self._call(
            "POST",
            f"/v1/models/{model}/versions/import",
            content=safetensors,
            headers={"content-type": "application/octet-stream"},
        ).json()

    def export(self, model: str, version: int, fmt: str = "onnx") -> tuple[bytes, dict]:
        """The version's artefact in ``fmt`` (safetensors, torchscript, onnx) and its model card."""
        data = self._call(
            "GET", f"/v1/models/{model}/versions/{version}/export", params={"format": fmt}
        ).content
        card = self._call(
            "GET", f"/v1/models/{model}/versions/{version}/export/card", params={"format": fmt}
        ).json()
        return data, card

    def workers(self) -> list[dict]:
        return self._call("GET", "/v1/workers").json()

    def readiness(self) -> dict:
        return self._call("GET", "/readyz").json()

    def metrics(self, model: str) -> dict:
        return self._call("GET", f"/v1/models/{model}/metrics").json()

    def wait_for_version(
        self, model: str, at_least: int, timeout: float = 600, poll: float = 1.0
    ) -> dict:
        """Block until version ``at_least`` (or a later one) is published; returns the newest."""
        deadline = time.monotonic() + timeout
        while True:
            versions = self.versions(model)
            if versions and versions[-1]["number"] >= at_least:
                return versions[-1]
            failed = [j for j in self.jobs(model) if j["state"] == "failed"]
            if failed:
                raise LureError(500, f"update job {failed[-1]['id']} failed: {failed[-1]['error']}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"version {at_least} of {model} not published after {timeout}s")
            time.sleep(poll)

    # inference
    def predict(self, model: str, images: Iterable, version: int | None = None) -> dict:
        params = {"version": version} if version is not None else {}
        return self._call(
            "POST",
            f"/v1/models/{model}/predict",
            params=params,
            json={"images": [encode_image(i) for i in images]},
        ).json()


def _refused_global(message: str) -> str:
    """The object torch's safe loader refused, from its (long) message: '' when not found."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", message)
    return f" (it refers to {found.group(1)})" if found else ""


def state_dict_file(path: Path) -> bytes:
    """A weights file as safetensors bytes, converted on this machine so the server never
    unpickles: ``.safetensors`` as it is; ``.pt``/``.pth`` through ``torch.load(weights_only=True)``
    (a state dict, or a checkpoint holding one under ``state_dict`` or ``model``)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return path.read_bytes()
    if path.suffix not in (".pt", ".pth"):
        raise ValueError(f"{path}: expected a .safetensors, .pt or .pth file")
    try:  # a pickle-based file needs torch to read; the light client does not bring it
        import torch
        from safetensors.torch import save
    except ImportError:
        raise ValueError(
            f"{path}: reading a .pt/.pth file needs torch and safetensors on this machine; "
            "install them, or convert the weights to .safetensors where the model was trained"
        ) from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} holds Python objects besides tensors, which could run code when loaded, so "
            "it is refused (do not load it with weights_only=False unless you trust its "
            "author). Save the state dict alone where the model was trained: "
            "torch.save(model.state_dict(), 'weights.pth'), or safetensors' save_file"
            + _refused_global(str(error))
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise ValueError(f"{path} holds no state dict (a dict of tensor names to tensors)")
    return save({name: tensor.contiguous() for name, tensor in loaded.items()})
