"""The shared ``GeneratorBasedBuilder`` behind every module in ``builders/``.

A config names one dataset (``flag``) at one target size and where its pixels come from (``source``).
``source="official"`` reads the official release file; regenerating from the raw source collections with the
MedMNIST+ recipe is the other source this config is shaped for (its recipes land with later issues).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import datasets
from datasets.builder import Key
from datasets.exceptions import DatasetGenerationError
from datasets.utils.info_utils import VerificationMode

from .catalog import SPLITS, DatasetFacts, _unknown_message, load_catalog
from .download import locate_release
from .errors import MedMNISTPlusError, UnknownConfigError
from .features import IMAGE_STORAGES, encode_label, encode_sample, features_for, label_description, sample_key
from .release import ReleaseArchive, check_release, member_name, shard_ranges

SOURCES = ("official",)
VERSION = datasets.Version("1.1.0")  # bump when the examples a config yields change (1.1: raw images channels first)
SHARDS_PER_SPLIT = 32  # contiguous row ranges per split: the unit that num_proc > 1 spreads over processes
MIN_ROWS_PER_SHARD = 256
WRITER_BATCH_BYTES = 64 * 2**20  # bound on raw pixels held by the Arrow writer between flushes


@dataclass
class MedMNISTConfig(datasets.BuilderConfig):
    """One dataset at one size. ``base_url`` points downloads at a mirror holding the files by name."""

    flag: str = ""
    size: int = 0
    source: str = "official"
    base_url: Optional[str] = None
    image_storage: str = "png"  # 2D only: "raw" keeps uint8 arrays (fast local training), "png" for the Hub
    # Size and mtime of the file in data_dir: part of the cache key, so replacing a local file rebuilds.
    local_file_stamp: Optional[str] = None

    def __post_init__(self):
        super().__post_init__()
        check_config_options(source=self.source, image_storage=self.image_storage)

    @property
    def facts(self) -> DatasetFacts:
        return load_catalog()[self.flag]


def check_config_options(**options) -> None:
    """Reject unknown option values early (datasets sets user config kwargs without re-running __post_init__)."""
    allowed = {"source": SOURCES, "image_storage": IMAGE_STORAGES}
    for key, value in options.items():
        if key in allowed and value is not None and value not in allowed[key]:
            raise ValueError(f"Unknown {key} {value!r}; available: {list(allowed[key])}.")


def _config(facts: DatasetFacts, size: int, name: str) -> MedMNISTConfig:
    return MedMNISTConfig(name=name, version=VERSION, flag=facts.flag, size=size,
                          description=f"{facts.title}, {_size_text(facts, size)}")


def size_configs(flag: str) -> List[MedMNISTConfig]:
    """The configs of one dataset's own builder: one per official size, named by the size ("28", "224")."""
    facts = load_catalog()[flag]
    return [_config(facts, size, str(size)) for size in facts.sizes]


def all_configs() -> List[MedMNISTConfig]:
    """The umbrella builder's configs: ``"<flag>-<size>"`` for every dataset and official size (60)."""
    return [_config(facts, size, facts.config_name(size)) for facts in load_catalog() for size in facts.sizes]


def _size_text(facts: DatasetFacts, size: int) -> str:
    return "x".join([str(size)] * facts.dims) + (" RGB" if facts.channels == 3 else "")


class MedMNISTBuilder(datasets.GeneratorBasedBuilder):
    """Builds one MedMNIST+ config into Arrow (or streams it) from the official release file."""

    BUILDER_CONFIG_CLASS = MedMNISTConfig
    VERSION = VERSION
    DATASET_NAME: str = ""  # cache folder name: the dataset's flag, or "medmnist_plus" for the umbrella
    # Streaming has no verification_mode argument and writes no cache, so there a local file's MD5 or row count
    # that differs from the catalog is a warning (downloads are always MD5-checked). Builds default to checks.
    _verification_mode = VerificationMode.NO_CHECKS

    def __init__(self, *args, dataset_name: Optional[str] = None, writer_batch_size: Optional[int] = None, **kwargs):
        super().__init__(*args, dataset_name=dataset_name or self.DATASET_NAME, **kwargs)
        if writer_batch_size is None:
            row_bytes = math.prod(self.config.facts.image_shape(self.config.size))
            writer_batch_size = max(16, min(1000, WRITER_BATCH_BYTES // row_bytes))
        self._writer_batch_size = writer_batch_size

    def _create_builder_config(self, config_name=None, custom_features=None, config_id=None, **config_kwargs):
        known = [config.name for config in self.BUILDER_CONFIGS]
        if config_name is not None and config_name not in known:
            raise UnknownConfigError(_unknown_message("config", config_name, known, owner=type(self).__name__))
        if config_name is None and len(known) > 1:
            raise UnknownConfigError(f"{type(self).__name__} needs a config name: one of {known}.")
        check_config_options(**config_kwargs)
        if config_kwargs.get("data_dir") is not None and config_name is not None:
            config = next(c for c in self.BUILDER_CONFIGS if c.name == config_name)
            path = os.path.join(os.path.expanduser(str(config_kwargs["data_dir"])), config.facts.files[config.size].file)
            if os.path.isfile(path):
                stat = os.stat(path)
                config_kwargs["local_file_stamp"] = f"{stat.st_size}-{stat.st_mtime_ns}"
        return super()._create_builder_config(config_name, custom_features, config_id, **config_kwargs)

    def _info(self) -> datasets.DatasetInfo:
        facts, size = self.config.facts, self.config.size
        catalog = load_catalog()
        return datasets.DatasetInfo(
            description=(
                f"{facts.title} ({_size_text(facts, size)}) from MedMNIST+, source: {self.config.source} release. "
                f"{facts.description} Columns: index: the row of this example in its split of the official "
                f"MedMNIST arrays (0-based); {sample_key(facts)}: the {_size_text(facts, size)} pixels as "
                f"released; {label_description(facts)} MedMNIST's split 'val' is named 'validation'."
            ),
            features=features_for(facts, size, self.config.image_storage),
            homepage="https://medmnist.com/",
            citation="\n".join(
                [catalog.citations["medmnist_v2"], catalog.citations["medmnist_plus"], facts.source_collection.citation]
            ),
            license=facts.license,
            splits=datasets.SplitDict.from_split_dict(
                [datasets.SplitInfo(name=split, num_examples=facts.split_counts[split]) for split in SPLITS],
                dataset_name=self.dataset_name,
            ),
        )

    def _download_and_prepare(self, dl_manager, verification_mode, **prepare_split_kwargs):
        self._verification_mode = verification_mode  # read by _split_generators, incl. in worker processes
        return super()._download_and_prepare(dl_manager, verification_mode, **prepare_split_kwargs)

    def _split_generators(self, dl_manager) -> List[datasets.SplitGenerator]:
        facts, size = self.config.facts, self.config.size
        strict = self._verification_mode != VerificationMode.NO_CHECKS
        download_config = dl_manager.download_config
        path = locate_release(
            facts.files[size],
            cache_dir=str(download_config.cache_dir or self._cache_downloaded_dir),
            data_dir=self.config.data_dir,
            base_url=self.config.base_url,
            force_download=download_config.force_download,
            strict=strict,
            offline=datasets.config.HF_HUB_OFFLINE,
        )
        rows = check_release(path, facts, size, strict=strict)
        return [
            datasets.SplitGenerator(
                name=split,
                gen_kwargs={
                    "path": path,
                    "split": split,
                    "row_ranges": shard_ranges(rows[split], max(1, min(SHARDS_PER_SPLIT, rows[split] // MIN_ROWS_PER_SHARD))),
                },
            )
            for split in SPLITS
        ]

    def _prepare_split_single(self, *args, **kwargs):
        # datasets wraps every generation error in DatasetGenerationError("An error occurred ..."): surface
        # ours (file named, what is wrong, what to do) instead. The incomplete cache folder is removed either way.
        try:
            yield from super()._prepare_split_single(*args, **kwargs)
        except DatasetGenerationError as err:
            if isinstance(err.__cause__, MedMNISTPlusError):
                raise err.__cause__ from None
            raise

    def _generate_examples(self, path: str, split: str, row_ranges: Sequence[Tuple[int, int]]):
        facts = self.config.facts
        column = sample_key(facts)
        with ReleaseArchive(path) as archive:
            labels = archive.read_array(member_name(split, "labels"))
            chunks = archive.iter_chunks(member_name(split, "images"), row_ranges)
            for shard, (start, stop) in enumerate(row_ranges):
                index = start
                while index < stop:
                    chunk = next(chunks)
                    for pixels in chunk:
                        example = {
                            "index": index,
                            column: encode_sample(facts, pixels, self.config.image_storage),
                            "label": encode_label(facts, labels[index]),
                        }
                        yield Key(shard, index), example
                        index += 1
            for _ in chunks:  # finish the member (a final range that reaches the end checks the CRC)
                pass
