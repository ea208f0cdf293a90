"""Making ``datasets.load_dataset("medmnist_plus", "<flag>-<size>")`` resolve to our builders.

datasets 5 runs no dataset scripts and has no public plug-in point for packaged builders, so this wraps its
private ``datasets.load.dataset_module_factory``: for the names ``medmnist_plus`` and the 18 dataset flags it
returns our builder module; anything else (and a local folder of that name) goes to datasets unchanged.
``register()`` checks that the private pieces still have the shape it relies on, and fails with a clear
message when they do not (the private access itself lives in :mod:`.internals`); the builders themselves never
depend on this hook.
"""

from __future__ import annotations

import importlib.abc
import sys
import warnings
from typing import Dict

from ..errors import RegistryIncompatibleError

UMBRELLA_MODULE = "builders.medmnist_plus"


def builder_modules() -> Dict[str, str]:
    """``load_dataset`` names -> module paths: ``medmnist_plus`` and every dataset flag."""
    from ..catalog import UMBRELLA_NAME, load_catalog

    modules = {UMBRELLA_NAME: UMBRELLA_MODULE}
    modules.update({facts.flag: f"builders.{facts.flag}" for facts in load_catalog()})
    return modules


def builder_class(name: str):
    """The builder class behind a ``load_dataset`` name (``medmnist_plus`` or a dataset flag), imported on first use."""
    import importlib

    from ..catalog import UMBRELLA_NAME, load_catalog

    if name != UMBRELLA_NAME:
        name = load_catalog()[name].flag  # unknown flags: closest suggestions
    module = importlib.import_module(builder_modules()[name])
    return next(value for value in vars(module).values()
                if isinstance(value, type) and getattr(value, "DATASET_NAME", None) == name)


def recipe_for(flag: str):
    """The raw-source recipe of dataset ``flag``: the ``RECIPE`` its builder carries."""
    return builder_class(flag).recipe_for(flag)


def all_recipes() -> list:
    """Every dataset's recipe (to tell a user which collection a wrong folder holds)."""
    from ..catalog import load_catalog

    return [builder_class(facts.flag).RECIPE for facts in load_catalog()]


def register() -> None:
    """Install the hook (idempotent). Raises :class:`RegistryIncompatibleError` if datasets changed shape.

    Besides ``datasets.load``, ``datasets.inspect`` holds its own reference to the factory (it imports it by name
    for ``get_dataset_config_names``), so the hook replaces that reference too; ``load_dataset_builder``,
    ``get_dataset_split_names`` and ``get_dataset_infos`` go through ``datasets.load``'s. The private pieces are
    handled (and checked) in :mod:`.internals`.
    """
    from . import internals

    try:
        internals.check()
    except internals.IncompatibleLibraryError as err:
        raise RegistryIncompatibleError(str(err)) from err
    internals.install_load_hook(builder_modules())


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
    from . import internals

    internals.uninstall_load_hook()
