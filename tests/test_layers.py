"""The package's shape: imports only flow down the layers (pyproject.toml's import-linter contracts,
checked by `make lint`), with no cycle through any module and no chain deeper than 8 floors (of
imports made at run time: one made only for type checking, as the `Store` protocol's, is left
out); no module over 300 lines (the style guide's aim) and no function over 60."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import grimp
import pytest

MAX_FLOORS = 8  # a module that imports no other of the package is on floor 1
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
MODULES = sorted((Path(__file__).parent.parent / "chatproxy").rglob("*.py"))


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("chatproxy", cache_dir=None, exclude_type_checking_imports=True)


def _imports(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    return {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}


def test_no_module_imports_itself_through_others(graph: grimp.ImportGraph) -> None:
    imports = _imports(graph)
    cycles = [
        (module, target)
        for module, targets in imports.items()
        for target in targets
        if graph.chain_exists(importer=target, imported=module)
    ]
    assert cycles == []


def test_import_chains_stay_within_eight_floors(graph: grimp.ImportGraph) -> None:
    imports = _imports(graph)

    @cache
    def floors(module: str) -> int:
        return 1 + max((floors(target) for target in imports[module]), default=0)

    deepest = max(imports, key=floors)
    chain = [deepest]
    while imports[chain[-1]]:
        chain.append(max(imports[chain[-1]], key=floors))
    assert floors(deepest) <= MAX_FLOORS, " -> ".join(chain)


@pytest.mark.parametrize("path", MODULES, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_modules_and_functions_stay_short(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    long_functions = [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]

    assert len(source.splitlines()) <= MAX_MODULE_LINES
    assert long_functions == []
