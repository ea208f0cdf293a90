"""Rows of one config and split, from wherever they live, in bounded-memory Arrow batches.

Used by ``evaluate``, ``verify`` and ``montage``. A *source* is one of:

- a **local build**: the official (or a local) release file, found like ``build`` finds it (``data_dir``,
  ``~/.medmnist``, the download cache), read through the builder (its Arrow cache, or streamed from the file);
- an **exported folder** (``medmnist-plus export``): ``data_dir`` or ``repo`` naming a folder that holds
  ``<config>/`` Parquet shards;
- a **Hub repo** (``repo="<namespace>/medmnist_plus"``): streamed, only the rows asked for are read.

Batches come as :class:`Rows`: ``index`` (int64), ``label`` (int64 class ids, or N x 14 uint8 for ChestMNIST)
and ``pixels``, one uint8 array per row in the release layout (H x W [x 3] or D x H x W), however it was stored.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Iterator, List, Optional, Union

import numpy as np

from ..catalog import SPLITS, ConfigRef, DatasetFacts, config_ref
from ..errors import MedMNISTPlusError

BATCH_ROWS = 64


class SourceError(MedMNISTPlusError, ValueError):
    """A source of rows that cannot be read: unknown split, missing config, unsupported source."""


@dataclass
class Rows:
    index: np.ndarray
    label: np.ndarray
    pixels: Optional[List[np.ndarray]]  # None when pixels were not asked for

    def __len__(self) -> int:
        return len(self.index)


@dataclass
class SplitSource:
    """One split of one config, opened: ``dataset`` is a ``datasets.Dataset`` or ``IterableDataset``."""

    config: str
    split: str
    facts: DatasetFacts
    size: int
    kind: str  # "local build", "local release (streamed)", "exported folder", "Hub repo"
    where: str
    dataset: object

    @property
    def features(self):
        return self.dataset.features

    @property
    def num_rows(self) -> Optional[int]:
        return getattr(self.dataset, "num_rows", None)

    def describe(self) -> str:
        return f"{self.config} {self.split} from {self.kind} {self.where}"

    def batches(self, batch_size: int = BATCH_ROWS, pixels: bool = True, limit: Optional[int] = None) -> Iterator[Rows]:
        """The split's rows in stored order, ``batch_size`` at a time (at most ``limit`` rows in all)."""
        column = "volume" if self.facts.dims == 3 else "image"
        columns = ["index", "label"] + ([column] if pixels else [])
        dataset = self.dataset.select_columns(columns).with_format("arrow")
        seen = 0
        if limit is not None and limit <= 0:
            return
        for table in dataset.iter(batch_size=batch_size):
            if limit is not None and seen + table.num_rows > limit:
                table = table.slice(0, limit - seen)
            seen += table.num_rows
            yield Rows(
                index=table.column("index").to_numpy().astype(np.int64),
                label=_labels(table.column("label"), self.facts),
                pixels=_pixels(table.column(column), self.facts, self.size) if pixels else None,
            )
            if limit is not None and seen >= limit:
                return  # before the stream reads on (a Hub repo: the next shard)


def split_name(split: str) -> str:
    """``val`` (the release's name) is accepted for ``validation``."""
    split = {"val": "validation"}.get(split, split)
    if split not in SPLITS:
        raise SourceError(f"Unknown split {split!r}; MedMNIST+ splits are {', '.join(SPLITS)} ('val' = validation).")
    return split


def is_exported_folder(path: Optional[str], config: str) -> bool:
    return bool(path) and os.path.isdir(os.path.join(os.path.expanduser(str(path)), config))


def open_split(config: Union[str, ConfigRef], split: str, *, data_dir: Optional[str] = None, repo: Optional[str] = None,
               cache_dir: Optional[str] = None, source: str = "official", build: bool = True,
               no_checks: bool = True, manifest: Optional[str] = None) -> SplitSource:
    """Open ``split`` of ``config`` from ``repo`` (Hub id or exported folder), ``data_dir`` or a local build.

    ``build=True`` reads a local release through the builder's Arrow cache (building it if needed, with
    ``verification_mode="no_checks"`` unless ``no_checks=False``: callers check counts themselves);
    ``build=False`` streams the rows straight out of the release file (no cache written). ``source="raw"``
    regenerates the rows from the raw collection in ``data_dir`` (``manifest``: their official split and index).
    """
    ref = config_ref(config)  # a name is parsed here once; callers may pass the ref
    facts, size, config = ref.facts, ref.size, ref.name
    split = split_name(split)
    if repo is not None or is_exported_folder(data_dir, config):
        location = repo if repo is not None else os.path.expanduser(str(data_dir))
        kind = "exported folder" if os.path.isdir(os.path.expanduser(str(location))) else "Hub repo"
        if kind == "exported folder":
            location = os.path.expanduser(str(location))
            if not os.path.isdir(os.path.join(location, config)):
                raise SourceError(f"{location}: has no folder {config}/; it is not an export of {config}. "
                                  f"Export it with `medmnist-plus export --out {location} --configs {config}`.")
        return SplitSource(config, split, facts, size, kind, location, _load_remote(location, config, split))
    from .. import builder_for

    kwargs = {"data_dir": data_dir, "cache_dir": cache_dir, "manifest": manifest}  # manifest: raw sources only
    if source != "official":
        kwargs["source"] = source
    try:
        instance = builder_for(ref, **{k: v for k, v in kwargs.items() if v is not None})
    except ValueError as err:
        if isinstance(err, MedMNISTPlusError):
            raise
        raise SourceError(f"{config}: cannot use source {source!r} ({err}). Use --source official, or a "
                          "release regenerated from the raw collections passed as a file.") from None
    where = data_dir or "(download cache)"
    if not build:
        return SplitSource(config, split, facts, size, "local release (streamed)", str(where),
                           instance.as_streaming_dataset(split=split))
    instance.download_and_prepare(verification_mode="no_checks" if no_checks else None)
    if split not in (instance.info.splits or {}):  # a build with no rows in this split (a raw subset)
        import datasets

        features = instance.info.features
        empty = datasets.Dataset.from_dict({name: [] for name in features}, features=features)
        return SplitSource(config, split, facts, size, "local build", instance.cache_dir, empty)
    return SplitSource(config, split, facts, size, "local build", instance.cache_dir, instance.as_dataset(split=split))


def _load_remote(location: str, config: str, split: str):
    import datasets

    if not os.path.isdir(location):
        check_hub_reachable(location)
    try:
        return datasets.load_dataset(location, config, split=split, streaming=True)
    except ValueError as err:  # unknown config or split
        raise SourceError(f"{location}: cannot read config {config!r}, split {split!r} ({err}). "
                          "Check the repo id or folder and that this config was published to it.") from None


HUB_CHECK_SECONDS = 10.0
READ_LOCALLY = ("Reading --repo needs the network: read an exported folder instead (--data-dir DIR, written by "
                "`medmnist-plus export`), or the local build (leave out --repo).")


def check_hub_reachable(repo: str) -> None:
    """Fail at once, saying so plainly, when the Hub cannot be reached for reasons that waiting cannot fix (offline
    mode, a host name that does not resolve, a refused connection): otherwise datasets retries for about 25 s and
    then blames the repo."""
    import socket
    import urllib.parse

    from ..hf import internals

    base = internals.current_endpoint().rstrip("/")  # the Hub datasets will ask, not a re-read of HF_ENDPOINT
    if internals.offline():
        raise SourceError(f"{repo}: offline mode is on (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE), so the Hub at {base} "
                          f"is not asked. {READ_LOCALLY}")
    parts = urllib.parse.urlsplit(base)
    host, port = parts.hostname or base, parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=HUB_CHECK_SECONDS).close()
    except socket.gaierror:
        raise SourceError(f"{repo}: cannot reach the Hub: the host name {host!r} of {base} cannot be resolved (you are "
                          f"offline, or HF_ENDPOINT is wrong). {READ_LOCALLY}") from None
    except ConnectionRefusedError:
        raise SourceError(f"{repo}: cannot reach the Hub at {base}: the connection was refused (nothing listens "
                          f"there; check HF_ENDPOINT). {READ_LOCALLY}") from None
    except OSError as err:  # a timeout, no route to the host
        raise SourceError(f"{repo}: cannot reach the Hub at {base} ({type(err).__name__}: {err}); you may be offline. "
                          f"Try again later. {READ_LOCALLY}") from None


def _labels(column, facts: DatasetFacts) -> np.ndarray:
    import pyarrow as pa

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if facts.is_multilabel:
        values = column.flatten().to_numpy(zero_copy_only=False)
        return values.reshape(len(column), facts.num_classes).astype(np.uint8)
    return column.to_numpy(zero_copy_only=False).astype(np.int64)


def _pixels(column, facts: DatasetFacts, size: int) -> List[np.ndarray]:
    """One uint8 array per row in the release layout, whether stored as PNG, raw C x H x W or Array3D."""
    import pyarrow as pa
    from PIL import Image

    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    storage = column.storage if isinstance(column, pa.ExtensionArray) else column
    if pa.types.is_struct(storage.type):  # datasets.Image: {"bytes", "path"}
        out = []
        for value in storage.to_pylist():
            data = value.get("bytes")
            image = Image.open(io.BytesIO(data)) if data is not None else Image.open(value["path"])
            out.append(np.asarray(image, dtype=np.uint8))
        return out
    values = storage
    while pa.types.is_list(values.type) or pa.types.is_fixed_size_list(values.type) or pa.types.is_large_list(values.type):
        values = values.flatten()
    flat = values.to_numpy(zero_copy_only=False).astype(np.uint8, copy=False)
    rows = len(storage)
    per_row = flat.size // max(rows, 1)
    if facts.dims == 3:
        array = flat.reshape((rows, size, size, size))
        return list(array)
    channels = per_row // (size * size)
    array = flat.reshape((rows, channels, size, size))  # raw storage: channels first
    return [row[0] if channels == 1 else row.transpose(1, 2, 0) for row in array]
