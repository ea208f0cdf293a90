"""Every private piece of ``datasets`` and ``huggingface_hub`` that the registry, publishing and training modules
use, in one place, checked against the installed versions once, with one clear error.

Public arguments are used wherever they exist (``HfApi(endpoint=...)``, ``to_parquet(batch_size=...)``,
``load_dataset(storage_options=...)``); what is left has no public equivalent in datasets 5.2 / huggingface_hub 2.4:

* the ``load_dataset`` hook: ``datasets.load.dataset_module_factory`` / ``DatasetModule`` and ``datasets.inspect``'s
  reference to the factory (there is no plug-in point for packaged builders);
* Parquet row groups of ``push_to_hub``: ``datasets.config.MAX_ROW_GROUP_SIZE`` (no argument), and the row count
  per group datasets derives from it (``arrow_writer.get_writer_batch_size_from_data_size``);
* a split's size estimate (``Dataset._estimate_nbytes``, what ``push_to_hub`` uses to count shards) and
  ``datasets.utils.py_utils.convert_file_size_to_int`` (``"500MB"`` -> bytes, as datasets parses it);
* card metadata for one config as datasets writes it (``datasets.info.DatasetInfosDict``,
  ``datasets.utils.metadata.MetadataConfigs``);
* the Hub endpoint of ``push_to_hub`` (it has no ``endpoint`` argument; datasets and huggingface_hub read
  ``HF_ENDPOINT`` once, at import): ``datasets.config.HF_ENDPOINT`` and ``huggingface_hub.constants`` for the call;
* the memory-mapped Arrow table of a ``Dataset`` (``dataset.data.table``) and its ``select``/``shuffle`` indices
  mapping (``dataset._indices``), read for zero-copy batches.

:func:`check` verifies the versions and that each of these exists, once per process; a mismatch raises
:class:`IncompatibleLibraryError` naming everything that is missing and what to install.
* the builder's overrides of ``GeneratorBasedBuilder`` (``_create_builder_config`` for configs made on the fly
  and cache keys, ``_download_and_prepare`` to learn the verification mode, ``_prepare_split`` to check a local
  file's MD5 after each split, ``_prepare_split_single`` to surface our errors) and ``datasets.builder.Key``
  (shard-aware example keys), checked here with the rest.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
from typing import Callable, Dict, List, Optional, Tuple

from ..errors import MedMNISTPlusError, RegistryIncompatibleError

TESTED_WITH = "datasets 5.2 and huggingface_hub 2.4"
SUPPORTED = {"datasets": ((5, 2), (6, 0)), "huggingface_hub": ((2, 4), (3, 0))}  # [lowest, first unsupported)
INSTALL = "pip install 'datasets>=5.2,<6' 'huggingface_hub>=2.4,<3'"


class IncompatibleLibraryError(MedMNISTPlusError, RuntimeError):
    """The installed datasets / huggingface_hub lack internals this package relies on."""


def _version(text: str) -> Tuple[int, int]:
    parts = (text.split("+")[0].split(".") + ["0", "0"])[:2]
    return tuple(int("".join(ch for ch in part if ch.isdigit()) or 0) for part in parts)


def _private_pieces() -> Dict[str, Callable[[], object]]:
    """What must exist: a name -> a getter that raises (ImportError, AttributeError) when it does not."""
    def attr(module: str, *names: str):
        def get():
            import importlib

            value = importlib.import_module(module)
            for name in names:
                value = getattr(value, name)
            return value
        return get

    return {
        "datasets.load.dataset_module_factory": attr("datasets.load", "dataset_module_factory"),
        "datasets.load.DatasetModule": attr("datasets.load", "DatasetModule"),
        "datasets.inspect.dataset_module_factory": attr("datasets.inspect", "dataset_module_factory"),
        "datasets.config.MAX_ROW_GROUP_SIZE": attr("datasets.config", "MAX_ROW_GROUP_SIZE"),
        "datasets.config.HF_ENDPOINT": attr("datasets.config", "HF_ENDPOINT"),
        "datasets.arrow_writer.get_writer_batch_size_from_data_size":
            attr("datasets.arrow_writer", "get_writer_batch_size_from_data_size"),
        "datasets.Dataset._estimate_nbytes": attr("datasets", "Dataset", "_estimate_nbytes"),
        "datasets.utils.py_utils.convert_file_size_to_int": attr("datasets.utils.py_utils", "convert_file_size_to_int"),
        "datasets.info.DatasetInfosDict.to_dataset_card_data": attr("datasets.info", "DatasetInfosDict",
                                                                    "to_dataset_card_data"),
        "datasets.utils.metadata.MetadataConfigs.to_dataset_card_data": attr("datasets.utils.metadata",
                                                                             "MetadataConfigs", "to_dataset_card_data"),
        "datasets.builder.Key": attr("datasets.builder", "Key"),
        "datasets.GeneratorBasedBuilder._create_builder_config": attr("datasets", "GeneratorBasedBuilder",
                                                                      "_create_builder_config"),
        "datasets.GeneratorBasedBuilder._download_and_prepare": attr("datasets", "GeneratorBasedBuilder",
                                                                     "_download_and_prepare"),
        "datasets.GeneratorBasedBuilder._prepare_split": attr("datasets", "GeneratorBasedBuilder", "_prepare_split"),
        "datasets.GeneratorBasedBuilder._prepare_split_single": attr("datasets", "GeneratorBasedBuilder",
                                                                     "_prepare_split_single"),
        "datasets.config.HF_HUB_OFFLINE": attr("datasets.config", "HF_HUB_OFFLINE"),
        "huggingface_hub.constants.ENDPOINT": attr("huggingface_hub.constants", "ENDPOINT"),
        "huggingface_hub.constants.HUGGINGFACE_CO_URL_TEMPLATE": attr("huggingface_hub.constants",
                                                                      "HUGGINGFACE_CO_URL_TEMPLATE"),
    }


def problems() -> List[str]:
    """Everything that does not match: versions outside the supported range, private pieces that are missing."""
    import datasets
    import huggingface_hub

    found = []
    for module in (datasets, huggingface_hub):
        low, high = SUPPORTED[module.__name__]
        if not low <= _version(module.__version__) < high:
            found.append(f"{module.__name__} {module.__version__} is outside the supported "
                         f"{'.'.join(map(str, low))} to <{'.'.join(map(str, high))}")
    for name, get in _private_pieces().items():
        try:
            get()
        except (ImportError, AttributeError) as err:
            found.append(f"{name} is missing ({type(err).__name__}: {err})")
    return found


@functools.lru_cache(maxsize=None)
def check() -> None:
    """Check once per process; raise :class:`IncompatibleLibraryError` with every problem in one message."""
    found = problems()
    if found:
        import datasets
        import huggingface_hub

        raise IncompatibleLibraryError(
            f"medmnist-plus relies on internals of datasets and huggingface_hub that the installed versions "
            f"(datasets {datasets.__version__}, huggingface_hub {huggingface_hub.__version__}) do not offer as "
            f"expected: {'; '.join(found)}. It was tested with {TESTED_WITH}: install supported versions "
            f"({INSTALL}). Building and loading through the builders (builders.MedMNISTPlus, "
            "medmnist_plus_common.load) may still work.")


# ------------------------------------------------------------------------------------ the load_dataset hook


def _hook_incompatible(detail: str) -> RegistryIncompatibleError:
    import datasets

    return RegistryIncompatibleError(
        f'load_dataset("medmnist_plus", ...) needs a private hook of the datasets library that datasets '
        f"{datasets.__version__} does not offer as expected ({detail}); it was tested with datasets 5.2. "
        "Use the builders directly instead, e.g. `medmnist_plus_common.load(\"organmnist3d-64\")` or "
        "`builders.MedMNISTPlus(config_name=\"organmnist3d-64\").download_and_prepare()`, or install a "
        "datasets version this package supports."
    )


def install_load_hook(modules: Dict[str, str]) -> None:
    """Make ``datasets.load.dataset_module_factory`` (and ``datasets.inspect``'s reference to it) return the module
    ``modules[name]`` for those names, unless a local folder of that name exists (idempotent).

    Checks the shape of what it wraps on every call and raises :class:`RegistryIncompatibleError` when it changed.
    """
    try:
        from datasets import inspect as hf_inspect
        from datasets import load
    except ImportError as err:  # pragma: no cover - datasets is a hard dependency
        raise _hook_incompatible(f"cannot import datasets.load / datasets.inspect: {err}") from err

    factory = getattr(load, "dataset_module_factory", None)
    module_class = getattr(load, "DatasetModule", None)
    builder_loader = getattr(load, "load_dataset_builder", None)
    if factory is None or module_class is None or builder_loader is None:
        raise _hook_incompatible("datasets.load lacks dataset_module_factory, DatasetModule or load_dataset_builder")
    original = getattr(factory, "_medmnist_plus_original", None)
    if original is not None:
        if getattr(hf_inspect, "dataset_module_factory", None) is original:  # e.g. datasets.inspect reloaded
            hf_inspect.dataset_module_factory = factory
        return
    if "dataset_module_factory" not in builder_loader.__code__.co_names:
        raise _hook_incompatible("load_dataset_builder no longer calls dataset_module_factory")
    inspect_factory = getattr(hf_inspect, "dataset_module_factory", None)
    if inspect_factory is not None and inspect_factory is not factory:
        raise _hook_incompatible("datasets.inspect.dataset_module_factory is not datasets.load's")
    if getattr(hf_inspect, "load_dataset_builder", builder_loader) is not builder_loader:
        raise _hook_incompatible("datasets.inspect.load_dataset_builder is not datasets.load's")
    fields = list(inspect.signature(module_class).parameters)
    if fields[:3] != ["module_path", "hash", "builder_kwargs"]:
        raise _hook_incompatible(f"DatasetModule fields are {fields}")

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


def uninstall_load_hook() -> None:
    from datasets import inspect as hf_inspect
    from datasets import load

    original = getattr(load.dataset_module_factory, "_medmnist_plus_original", None)
    if original is not None:
        if getattr(hf_inspect, "dataset_module_factory", None) is load.dataset_module_factory:
            hf_inspect.dataset_module_factory = original
        load.dataset_module_factory = original


# ------------------------------------------------------------------------------------------ Parquet and shards


def file_size_to_bytes(size) -> int:
    """``"500MB"`` (or an int) in bytes, parsed as datasets parses ``max_shard_size``."""
    check()
    from datasets.utils.py_utils import convert_file_size_to_int

    return convert_file_size_to_int(size)


def estimated_nbytes(dataset) -> int:
    """The size estimate ``push_to_hub`` divides by ``max_shard_size`` to count shards."""
    check()
    return dataset._estimate_nbytes()


def rows_per_row_group(dataset, row_group_size: str) -> int:
    """Rows per Parquet row group of about ``row_group_size``, as datasets' writers compute it."""
    check()
    from datasets.arrow_writer import get_writer_batch_size_from_data_size

    with max_row_group_size(row_group_size):
        return get_writer_batch_size_from_data_size(len(dataset), dataset._estimate_nbytes())


@contextlib.contextmanager
def max_row_group_size(size: str):
    """Make datasets' Parquet writers (``push_to_hub`` has no argument for it) aim for row groups of ``size``,
    for the duration of the block (``datasets.config`` is process-wide: restored afterwards)."""
    check()
    import datasets

    saved = datasets.config.MAX_ROW_GROUP_SIZE
    datasets.config.MAX_ROW_GROUP_SIZE = size
    try:
        yield
    finally:
        datasets.config.MAX_ROW_GROUP_SIZE = saved


def card_metadata_with_config(metadata: dict, name: str, data_files: List[dict], info) -> dict:
    """``metadata`` (a card's YAML as a dict) with config ``name`` listed (``configs``: its data files) and
    described (``dataset_info``), exactly as ``push_to_hub(config_name=...)`` writes them."""
    check()
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    card_data = DatasetCardData(**metadata)
    MetadataConfigs({name: {"data_files": data_files}}).to_dataset_card_data(card_data)
    DatasetInfosDict({name: info}).to_dataset_card_data(card_data)
    return card_data.to_dict()


# ------------------------------------------------------------------------------------------------ the endpoint


def current_endpoint() -> str:
    """The Hub ``datasets`` talks to (``HF_ENDPOINT`` as read at import, or the one set by :func:`hub_endpoint`)."""
    check()
    import datasets

    return datasets.config.HF_ENDPOINT


@contextlib.contextmanager
def hub_endpoint(endpoint: Optional[str]):
    """Point datasets and huggingface_hub at ``endpoint`` for the block (both read HF_ENDPOINT only when
    imported, and ``push_to_hub`` has no endpoint argument). Nothing changes for ``endpoint=None``."""
    if not endpoint:
        yield
        return
    check()
    import datasets
    import huggingface_hub.constants as hub_constants

    endpoint = endpoint.rstrip("/")
    saved = (datasets.config.HF_ENDPOINT, hub_constants.ENDPOINT, hub_constants.HUGGINGFACE_CO_URL_TEMPLATE,
             os.environ.get("HF_ENDPOINT"))
    datasets.config.HF_ENDPOINT = hub_constants.ENDPOINT = endpoint
    hub_constants.HUGGINGFACE_CO_URL_TEMPLATE = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    os.environ["HF_ENDPOINT"] = endpoint
    try:
        yield
    finally:
        datasets.config.HF_ENDPOINT, hub_constants.ENDPOINT, hub_constants.HUGGINGFACE_CO_URL_TEMPLATE = saved[:3]
        if saved[3] is None:
            os.environ.pop("HF_ENDPOINT", None)
        else:
            os.environ["HF_ENDPOINT"] = saved[3]


# -------------------------------------------------------------------------------- a Dataset's Arrow internals


def example_key(shard: int, index: int):
    """The key of one generated example (``datasets.builder.Key``: shard-aware, so num_proc keeps the order)."""
    from datasets.builder import Key

    return Key(shard, index)


def offline() -> bool:
    """Whether datasets is in offline mode (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE, read by datasets at import)."""
    import datasets

    return bool(datasets.config.HF_HUB_OFFLINE)


def arrow_table(dataset):
    """The ``pyarrow.Table`` behind a ``Dataset`` (memory-mapped from the cache files), without its indices."""
    check()
    return dataset.data.table


def indices_mapping(dataset):
    """For a ``select()``/``shuffle()`` view, the cache-file row of each of its rows (a zero-copy numpy uint64
    view; cast what you pick); None for a plain split."""
    check()
    indices = dataset._indices
    return None if indices is None else indices.column(0).to_numpy()
