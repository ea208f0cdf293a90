"""Making ``datasets.load_dataset("medmnist_plus", "<flag>-<size>")`` resolve to our builders.

datasets 5 runs no dataset scripts and has no public plug-in point for packaged builders, so this wraps its
private ``datasets.load.dataset_module_factory``: for the names ``medmnist_plus`` and the 18 dataset flags it
returns our builder module; anything else (and a local folder of that name) goes to datasets unchanged.
``register()`` checks that the private pieces still have the shape it relies on, and fails with a clear
message when they do not; the builders themselves never depend on this hook.
"""

from __future__ import annotations

import functools
import importlib.abc
import inspect
import os
import sys
import warnings
from typing import Dict

from .errors import RegistryIncompatibleError

UMBRELLA_MODULE = "builders.medmnist_plus"
_TESTED_WITH = "datasets 5.2"


def builder_modules() -> Dict[str, str]:
    """``load_dataset`` names -> module paths: ``medmnist_plus`` and every dataset flag."""
    from .catalog import UMBRELLA_NAME, load_catalog

    modules = {UMBRELLA_NAME: UMBRELLA_MODULE}
    modules.update({facts.flag: f"builders.{facts.flag}" for facts in load_catalog()})
    return modules


def _incompatible(detail: str) -> RegistryIncompatibleError:
    import datasets

    return RegistryIncompatibleError(
        f'load_dataset("medmnist_plus", ...) needs a private hook of the datasets library that datasets '
        f"{datasets.__version__} does not offer as expected ({detail}); it was tested with {_TESTED_WITH}. "
        "Use the builders directly instead, e.g. `medmnist_plus_common.load(\"organmnist3d-64\")` or "
        "`builders.MedMNISTPlus(config_name=\"organmnist3d-64\").download_and_prepare()`, or install a "
        "datasets version this package supports."
    )


def register() -> None:
    """Install the hook (idempotent). Raises :class:`RegistryIncompatibleError` if datasets changed shape.

    Besides ``datasets.load``, ``datasets.inspect`` holds its own reference to the factory (it imports it by name
    for ``get_dataset_config_names``), so the hook replaces that reference too; ``load_dataset_builder``,
    ``get_dataset_split_names`` and ``get_dataset_infos`` go through ``datasets.load``'s.
    """
    try:
        from datasets import inspect as hf_inspect
        from datasets import load
    except ImportError as err:  # pragma: no cover - datasets is a hard dependency
        raise _incompatible(f"cannot import datasets.load / datasets.inspect: {err}") from err

    factory = getattr(load, "dataset_module_factory", None)
    module_class = getattr(load, "DatasetModule", None)
    builder_loader = getattr(load, "load_dataset_builder", None)
    if factory is None or module_class is None or builder_loader is None:
        raise _incompatible("datasets.load lacks dataset_module_factory, DatasetModule or load_dataset_builder")
    original = getattr(factory, "_medmnist_plus_original", None)
    if original is not None:
        if getattr(hf_inspect, "dataset_module_factory", None) is original:  # e.g. datasets.inspect reloaded
            hf_inspect.dataset_module_factory = factory
        return
    if "dataset_module_factory" not in builder_loader.__code__.co_names:
        raise _incompatible("load_dataset_builder no longer calls dataset_module_factory")
    inspect_factory = getattr(hf_inspect, "dataset_module_factory", None)
    if inspect_factory is not None and inspect_factory is not factory:
        raise _incompatible("datasets.inspect.dataset_module_factory is not datasets.load's")
    if getattr(hf_inspect, "load_dataset_builder", builder_loader) is not builder_loader:
        raise _incompatible("datasets.inspect.load_dataset_builder is not datasets.load's")
    fields = list(inspect.signature(module_class).parameters)
    if fields[:3] != ["module_path", "hash", "builder_kwargs"]:
        raise _incompatible(f"DatasetModule fields are {fields}")

    modules = builder_modules()

    @functools.wraps(factory)
    def dataset_module_factory(path, *args, **kwargs):
        module_path = modules.get(path) if isinstance(path, str) else None
        if module_path is not None and not os.path.isdir(path):
            return module_class(module_path, None, {"dataset_name": path})
        return factory(path, *args, **kwargs)

    dataset_module_factory._medmnist_plus_original = factory
    load.dataset_module_factory = dataset_module_factory
    if inspect_factory is not None:
        hf_inspect.dataset_module_factory = dataset_module_factory


class _RegisterOnDatasetsImport(importlib.abc.MetaPathFinder):
    """Installs the hook right after ``datasets`` is imported, so that importing this package does not import
    ``datasets`` (0.5 s) for the commands that need only the catalog. Finds nothing itself: it asks the other
    finders for ``datasets``' spec and wraps that spec's loader (the loader object is not replaced)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "datasets":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _remove_import_hook()
            register_or_warn()

        loader.exec_module = exec_then_register  # this spec's own loader instance only
        return spec


_IMPORT_HOOK = _RegisterOnDatasetsImport()


def _remove_import_hook() -> None:
    while _IMPORT_HOOK in sys.meta_path:
        sys.meta_path.remove(_IMPORT_HOOK)


def register_or_warn() -> None:
    """:func:`register`, turning a changed ``datasets`` into a warning (the builders and load() still work)."""
    try:
        register()
    except RegistryIncompatibleError as err:
        warnings.warn(str(err), stacklevel=2)


def register_when_datasets_is_imported() -> None:
    """Install the hook now if ``datasets`` is imported, else as soon as it is (what ``import medmnist_plus_common``
    does)."""
    if "datasets" in sys.modules:
        register_or_warn()
    elif _IMPORT_HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _IMPORT_HOOK)


def unregister() -> None:
    from datasets import inspect as hf_inspect
    from datasets import load

    original = getattr(load.dataset_module_factory, "_medmnist_plus_original", None)
    if original is not None:
        if getattr(hf_inspect, "dataset_module_factory", None) is load.dataset_module_factory:
            hf_inspect.dataset_module_factory = original
        load.dataset_module_factory = original
