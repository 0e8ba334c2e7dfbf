"""docs/ARCHITECTURE.md cannot go stale (issue 24): every ``path:function`` it names exists, and
every module of the five packages is named there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
PACKAGES = ("lure_engine", "lure_core", "lure_update", "service", "worker", "client/lure_client")
REFERENCE = re.compile(
    r"`((?:lure_engine|lure_core|lure_update|service|worker|client/lure_client)/[\w/]+\.py):([\w.]+)`"
)


def _defined(path: Path) -> set[str]:
    """Top-level functions and classes, and Class.method for every method."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names |= {
                f"{node.name}.{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            }
        if isinstance(node, ast.Assign | ast.AnnAssign):  # e.g. MetricsRow = type(...)
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def test_every_path_and_function_the_document_names_exists():
    references = REFERENCE.findall(DOC)
    assert len(references) > 20
    missing = []
    for path, name in references:
        file = ROOT / path
        if not file.is_file():
            missing.append(f"{path} (no such file)")
        elif name not in _defined(file):
            missing.append(f"{path}:{name}")
    assert missing == [], "docs/ARCHITECTURE.md names what does not exist: " + ", ".join(missing)


def test_every_module_of_the_four_packages_is_named():
    unnamed = []
    for package in PACKAGES:
        for file in sorted((ROOT / package).rglob("*.py")):
            relative = file.relative_to(ROOT).as_posix()
            inside = file.relative_to(ROOT / package).as_posix()
            if file.name == "__init__.py" and file.stat().st_size < 400:
                continue  # a package marker with nothing of its own to describe
            if f"`{relative}" not in DOC and f"`{inside}`" not in DOC and f"`{inside}:" not in DOC:
                unnamed.append(relative)
    assert unnamed == [], "modules docs/ARCHITECTURE.md does not name: " + ", ".join(unnamed)
