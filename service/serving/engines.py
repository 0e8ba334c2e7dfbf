"""Inference engines for /predict: the eager PyTorch model, or ONNX Runtime on its export.

An engine takes the decoded images as they are (uint8 NHWC at the model's size) and owns their
preprocessing: the ONNX engine runs the very graph ``lure export --format onnx`` ships, the
normalisation inside it, so no PyTorch code runs per request on that path.

On the CPU, ONNX Runtime runs small networks several times faster than eager PyTorch at batch 1,
but can be slower at batch 32 (docs/benchmarks/inference_engines.md), and the micro-batcher makes
both sizes common. ``choose_engine`` exports each loaded version to ONNX in memory, checks that
its probabilities match the eager model's on a probe batch, times both at batch 1, 8 and 32, and
serves each batch through the engine that was faster at the nearest measured size; any failure
falls back to eager, logged. On a GPU the eager model runs on the device (ONNX Runtime here is the
CPU build), so the same eager code serves both.
"""

from __future__ import annotations

import io
import logging
import statistics
import threading
import time
import warnings
from typing import Protocol

import numpy as np
import torch
from torch import nn

from lure_engine.preprocess import Preprocessing

log = logging.getLogger("lure.inference")
ENGINES = ("auto", "eager", "onnxruntime")
MATCH_TOLERANCE = 1e-4  # largest probability difference accepted between engines


class Engine(Protocol):
    name: str
    # how many forward passes may run at once (the micro-batcher runs up to this many batches
    # side by side); 1 for an engine whose one pass already uses every thread it has
    parallel: int

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities for uint8 (N, size, size, channels) images."""


def packaged(model: nn.Module, pre: Preprocessing) -> nn.Module:
    """uint8 NHWC images in, logits out: the model with its preprocessing in front."""
    return nn.Sequential(pre.module(), model).eval()


class EagerEngine:
    name = "eager"
    parallel = 1  # PyTorch's intra-op pool is the process's: two passes would oversubscribe it

    def __init__(self, model: nn.Module, pre: Preprocessing, device: torch.device) -> None:
        self.model, self.pre, self.device = model.to(device).eval(), pre, device

    @torch.inference_mode()
    def probabilities(self, images: np.ndarray) -> np.ndarray:
        logits = self.model(self.pre.to_tensor(images, self.device))
        return logits.float().softmax(1).cpu().numpy()


class OnnxRuntimeEngine:
    """ONNX Runtime on the served graph, in two sessions: a forward pass that runs alone uses
    every thread (the lowest latency at one client), and passes that run side by side use one
    thread each. On two cores two one-thread passes did 1.1-2x the images/s of one two-thread
    pass, whose threads wait on each other in every layer of a small network."""

    name = "onnxruntime"

    def __init__(self, model: nn.Module, pre: Preprocessing, threads: int | None = None) -> None:
        self.parallel = threads or torch.get_num_threads()
        example = torch.zeros(1, pre.size, pre.size, pre.channels, dtype=torch.uint8)
        graph = onnx_bytes(packaged(model, pre), example, input_name="images")
        self.session = _session(graph, self.parallel)
        self._narrow = _session(graph, 1) if self.parallel > 1 else self.session
        self._running, self._lock = 0, threading.Lock()

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        with self._lock:
            session = self.session if self._running == 0 else self._narrow
            self._running += 1
        try:
            logits = session.run(None, {"images": np.ascontiguousarray(images)})[0]
        finally:
            with self._lock:
                self._running -= 1
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)


def _session(graph: bytes, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # no busy-waiting between runs: spinning threads took ~10 ms of CPU per request from the
    # event loop and the decoders on a 2-core machine
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


_exporter_warm = threading.Event()


def warm_up_onnx_export() -> None:
    """Export a one-layer network once, at start-up: the first ONNX export in a process spends
    about 1.4 s initialising the exporter while holding the GIL, which froze the event loop
    (``/healthz`` included) during the first ``/predict`` after a start."""
    if _exporter_warm.is_set():
        return
    onnx_bytes(nn.Sequential(nn.Conv2d(1, 1, 1)), torch.zeros(1, 1, 2, 2))
    _exporter_warm.set()


def exporter_is_warm() -> bool:
    return _exporter_warm.is_set()


# torch's exporter keeps process-wide state (GLOBALS.in_onnx_export): a second export started
# while one runs fails, and the version it was for fell back to eager PyTorch (two versions loaded
# at once: /predict and a shadow version, or two models)
_EXPORTING = threading.Lock()


def onnx_bytes(model: nn.Module, example: torch.Tensor, input_name: str = "input") -> bytes:
    """``model`` as ONNX (opset 17, dynamic batch), the form the server serves and exports."""
    buffer = io.BytesIO()
    with _EXPORTING, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and legacy-exporter notices, not faults
        torch.onnx.export(
            model.eval(),
            (example,),
            buffer,
            input_names=[input_name],
            output_names=["logits"],
            dynamic_axes={input_name: {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return buffer.getvalue()


def choose_engine(
    model: nn.Module,
    pre: Preprocessing,
    probe: np.ndarray,
    device: torch.device,
    wanted: str = "auto",
) -> Engine:
    """The fastest engine whose outputs match the eager model's on ``probe`` (uint8 images in
    the model's layout); eager when asked, on a GPU, or when another engine fails or
    disagrees."""
    eager = EagerEngine(model, pre, device)
    if wanted == "eager" or device.type != "cpu":
        return eager
    try:
        onnx = OnnxRuntimeEngine(model, pre)
        difference = float(np.abs(onnx.probabilities(probe) - eager.probabilities(probe)).max())
    except Exception as error:  # noqa: BLE001 - an export failure means eager, not a 500
        log.warning("ONNX Runtime cannot serve this model (%s); serving eager PyTorch", error)
        return eager
    if difference > MATCH_TOLERANCE:
        log.warning(
            "ONNX Runtime's probabilities differ from PyTorch's by %.2g; serving eager PyTorch",
            difference,
        )
        return eager
    if wanted == "onnxruntime":
        return onnx
    return FastestBySize.measure((onnx, eager), probe)


class FastestBySize:
    """Each batch through the engine that was fastest at the nearest measured batch size.

    Batch 1 is timed alone (it is the one-client case, where latency counts); larger batches
    form under load, so they are timed as each engine will run them then, ``parallel`` passes
    side by side."""

    SIZES = (1, 8, 32)

    def __init__(self, by_size: dict[int, Engine]) -> None:
        self.by_size = by_size
        self.parallel = min(engine.parallel for engine in by_size.values())
        names = {engine.name for engine in by_size.values()}
        self.name = (
            names.pop()
            if len(names) == 1
            else "+".join(f"{engine.name}@{size}" for size, engine in by_size.items())
        )

    @classmethod
    def measure(cls, engines: tuple[Engine, ...], probe: np.ndarray) -> Engine:
        batch = np.concatenate([probe] * (max(cls.SIZES) // len(probe) + 1))
        by_size = {
            size: min(
                engines,
                key=lambda engine: _seconds_per_batch(
                    engine, batch[:size], side_by_side=1 if size == 1 else engine.parallel
                ),
            )
            for size in cls.SIZES
        }
        if len({engine.name for engine in by_size.values()}) == 1:
            return by_size[1]
        return cls(by_size)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        size = next((s for s in self.SIZES if len(batch) <= s), self.SIZES[-1])
        if size > 1 and len(batch) < size:  # between two sizes: the nearer one decides
            smaller = self.SIZES[self.SIZES.index(size) - 1]
            size = smaller if len(batch) - smaller < size - len(batch) else size
        return self.by_size[size].probabilities(batch)


def _seconds_per_batch(
    engine: Engine, batch: np.ndarray, side_by_side: int = 1, repeats: int = 5
) -> float:
    """The median time of one pass, or with ``side_by_side`` passes running together the wall
    time per batch they sustain."""
    engine.probabilities(batch)  # warm-up
    if side_by_side == 1:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            engine.probabilities(batch)
            times.append(time.perf_counter() - started)
        return statistics.median(times)
    threads = [
        threading.Thread(target=lambda: [engine.probabilities(batch) for _ in range(repeats)])
        for _ in range(side_by_side)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return (time.perf_counter() - started) / (side_by_side * repeats)
