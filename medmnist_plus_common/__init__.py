"""medmnist-plus: the MedMNIST+ collection as Hugging Face datasets.

Importing this package makes ``datasets.load_dataset("medmnist_plus", "<flag>-<size>")`` work (see
:mod:`.hf.registry`; the hook is installed once ``datasets`` is imported, before or after this package);
:func:`load` does the same through the builders directly.
"""

from __future__ import annotations

from typing import Optional, Union

from .catalog import Catalog, ConfigRef, DatasetFacts, ReleaseFile, config_ref, dataset, load_catalog
from .errors import (
    ChecksumError,
    DownloadError,
    MedMNISTPlusError,
    RegistryIncompatibleError,
    ReleaseFileError,
    UnknownConfigError,
)
from .hf.registry import register, register_when_datasets_is_imported

__version__ = "0.1.0"


def builder_for(config: Union[str, ConfigRef], **kwargs):
    """The umbrella builder for ``"<flag>-<size>"`` (or its :class:`ConfigRef`); ``kwargs`` go to the builder
    (``data_dir``, ``cache_dir``...)."""
    from builders import MedMNISTPlus

    # unknown names: closest suggestions; non-official sizes only for raw sources (the builder says so)
    return MedMNISTPlus(config_name=config_ref(config).name, **kwargs)


def load(config_name: str, split: Optional[str] = None, streaming: bool = False, verification_mode=None,
         num_proc: Optional[int] = None, **kwargs):
    """Like ``load_dataset("medmnist_plus", config_name, ...)``, without the registry hook."""
    instance = builder_for(config_name, **kwargs)
    if streaming:
        return instance.as_streaming_dataset(split=split)
    instance.download_and_prepare(verification_mode=verification_mode, num_proc=num_proc)
    return instance.as_dataset(split=split)


# The hook is installed when datasets is imported (now, if it already is): the catalog-only commands
# (medmnist-plus --help, list, info) never import datasets.
register_when_datasets_is_imported()

__all__ = [
    "Catalog", "ConfigRef", "config_ref", "DatasetFacts", "ReleaseFile", "dataset", "load_catalog", "builder_for", "load", "register",
    "MedMNISTPlusError", "UnknownConfigError", "ReleaseFileError", "ChecksumError", "DownloadError",
    "RegistryIncompatibleError", "__version__",
]
