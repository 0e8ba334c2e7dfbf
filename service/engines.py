"""Inference engines for /predict: the eager PyTorch model, or ONNX Runtime on its export.

On the CPU, ONNX Runtime runs small networks several times faster than eager PyTorch at batch 1,
but can be slower at batch 32 (docs/benchmarks/inference_engines.md), and the micro-batcher makes
both sizes common. ``choose_engine`` exports each loaded version to ONNX in memory, checks that
its probabilities match the eager model's on a probe batch, times both at batch 1, 8 and 32, and
serves each batch through the engine that was faster at the nearest measured size; any failure
falls back to eager, logged. On a GPU the eager model
runs on the device (ONNX Runtime here is the CPU build), so the same eager code serves both.
"""

from __future__ import annotations

import io
import logging
import statistics
import time
import warnings
from typing import Protocol

import numpy as np
import torch
from torch import nn

log = logging.getLogger("lure.inference")
ENGINES = ("auto", "eager", "onnxruntime")
MATCH_TOLERANCE = 1e-4  # largest probability difference accepted between engines


class Engine(Protocol):
    name: str

    def probabilities(self, batch: torch.Tensor) -> np.ndarray:
        """Class probabilities for a preprocessed (N, C, H, W) float batch."""


class EagerEngine:
    name = "eager"

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.model, self.device = model.to(device).eval(), device

    @torch.inference_mode()
    def probabilities(self, batch: torch.Tensor) -> np.ndarray:
        return self.model(batch.to(self.device)).float().softmax(1).cpu().numpy()


class OnnxRuntimeEngine:
    name = "onnxruntime"

    def __init__(self, model: nn.Module, example: torch.Tensor) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        # no busy-waiting between runs: spinning threads took ~10 ms of CPU per request from the
        # event loop and the decoders on a 2-core machine
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(
            onnx_bytes(model, example), options, providers=["CPUExecutionProvider"]
        )

    def probabilities(self, batch: torch.Tensor) -> np.ndarray:
        logits = self.session.run(None, {"input": batch.contiguous().numpy()})[0]
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)


def onnx_bytes(model: nn.Module, example: torch.Tensor, input_name: str = "input") -> bytes:
    """``model`` as ONNX (opset 17, dynamic batch), the form the server serves and exports."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
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
    model: nn.Module, probe: torch.Tensor, device: torch.device, wanted: str = "auto"
) -> Engine:
    """The fastest engine whose outputs match the eager model's on ``probe`` (a preprocessed
    batch); eager when asked, on a GPU, or when another engine fails or disagrees."""
    eager = EagerEngine(model, device)
    if wanted == "eager" or device.type != "cpu":
        return eager
    try:
        onnx = OnnxRuntimeEngine(model, probe[:1])
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
    """Each batch through the engine that was fastest at the nearest measured batch size."""

    SIZES = (1, 8, 32)

    def __init__(self, by_size: dict[int, Engine]) -> None:
        self.by_size = by_size
        names = {engine.name for engine in by_size.values()}
        self.name = (
            names.pop()
            if len(names) == 1
            else "+".join(f"{engine.name}@{size}" for size, engine in by_size.items())
        )

    @classmethod
    def measure(cls, engines: tuple[Engine, ...], probe: torch.Tensor) -> Engine:
        batch = torch.cat([probe] * (max(cls.SIZES) // len(probe) + 1))
        by_size = {
            size: min(engines, key=lambda engine: _median_seconds(engine, batch[:size]))
            for size in cls.SIZES
        }
        if len({engine.name for engine in by_size.values()}) == 1:
            return by_size[1]
        return cls(by_size)

    def probabilities(self, batch: torch.Tensor) -> np.ndarray:
        size = next((s for s in self.SIZES if len(batch) <= s), self.SIZES[-1])
        if size > 1 and len(batch) < size:  # between two sizes: the nearer one decides
            smaller = self.SIZES[self.SIZES.index(size) - 1]
            size = smaller if len(batch) - smaller < size - len(batch) else size
        return self.by_size[size].probabilities(batch)


def _median_seconds(engine: Engine, batch: torch.Tensor, repeats: int = 5) -> float:
    engine.probabilities(batch)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        engine.probabilities(batch)
        times.append(time.perf_counter() - started)
    return statistics.median(times)
