"""Imports point one way: the core (catalog, features, release, downloads, sources, recipes, the builder base) never
imports the application (publish, card, CLI, training, tools) or the dataset modules in builders/; the
application's modules import no cycle among themselves."""

import ast
from pathlib import Path

import pytest

import medmnist_plus_common

PACKAGE = Path(medmnist_plus_common.__file__).parent
CORE = {"catalog", "errors", "features", "release", "deflate_index", "download", "sources", "recipes", "image_recipes", "imageops",
        "volumeops", "volume_files", "nifti", "lits", "builder", "registry", "hf_compat", "synthetic",
        "synthetic_raw", "arrow_values"}
APPLICATION = {"cli", "raw_cli", "publish", "card", "training", "torch_data", "evaluate", "verify", "montage",
               "rows", "hub_errors", "regenerate", "derive"}


def _imports(module: str, top_level_only: bool = False):
    """The package modules and top-level packages that ``module`` imports (statically, anywhere in its code)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: "from .x import y" or "from . import x"
                found |= {node.module.split(".")[0]} if node.module else {alias.name for alias in node.names}
            else:
                found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
    return found


def test_every_module_is_placed_in_a_layer():
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    assert modules == CORE | APPLICATION, modules ^ (CORE | APPLICATION)


@pytest.mark.parametrize("module", sorted(CORE))
def test_the_core_imports_neither_the_application_nor_the_datasets(module):
    imported = _imports(module)
    assert not imported & APPLICATION, (module, imported & APPLICATION)
    assert "builders" not in imported, module


def test_torch_data_and_training_do_not_import_each_other_back():
    assert "training" not in _imports("torch_data")


def test_no_import_cycles_at_module_level():
    graph = {m: _imports(m, top_level_only=True) & (CORE | APPLICATION) for m in CORE | APPLICATION}
    state = {}

    def visit(node, path):
        state[node] = "open"
        for child in graph[node]:
            assert state.get(child) != "open", " -> ".join(path + [child])
            if child not in state:
                visit(child, path + [child])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
