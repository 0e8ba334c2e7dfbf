"""No production function over 60 lines (migrations aside): a function that long does more than
one thing, and its steps deserve names."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lure_engine", "lure_core", "service", "worker")
LIMIT = 60


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > LIMIT
    ]


def test_no_production_function_is_over_sixty_lines():
    found = [
        entry
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for entry in _long_functions(path)
    ]
    assert not found, "functions over 60 lines: " + ", ".join(found)


def test_the_check_sees_a_long_function_and_passes_a_short_one(tmp_path):
    source = tmp_path / "long.py"
    source.write_text("def short():\n    return 1\n\n\nasync def f():\n" + "    x = 1\n" * LIMIT)
    assert _long_functions(source) == [f"long.py:f ({LIMIT + 1} lines)"]
