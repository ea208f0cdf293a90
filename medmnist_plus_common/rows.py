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
from typing import Iterator, List, Optional

import numpy as np

from .catalog import SPLITS, DatasetFacts, load_catalog
from .errors import MedMNISTPlusError

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


def open_split(config: str, split: str, *, data_dir: Optional[str] = None, repo: Optional[str] = None,
               cache_dir: Optional[str] = None, source: str = "official", build: bool = True,
               no_checks: bool = True, manifest: Optional[str] = None) -> SplitSource:
    """Open ``split`` of ``config`` from ``repo`` (Hub id or exported folder), ``data_dir`` or a local build.

    ``build=True`` reads a local release through the builder's Arrow cache (building it if needed, with
    ``verification_mode="no_checks"`` unless ``no_checks=False``: callers check counts themselves);
    ``build=False`` streams the rows straight out of the release file (no cache written). ``source="raw"``
    regenerates the rows from the raw collection in ``data_dir`` (``manifest``: their official split and index).
    """
    facts, size = load_catalog().parse_config_name(config, any_size=True)
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
    from . import builder_for

    kwargs = {"data_dir": data_dir, "cache_dir": cache_dir, "manifest": manifest}  # manifest: raw sources only
    if source != "official":
        kwargs["source"] = source
    try:
        instance = builder_for(config, **{k: v for k, v in kwargs.items() if v is not None})
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

    try:
        return datasets.load_dataset(location, config, split=split, streaming=True)
    except ValueError as err:  # unknown config or split
        raise SourceError(f"{location}: cannot read config {config!r}, split {split!r} ({err}). "
                          "Check the repo id or folder and that this config was published to it.") from None


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


class CommandError(MedMNISTPlusError, RuntimeError):
    """An unexpected failure of a command, reported as one paragraph (the traceback only with --verbose)."""


def friendly_errors(run):
    """Wrap a ``cmd_*`` so that an unexpected failure (a file that cannot be written, a broken Parquet file) is
    reported by ``main`` as one clear paragraph too; ``--verbose`` adds the traceback (``main`` prints it)."""
    import functools

    @functools.wraps(run)
    def wrapper(args):
        try:
            return run(args)
        except MedMNISTPlusError:
            raise
        except Exception as err:  # noqa: BLE001 (reported, not swallowed: exit status 2)
            if _hub_explains(err):
                raise  # main() says what to do about Hub failures
            raise CommandError(
                f"`{getattr(args, 'command', 'medmnist-plus')}` failed: {type(err).__name__}: {err}. "
                "Check the paths and names given; run with --verbose for the traceback."
            ) from err

    return wrapper


def _hub_explains(err: Exception) -> bool:
    try:
        from .hub_errors import explain
    except ImportError:
        return False
    try:
        return explain(err, None) is not None
    except Exception:  # noqa: BLE001
        return False


def add_verbose_flag(command) -> None:
    """``--verbose`` after the subcommand too (the top-level ``-v`` keeps working: SUPPRESS keeps its value)."""
    import argparse

    command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                         help="show what happens in detail, and the traceback of an error")


class Progress:
    """Progress on stderr (rows, bytes, files): rewritten in place on a terminal, a line every few seconds otherwise.

    ``update`` is throttled; ``done`` shows the last state if it was not shown yet and ends the line.
    """

    def __init__(self, stream=None, every: float = 2.0):
        import sys
        import time

        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = 0.2 if self.tty else every
        self._clock = time.monotonic
        self._last = None  # when a line was last shown
        self._shown = ""  # the text shown then
        self._latest = ""

    def note(self, text: str) -> None:
        self._end_line()
        print(text, file=self.stream, flush=True)

    def update(self, text: str) -> None:
        self._latest = text
        now = self._clock()
        if self._last is None or now - self._last >= self.every:
            self._show(text)
            self._last = now

    def done(self) -> None:
        if self._latest and self._latest != self._shown:
            self._show(self._latest)
        self._end_line()
        self._latest = self._shown = ""
        self._last = None

    def _show(self, text: str) -> None:
        if self.tty:
            print("\r" + text.ljust(79), end="", file=self.stream, flush=True)
        else:
            print(text, file=self.stream, flush=True)
        self._shown = text

    def _end_line(self) -> None:
        if self.tty and self._shown:
            print(file=self.stream, flush=True)
            self._shown = ""
