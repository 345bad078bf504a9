"""The package's shape: imports only flow down the layers (pyproject.toml's import-linter contracts,
checked by `make lint`), with no cycle through any module."""

from __future__ import annotations

import grimp
import pytest


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
