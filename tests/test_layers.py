"""The package's shape: imports only flow down the layers (pyproject.toml's import-linter contracts,
checked by `make lint`), with no cycle through any module and no chain deeper than 8 floors."""

from __future__ import annotations

from functools import cache

import grimp
import pytest

MAX_FLOORS = 8  # a module that imports no other of the package is on floor 1


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("chatproxy", cache_dir=None)


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
