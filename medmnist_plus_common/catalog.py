"""The catalog: facts about the 18 MedMNIST+ datasets, read from ``catalog.json``.

Every fact (label names, split counts, license, release file names and MD5s) lives in that one JSON table;
this module only gives it types and a few lookups. Nothing here touches the network.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Dict, List, Optional, Tuple, Union

from .errors import UnknownConfigError

SPLITS = ("train", "validation", "test")
# The release names its validation split "val"; the datasets convention is "validation".
RELEASE_SPLIT_PREFIX = {"train": "train", "validation": "val", "test": "test"}
UMBRELLA_NAME = "medmnist_plus"
ANY_SIZE_RANGE = (8, 1024)  # sizes a raw source can be regenerated at (the official ones are in the table)


@dataclass(frozen=True)
class ReleaseFile:
    """One official ``.npz`` file of the MedMNIST+ release (Zenodo record 10519652)."""

    flag: str
    size: int
    file: str
    md5: str
    url: str


@dataclass(frozen=True)
class SourceCollection:
    name: str
    citation: str
    homepage: Optional[str]


@dataclass(frozen=True)
class DatasetFacts:
    flag: str
    title: str
    task: str  # "multi-class", "binary", "ordinal" or "multi-label"
    dims: int  # 2 or 3
    channels: int
    labels: Tuple[str, ...]
    split_counts: Dict[str, int]
    license: str
    description: str
    source_collection: SourceCollection
    files: Dict[int, ReleaseFile]

    @property
    def sizes(self) -> Tuple[int, ...]:
        return tuple(sorted(self.files))

    @property
    def is_multilabel(self) -> bool:
        return self.task == "multi-label"

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def config_name(self, size: int) -> str:
        return f"{self.flag}-{size}"

    def image_shape(self, size: int) -> Tuple[int, ...]:
        """Shape of one sample in the release arrays (without the leading row axis)."""
        if self.dims == 3:
            return (size, size, size)
        return (size, size) if self.channels == 1 else (size, size, self.channels)

    def label_shape(self) -> Tuple[int, ...]:
        return (self.num_classes,) if self.is_multilabel else (1,)


@dataclass(frozen=True)
class ConfigRef:
    """A parsed config name (``"organmnist3d-64"``): the dataset's facts and the size, parsed once and passed on.

    Unpacks as ``facts, size = ref`` for code that needs only those two.
    """

    facts: DatasetFacts
    size: int

    def __iter__(self):
        return iter((self.facts, self.size))

    @property
    def name(self) -> str:
        return self.facts.config_name(self.size)

    @property
    def flag(self) -> str:
        return self.facts.flag

    @property
    def release(self) -> Optional[ReleaseFile]:
        """The official release file at this size; None for a size only raw sources can be regenerated at."""
        return self.facts.files.get(self.size)

    @property
    def shape(self) -> Tuple[int, ...]:
        return self.facts.image_shape(self.size)


@dataclass(frozen=True)
class Catalog:
    about: str
    url_template: str
    record: str
    citations: Dict[str, str]
    datasets: Dict[str, DatasetFacts]

    def __getitem__(self, flag: str) -> DatasetFacts:
        try:
            return self.datasets[flag]
        except KeyError:
            raise UnknownConfigError(_unknown_message("dataset", flag, list(self.datasets))) from None

    def __iter__(self):
        return iter(self.datasets.values())

    def __len__(self) -> int:
        return len(self.datasets)

    def config_names(self) -> List[str]:
        return [facts.config_name(size) for facts in self for size in facts.sizes]

    def parse_config_name(self, name: str, any_size: bool = False) -> ConfigRef:
        """``"organmnist3d-64"`` -> ConfigRef(facts of organmnist3d, 64); unknown names get the closest suggestions.

        With ``any_size``, every size from 8 to 1024 is accepted (sizes that raw sources can be regenerated at).
        """
        flag, _, size = str(name).rpartition("-")
        facts = self.datasets.get(flag)
        if facts is not None and size.isdigit() and (
                int(size) in facts.files or (any_size and ANY_SIZE_RANGE[0] <= int(size) <= ANY_SIZE_RANGE[1])):
            return ConfigRef(facts, int(size))
        raise UnknownConfigError(self.unknown_config_message(name, any_size))

    def unknown_config_message(self, name: str, any_size: bool = False, owner: str = "MedMNIST+",
                               flag: Optional[str] = None) -> str:
        """Why ``name`` is not a config, the one rule everywhere: a known dataset's own sizes first (the closest
        first), then what raw sources can do; an unknown dataset gets the closest names.

        ``any_size``: raw sizes were allowed (the size is outside 8-1024 or not a number); ``flag``: a dataset's
        own builder, whose configs are named by the size alone.
        """
        full = f"{flag}-{name}" if flag else str(name)
        dataset_flag, _, size = full.rpartition("-")
        facts = self.datasets.get(dataset_flag.lower())
        if facts is None:
            return _unknown_message("config", name, self.config_names(), owner)
        label = str if flag else facts.config_name
        by_closeness = sorted(facts.sizes, key=lambda s: (abs(s - int(size)), s)) if size.isdigit() else facts.sizes
        text = (f"Unknown {owner} config {name!r}. Did you mean {', '.join(repr(label(s)) for s in by_closeness)} "
                f"({facts.title}'s official sizes, the closest first)?")
        low, high = ANY_SIZE_RANGE
        if not (size.isdigit() and low <= int(size) <= high):
            return text + (f" With source='raw', any size from {low} to {high} can be regenerated"
                           + (f" ({int(size)} is outside that range)." if size.isdigit() else "."))
        if not any_size:
            text += (f" {facts.title} has no official release at size {int(size)} (other sizes, {low} to {high}, are "
                     "regenerated from the raw source collection: pass source='raw' and data_dir=<its folder>; "
                     "CLI: --source raw).")
        return text


def config_ref(config: Union[str, ConfigRef], any_size: bool = True) -> ConfigRef:
    """``config`` as a :class:`ConfigRef`: a name is parsed (once, where it enters), a ref is passed on as it is.

    Without ``any_size`` only official sizes are accepted (what needs a release file, e.g. the evaluator's labels).
    """
    if isinstance(config, ConfigRef):
        if any_size or config.release is not None:
            return config
        config = config.name
    return load_catalog().parse_config_name(str(config), any_size=any_size)


def _unknown_message(kind: str, name: str, known: List[str], owner: str = "MedMNIST+") -> str:
    close = difflib.get_close_matches(str(name).lower(), known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    if len(known) > 20:
        listing = f"Run `medmnist-plus list` to see all {len(known)}."
    else:
        listing = f"Known: {', '.join(known)}."
    return f"Unknown {owner} {kind} {name!r}.{hint} {listing}"


def _parse(doc: dict) -> Catalog:
    url_template = doc["release"]["url_template"]
    datasets = {}
    for entry in doc["datasets"]:
        flag = entry["flag"]
        files = {
            int(size): ReleaseFile(flag, int(size), f["file"], f["md5"], url_template.format(file=f["file"]))
            for size, f in entry["files"].items()
        }
        datasets[flag] = DatasetFacts(
            flag=flag,
            title=entry["title"],
            task=entry["task"],
            dims=entry["dims"],
            channels=entry["channels"],
            labels=tuple(entry["labels"]),
            split_counts=dict(entry["split_counts"]),
            license=entry["license"],
            description=entry["description"],
            source_collection=SourceCollection(**entry["source_collection"]),
            files=files,
        )
    return Catalog(
        about=doc["_about"],
        url_template=url_template,
        record=doc["release"]["record"],
        citations=dict(doc["citations"]),
        datasets=datasets,
    )


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    text = resources.files(__package__).joinpath("catalog.json").read_text(encoding="utf-8")
    return _parse(json.loads(text))


def dataset(flag: str) -> DatasetFacts:
    return load_catalog()[flag]
