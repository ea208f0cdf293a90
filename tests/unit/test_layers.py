"""The layers are the tree: imports point down only, by package.

    foundation   catalog, errors, logs, forking        (facts, error types, logging, forked workers' memory)
    core         release < recipes < hf               (read/write the official format, the recipes, the builder base)
    datasets     builders/                             (one module per dataset, each carrying its recipe)
    application  training, tools, evaluate, publish, compat   (on top of builds; no cycles among them)
    cli          cli/                                  (the command line: imported by nothing in the package)

A module may import its own part and any part of a lower layer. Only ``hf/registry.py`` (the load_dataset hook)
maps dataset names to the modules in ``builders/``; nothing else below ``builders/`` names a dataset module.
"""

import ast
import re
from pathlib import Path

import pytest

import medmnist_plus_common

PACKAGE = Path(medmnist_plus_common.__file__).parent
RANK = {"errors": 0, "logs": 0, "forking": 0, "catalog": 0.5, "release": 1, "recipes": 2, "hf": 3,
        "training": 5, "tools": 5, "evaluate": 5, "publish": 5, "compat": 5, "cli": 6}
DATASETS_RANK = 4  # builders/
CORE_MAX = 3
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")


def _part(path: Path) -> str:
    """The top-level part of the package a file belongs to (``"__init__"`` for the package's own facade)."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _module_parts(path: Path):
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    return parts[:-1] if parts[-1] == "__init__" else parts[:-1]  # the package the module lives in


def _imports(path: Path, top_level_only: bool = False):
    """(package parts imported, other top-level modules imported) by the file, statically."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    parts, others = set(), set()
    here = _module_parts(path)
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                target = base + (node.module.split(".") if node.module else [])
                if target:
                    parts.add(target[0])
                else:  # "from .. import x": x is a part, or an attribute of the package facade
                    parts |= {alias.name if alias.name in RANK else "__init__" for alias in node.names}
            elif node.module.split(".")[0] == "medmnist_plus_common":
                names = node.module.split(".")[1:]
                parts |= {names[0]} if names else {alias.name for alias in node.names}
            else:
                others.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names = alias.name.split(".")
                if names[0] == "medmnist_plus_common" and len(names) > 1:
                    parts.add(names[1])
                else:
                    others.add(names[0])
    return parts, others


def test_every_part_has_a_layer():
    assert {_part(p) for p in MODULES} - {"__init__"} <= set(RANK), {_part(p) for p in MODULES} - set(RANK)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    part = _part(path)
    if part == "__init__":  # the facade: foundation and the load_dataset hook at import time
        imported, _ = _imports(path, top_level_only=True)
        assert imported <= {"catalog", "errors", "hf"}, imported
        return
    imported, others = _imports(path)
    rank = RANK[part]
    for target in imported - {part}:
        target_rank = DATASETS_RANK if target == "__init__" else RANK[target]  # builder_for: the datasets layer
        assert target_rank < rank or (rank == 5 and target_rank == 5), f"{part} ({rank}) imports {target}"
    if rank <= CORE_MAX:
        assert "builders" not in others, path


@pytest.mark.parametrize("path", [p for p in MODULES if RANK.get(_part(p), 9) <= CORE_MAX],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_registry_names_dataset_modules(path):
    """No "builders.<flag>" module named below builders/, except by the load_dataset hook (the one map)."""
    named = re.findall(r"builders\.(?:\{|[a-z_]+\b)", path.read_text())
    if path == PACKAGE / "hf" / "registry.py":
        assert named  # the one map from names to modules
    else:
        assert not named, (path, named)


def test_no_cycles_among_the_application_parts():
    graph = {}
    for path in MODULES:
        part = _part(path)
        if RANK.get(part) == 5:
            graph.setdefault(part, set()).update(_imports(path, top_level_only=True)[0] & set(RANK) - {part})
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for child in graph.get(node, ()):
            assert state.get(child) != "open", " -> ".join(trail + [child])
            if child not in state:
                visit(child, trail + [child])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_torch_data_does_not_import_the_training_helpers_back():
    imported, _ = _imports(PACKAGE / "training" / "torch_data.py")
    assert not any(line.strip().startswith("from . import") for line in
                   (PACKAGE / "training" / "torch_data.py").read_text().splitlines())
    assert imported <= {"hf", "training"} | {"catalog", "errors"}, imported


def test_no_module_is_over_500_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in MODULES if (n := len(p.read_text().splitlines())) > 500}
    assert not long, long
