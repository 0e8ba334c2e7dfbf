"""The API's settings: the shared storage settings plus HTTP and input limits (``LURE_*``
env vars).
"""

from __future__ import annotations

from typing import Literal

from lure_core.settings import SharedSettings


class ServerSettings(SharedSettings):
    auth: bool = True  # False lets every request through; the server warns at start
    host: str = "127.0.0.1"
    port: int = 8000
    # idle keep-alive connections are kept longer than clients keep them (httpx: 5 s), so the
    # server never closes one just as a client reuses it (a ReadError on the client's side)
    keep_alive_seconds: int = 75
    # a verified API key is trusted this long without a database lookup (0: check every request);
    # a revoked key is refused by every API process within this time
    key_cache_seconds: float = 2.0
    # /predict trusts a model's live version this long without a database lookup (0: look it up
    # every request); a version published or promoted by another process (a worker, another API
    # replica) is served within this time, one promoted through this process at once
    live_cache_seconds: float = 1.0
    dispatch_interval_seconds: float = 0.5  # how often the outbox is drained to the queue
    resend_queued_after_seconds: float = (
        600.0  # a queued job sent this long ago and never started is re-sent
    )
    max_body_bytes: int = 64 * 1024 * 1024
    # a model is sized on the meta device before it is built: larger ones are refused (422)
    max_model_parameters: int = 250_000_000
    max_import_bytes: int = 1024 * 1024 * 1024  # a version's weights imported as safetensors
    max_samples_per_chunk: int = 50_000
    max_image_side: int = 1024
    max_decoded_chunk_bytes: int = (
        512 * 1024 * 1024
    )  # pixels one chunk may decode to (zip and PNG bombs)
    max_predict_batch: int = 256
    model_cache_size: int = 4  # loaded versions kept in memory for /predict
    # how often the API looks for newly live versions to load before a request needs them
    # (service/serving/live_warmer.py); 0: load on a request's first use only
    warm_live_seconds: float = 1.0
    serve_device: str = "auto"  # /predict runs on: auto (CUDA when present) | cpu | cuda
    # auto: on the CPU, ONNX Runtime when its outputs match eager PyTorch's and it is faster
    serve_engine: Literal["auto", "eager", "onnxruntime"] = "auto"
    predict_batching: bool = True  # run concurrent predict requests of one version as one batch
    predict_max_batch_images: int = 64  # images in one batched forward pass
    predict_max_wait_ms: float = (
        0.0  # extra wait to gather a batch; 0: batch only what queued meanwhile
    )
    # /readyz answers within this: a check still running then (a store that hangs) is reported as
    # unanswered while the others report what they found
    readiness_timeout_seconds: float = 2.0
    worker_timeout_seconds: float = (
        30.0  # readiness reports a problem when no worker reported for this long
    )
