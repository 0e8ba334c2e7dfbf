"""Checking that a model definition can work, without the API paying for it.

A small model whose code the API has already loaded is probed in the API process (a few MB of
weights, milliseconds). Anything else would make the API pay: the first ``torchvision:`` model
made an API process hold the GIL for seconds (``/healthz`` waited 5.6 s) and keep 165 MB for the
rest of its life (the import; the built-in ResNets are built from torchvision's blocks too), and
a large model's weights cost hundreds of MB while it is probed. Those are probed in a child
process, which exits with what it used: a registry architecture (``torchvision:``, ``timm:``),
an entry point, a ResNet in an API that has not loaded torchvision yet, or a model over
``IN_PROCESS_PARAMETERS`` (counted on the meta device, which allocates nothing).

    python -m service.operations.model_probe '{"spec": {...}, "max_parameters": N}'

prints ``{"error": null}`` or ``{"error": "<why the model cannot work>"}``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from lure_engine.models import ModelSpec, available_models, parameter_count

_TORCHVISION_BLOCKS = ("resnet", "wide_resnet")  # lure_engine/models/resnet.py
IN_PROCESS_PARAMETERS = 2_000_000  # 8 MB of float32 weights
PROBE_TIMEOUT_SECONDS = 300.0  # a ResNet-50 from timm imports and sizes in well under a minute


def probe(spec: dict, max_parameters: int, later_blocks: bool) -> None:
    """ValueError naming why the model ``spec`` (``ModelSpec``'s fields) describes cannot work;
    ``later_blocks``: LLF's blocks must exist. Only a built-in name is resolved here."""
    if _loads_nothing(spec["architecture"]):
        built_in = _spec(spec)
        if (parameter_count(built_in) or 0) <= IN_PROCESS_PARAMETERS:
            _probe_here(built_in, max_parameters, later_blocks)
            return
    request = {"spec": spec, "max_parameters": max_parameters, "llf": later_blocks}
    # the child imports what this process would: its path (an entry point installed next to
    # the API, a package a test put on the path) comes along
    env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    result = subprocess.run(
        [sys.executable, "-m", "service.operations.model_probe", json.dumps(request)],
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_SECONDS,
        env=env,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"probing {spec['architecture']} failed in a child process: {tail}")
    error = json.loads(lines[-1])["error"]
    if error:
        raise ValueError(error)


def _loads_nothing(architecture: str) -> bool:
    """Can ``architecture`` be built here without importing a library this process lacks?"""
    if architecture not in available_models():
        return False  # a registry or an entry point: whatever it imports
    return not architecture.startswith(_TORCHVISION_BLOCKS) or "torchvision.models" in sys.modules


def _probe_here(spec: ModelSpec, max_parameters: int, later_blocks: bool) -> None:
    from lure_engine.forgetting.llf import later_blocks_for
    from lure_engine.models import probe_model

    model = probe_model(spec, max_parameters)
    if later_blocks:
        later_blocks_for(model, spec)


def _spec(fields: dict) -> ModelSpec:
    """ValueError naming the problem (an unknown architecture lists close matches)."""
    blocks = tuple(fields.get("later_blocks_override") or ())
    return ModelSpec(**{**fields, "later_blocks_override": blocks})


def main() -> None:
    request = json.loads(sys.argv[1])
    try:
        _probe_here(_spec(request["spec"]), request["max_parameters"], request["llf"])
        error = None
    except ValueError as problem:
        error = str(problem)
    print(json.dumps({"error": error}), flush=True)


if __name__ == "__main__":
    main()
