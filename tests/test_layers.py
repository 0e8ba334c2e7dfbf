"""The import rules of docs/ARCHITECTURE.md, checked on every module: engine ← core ← update ←
worker and engine ← core ← update ← service, and worker and service never import each other."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "lure_engine": {"lure_engine"},
    "lure_core": {"lure_engine", "lure_core"},
    "lure_update": {"lure_engine", "lure_core", "lure_update"},
    "worker": {"lure_engine", "lure_core", "lure_update", "worker"},
    "service": {"lure_engine", "lure_core", "lure_update", "service", "lure_client"},
    # the light client (pip install ./client) imports nothing of the server; the one exception is
    # the bundled digits demo data, read lazily and refused clearly when the server is absent
    "lure_client": {"lure_client", "lure_engine"},
}
PACKAGE_ROOTS = {"lure_client": ROOT / "client" / "lure_client"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(package):
    wrong = {
        str(path.relative_to(ROOT)): sorted(_imports(path) - ALLOWED[package])
        for path in PACKAGE_ROOTS.get(package, ROOT / package).rglob("*.py")
    }
    assert {path: names for path, names in wrong.items() if names} == {}


def test_the_check_sees_a_forbidden_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from worker.celery_app import app\nimport service.app\n")
    assert _imports(bad) - ALLOWED["service"] == {"worker"}


def test_the_cli_and_the_worker_supervisor_start_without_loading_torch():
    """Every `lure` command and every Celery supervisor start in a second, not the five that torch
    and the engine take; update processes load torch in their fork server."""
    code = (
        "import sys, service.cli.main, worker.celery_app, worker.isolation\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'torchmetrics') if m in sys.modules)\n"
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_api_imports_no_training_only_library():
    """torchvision (with torch._dynamo), scipy.stats and torchmetrics load where they are used;
    imported at the top again they would double every API process's start (10.7 s against 5.1)."""
    check = (
        "import sys, service.app; "
        "print([m for m in ('torchvision', 'scipy.stats', 'torchmetrics') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
