"""Issue 15's limits on the shape of the code, held by a test so that they stay held: no function in
``segflow/`` over 80 lines (its ``def`` line to its last line) and no module over 450 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "segflow"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 450


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """(name, lines) of every function or method in ``source`` longer than ``limit`` lines."""
    nodes = ast.walk(ast.parse(source))
    functions = (n for n in nodes if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))
    return [(f.name, f.end_lineno - f.lineno + 1) for f in functions if f.end_lineno - f.lineno + 1 > limit]


def _modules() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_checker_finds_a_long_function_and_passes_a_short_one() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(f"def long():\n{body}\n") == [("long", MAX_FUNCTION_LINES + 1)]
    nested = f"class A:\n    def method(self):\n{body.replace('    ', '        ')}\n"
    assert long_functions(nested) == [("method", MAX_FUNCTION_LINES + 1)]
    assert long_functions("def short():\n    return 1\n") == []


def test_no_function_in_segflow_is_over_80_lines() -> None:
    modules = _modules()
    assert len(modules) > 50  # the package was found
    found = {str(p.relative_to(ROOT)): long_functions(p.read_text(encoding="utf-8")) for p in modules}
    assert {path: f for path, f in found.items() if f} == {}


def test_no_module_in_segflow_is_over_450_lines() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in _modules()}
    assert {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES} == {}
