"""``medmnist-plus audit``: exact and near duplicates of a config, within and across splits (train/test leakage).

Every row is read once and reduced to a 16-byte BLAKE2b digest of its pixels (exact duplicates: identical digests,
i.e. identical pixels) and a small signature (near duplicates: see :mod:`.near_duplicates`); the images are not
kept, so memory is a few hundred bytes per row. Rows come from wherever the other tools read them:

- a **release file** (the official one in ``data_dir``, ``~/.medmnist`` or the download cache, or a file made by
  ``regenerate`` or ``derive``): read straight from the ``.npz`` in chunks, no build needed;
- a **local build** (``build=True``, or ``source="raw"``: regenerated from a raw collection): its Arrow cache;
- an **exported folder** or a **Hub repo**: its Parquet shards, streamed.

While one chunk is reduced, the next is read (inflated or PNG-decoded) in the main thread: zlib, PNG decoding,
BLAKE2b and the numpy reductions release the GIL, so on two cores the audit runs at about the speed of reading.

A *group* is a set of rows with identical pixels (``exact``), or a connected set of distinct images within the near
threshold of each other (``near``; all rows of those images). Each group lists its members (``split``, ``index``,
``label``) and says whether it spans splits (``cross_split``: leakage between train, validation and test) and
whether its labels differ (``label_conflict``).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from ..catalog import SPLITS, ConfigRef, DatasetFacts, config_ref
from ..errors import MedMNISTPlusError
from . import near_duplicates as near

SHOWN = 10  # groups of each kind printed (the JSON has them all)
METRIC = (f"mean absolute difference of {near.GRID}-per-axis block-mean thumbnails, each normalized to zero mean "
          "and unit standard deviation")


class AuditError(MedMNISTPlusError, ValueError):
    """An audit that cannot run as asked (a bad threshold, an empty source)."""


@dataclass
class Group:
    kind: str  # "exact" or "near"
    members: List[dict]  # {"split", "index", "label"[, "distance"]}
    cross_split: bool
    label_conflict: bool
    max_distance: Optional[float] = None  # near: the largest distance of the links that join the group

    def to_json(self) -> dict:
        out = {"kind": self.kind, "rows": len(self.members), "cross_split": self.cross_split,
               "label_conflict": self.label_conflict}
        if self.max_distance is not None:
            out["max_distance"] = round(self.max_distance, 4)
        out["members"] = self.members
        return out

    def describe(self) -> str:
        flags = [name for name, on in (("CROSS-SPLIT", self.cross_split), ("LABEL CONFLICT", self.label_conflict))
                 if on]
        shown = ", ".join(f"{m['split']}[{m['index']}] label {m['label']}" for m in self.members[:6])
        more = f", ... ({len(self.members)} rows)" if len(self.members) > 6 else ""
        distance = f" (d <= {self.max_distance:.3f})" if self.max_distance is not None else ""
        return f"{self.kind}{distance}{' ' + ' '.join(flags) if flags else ''}: {shown}{more}"


@dataclass
class AuditReport:
    config: str
    source: str
    rows: Dict[str, int]
    threshold: float  # 0: near search off
    exact: List[Group] = field(default_factory=list)
    near: List[Group] = field(default_factory=list)
    flat_rows: int = 0
    compared_pairs: int = 0
    near_complete: bool = True

    def counts(self) -> Dict[str, int]:
        out = {}
        for kind, groups in (("exact", self.exact), ("near", self.near)):
            out[f"{kind}_groups"] = len(groups)
            out[f"{kind}_rows"] = sum(len(g.members) for g in groups)
            out[f"{kind}_cross_split"] = sum(g.cross_split for g in groups)
            out[f"{kind}_label_conflict"] = sum(g.label_conflict for g in groups)
        out["exact_redundant_rows"] = sum(len(g.members) - 1 for g in self.exact)  # rows beyond the first copy
        return out

    @property
    def leaks(self) -> bool:
        return any(g.cross_split for g in self.exact + self.near)

    @property
    def exit_code(self) -> int:
        return 1 if self.leaks else 0

    def to_json(self) -> dict:
        return {
            "config": self.config,
            "source": self.source,
            "rows": self.rows,
            "near_search": {"threshold": self.threshold, "enabled": self.threshold > 0, "metric": METRIC,
                            "grid": near.GRID, "flat_rows_skipped": self.flat_rows,
                            "compared_pairs": self.compared_pairs, "complete": self.near_complete},
            "summary": self.counts(),
            "exact_groups": [g.to_json() for g in self.exact],
            "near_groups": [g.to_json() for g in self.near],
        }

    def summary(self) -> str:
        c = self.counts()
        text = (f"{self.config}: {sum(self.rows.values()):,} rows; {c['exact_groups']:,} exact-duplicate groups "
                f"({c['exact_rows']:,} rows, {c['exact_cross_split']:,} across splits, {c['exact_label_conflict']:,} "
                f"with conflicting labels)")
        if self.threshold > 0:
            text += (f"; {c['near_groups']:,} near-duplicate groups at d <= {self.threshold:g} ({c['near_rows']:,} "
                     f"rows, {c['near_cross_split']:,} across splits, {c['near_label_conflict']:,} with conflicting "
                     "labels)")
        return text + "."


Chunk = Tuple[np.ndarray, np.ndarray, np.ndarray]  # official indices, labels, pixels (n x row shape, uint8)


def _labels(facts: DatasetFacts, labels) -> np.ndarray:
    labels = np.asarray(labels)
    if facts.is_multilabel:
        return labels.reshape(len(labels), -1).astype(np.uint8)
    return labels.reshape(-1).astype(np.int64)


def _release_chunks(path: str, split: str, facts: DatasetFacts, index_dir: Optional[str]) -> Iterator[Chunk]:
    from ..release.reader import ReleaseArchive

    with ReleaseArchive(path, index_dir) as archive:
        for index, labels, pixels in archive.split_chunks(split):
            yield index, _labels(facts, labels), pixels


def _opened_chunks(opened) -> Iterator[Chunk]:
    for rows in opened.batches(batch_size=64):
        yield rows.index, _labels(opened.facts, rows.label), np.stack(rows.pixels)


def _reduce(chunk: Chunk, signer: Optional[near.Signer]):
    index, labels, pixels = chunk
    pixels = np.ascontiguousarray(pixels)
    digests = np.frombuffer(b"".join(hashlib.blake2b(row, digest_size=16).digest() for row in pixels),
                            dtype=np.uint8).reshape(len(pixels), 16)
    z, sigma = signer.sign(pixels) if signer is not None else (None, None)
    return index, labels, digests, z, sigma


class _Collected:
    """What is kept of the rows: per row its split, index, label, digest and (near search) signature."""

    def __init__(self):
        self.parts: Dict[str, list] = {"split": [], "index": [], "label": [], "digest": [], "z": [], "sigma": []}

    def add(self, split_number: int, reduced) -> None:
        index, labels, digests, z, sigma = reduced
        self.parts["split"].append(np.full(len(index), split_number, dtype=np.int8))
        for name, value in zip(("index", "label", "digest", "z", "sigma"), (index, labels, digests, z, sigma)):
            if value is not None:
                self.parts[name].append(value)

    def arrays(self) -> Dict[str, np.ndarray]:
        return {name: np.concatenate(parts) for name, parts in self.parts.items() if parts}


def _read(chunks: Iterator[Chunk], split_number: int, collected: _Collected, signer, pool, progress, what) -> int:
    """Reduce the chunks in ``pool`` while the next one is read here: the two overlap (at most 2 chunks ahead)."""
    pending, rows = [], 0
    for chunk in chunks:
        pending.append(pool.submit(_reduce, chunk, signer))
        if len(pending) > 2:
            reduced = pending.pop(0).result()
            collected.add(split_number, reduced)
            rows += len(reduced[0])
            if progress:
                progress(f"{what}: {rows:,} rows audited")
    for future in pending:
        reduced = future.result()
        collected.add(split_number, reduced)
        rows += len(reduced[0])
    return rows


def _label_json(facts: DatasetFacts, label):
    return [int(v) for v in label] if facts.is_multilabel else int(label)


def _member(facts: DatasetFacts, data: Dict[str, np.ndarray], row: int) -> dict:
    return {"split": SPLITS[data["split"][row]], "index": int(data["index"][row]),
            "label": _label_json(facts, data["label"][row])}


def _group(kind: str, facts: DatasetFacts, data: Dict[str, np.ndarray], rows: np.ndarray,
           distances: bool = False, **extra) -> Group:
    """The group of ``rows``, members in split and index order; ``distances``: give each member's distance to the
    first member (near groups; an identical copy shows 0)."""
    rows = rows[np.lexsort((data["index"][rows], data["split"][rows]))]
    labels = data["label"][rows]
    conflict = bool((labels != labels[0]).any())
    members = [_member(facts, data, row) for row in rows]
    if distances:
        for member, distance in zip(members, near.distances_to(data["z"], rows, data["z"][rows[0]])):
            member["distance"] = round(float(distance), 4)
    return Group(kind, members, cross_split=len(set(data["split"][rows].tolist())) > 1, label_conflict=conflict,
                 **extra)


def _order(groups: List[Group]) -> List[Group]:
    return sorted(groups, key=lambda g: (not g.cross_split, not g.label_conflict, SPLITS.index(g.members[0]["split"]),
                                         g.members[0]["index"]))


def find_groups(facts: DatasetFacts, data: Dict[str, np.ndarray], signer: Optional[near.Signer],
                threshold: float) -> Tuple[List[Group], List[Group], dict]:
    """Exact groups (identical digests) and near groups (distinct images within ``threshold``) of the rows."""
    keys = data["digest"].view(np.dtype((np.void, 16))).ravel()
    _, first, image, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    image = image.ravel()
    by_image = np.argsort(image, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(counts)])
    exact = [_group("exact", facts, data, by_image[bounds[k]:bounds[k + 1]]) for k in np.flatnonzero(counts > 1)]
    stats = {"flat_rows": 0, "compared_pairs": 0, "complete": True}
    groups = []
    if signer is not None and threshold > 0:
        flat = data["sigma"][first] < near.FLAT_SIGMA
        stats["flat_rows"] = int(counts[flat].sum())
        nodes = np.flatnonzero(~flat)  # one node per distinct, non-flat image
        z = data["z"][first[nodes]]
        found = near.search(signer, z, threshold)
        stats.update(compared_pairs=found.compared, complete=found.complete)
        root = near.components(len(nodes), found.pairs_i, found.pairs_j)
        sizes = np.bincount(root, minlength=len(nodes))
        worst = np.zeros(len(nodes), dtype=np.float32)
        np.maximum.at(worst, root[found.pairs_i], found.distance)
        by_root = np.argsort(root, kind="stable")
        starts = np.concatenate([[0], np.cumsum(sizes)])
        for component in np.flatnonzero(sizes > 1):
            members = by_root[starts[component]:starts[component + 1]]  # its nodes
            rows = np.concatenate([by_image[bounds[image_id]:bounds[image_id + 1]] for image_id in nodes[members]])
            groups.append(_group("near", facts, data, rows, distances=True, max_distance=float(worst[component])))
    return _order(exact), _order(groups), stats


def audit(config: Union[str, ConfigRef], *, data_dir: Optional[str] = None, repo: Optional[str] = None, cache_dir: Optional[str] = None,
          source: str = "official", manifest: Optional[str] = None, build: bool = False, no_checks: bool = False,
          threshold: float = near.DEFAULT_THRESHOLD, progress=None) -> AuditReport:
    """Audit ``config`` from ``repo`` (Hub id or exported folder), ``data_dir`` (release file or export), the local
    build (``build=True`` or ``source="raw"``) or the release file found like ``build`` finds it."""
    from .rows import is_exported_folder, open_split

    if not 0 <= threshold <= 1:
        raise AuditError(f"--near must be between 0 (no near-duplicate search) and 1 (got {threshold}); the default "
                         f"{near.DEFAULT_THRESHOLD} is explained in the README (`audit`).")
    ref = config_ref(config)  # parsed once (or given parsed), passed on
    facts, size, config = ref.facts, ref.size, ref.name
    signer = near.Signer(facts.image_shape(size), facts.dims) if threshold > 0 else None
    collected, rows, where = _Collected(), {}, [""]
    remote = repo is not None or is_exported_folder(data_dir, config)
    if remote or build or source != "official":
        def chunks_of(split):
            opened = open_split(ref, split, data_dir=data_dir, repo=repo, cache_dir=cache_dir, source=source,
                                manifest=manifest, build=True, no_checks=no_checks)
            where[0] = f"{opened.kind} {opened.where}"
            return _opened_chunks(opened)
    else:
        path, index_dir, where[0] = _release_file(ref, data_dir, cache_dir, no_checks)

        def chunks_of(split):
            return _release_chunks(path, split, facts, index_dir)
    with ThreadPoolExecutor(max_workers=1) as pool:
        for number, split in enumerate(SPLITS):
            rows[split] = _read(chunks_of(split), number, collected, signer, pool, progress, f"{config} {split}")
    if not sum(rows.values()):
        raise AuditError(f"{config} from {where[0]}: no rows; there is nothing to audit.")
    exact, groups, stats = find_groups(facts, collected.arrays(), signer, threshold)
    return AuditReport(config, where[0], rows, threshold, exact, groups, stats["flat_rows"], stats["compared_pairs"],
                       stats["complete"])


def _release_file(config: ConfigRef, data_dir, cache_dir, no_checks: bool) -> Tuple[str, str, str]:
    """The release file the builder would read (official, regenerated or derived), its header checked."""
    from .. import builder_for
    from ..release.reader import check_release

    kwargs = {"data_dir": data_dir, "cache_dir": cache_dir}
    instance = builder_for(config, **{k: v for k, v in kwargs.items() if v is not None})
    found = instance.make_source(strict=not no_checks)
    check_release(found.path, found.facts, found.size, strict=not no_checks)
    what = found.describe()
    if no_checks and not found.regenerated:  # its MD5 and counts were not required to be the official ones
        what = "release file (read with --no-checks: not verified as the official one)"
    return found.path, found.index_dir, f"{what} {found.path}"


def write_json(report: AuditReport, path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path + ".partial", "w", encoding="utf-8") as f:
        json.dump(report.to_json(), f, indent=1)
        f.write("\n")
    os.replace(path + ".partial", path)


def print_report(report: AuditReport, out=None, shown: int = SHOWN) -> None:
    import sys

    out = out or sys.stdout
    print(f"audit {report.config} ({report.source})", file=out)
    print("  rows: " + ", ".join(f"{split} {count:,}" for split, count in report.rows.items()), file=out)
    for kind, groups in (("exact", report.exact), ("near", report.near)):
        if groups:
            print(f"  {kind} groups ({min(shown, len(groups))} of {len(groups):,} shown):", file=out)
            for group in groups[:shown]:
                print(f"    {group.describe()}", file=out)
    if report.threshold > 0:
        if report.flat_rows:
            print(f"  note: {report.flat_rows:,} flat rows (blank) left out of the near search", file=out)
        if not report.near_complete:
            print(f"  note: the near search stopped after {report.compared_pairs:,} comparisons (too many rows alike); "
                  "near groups are incomplete: lower --near", file=out)
    else:
        print("  near-duplicate search off (--near 0)", file=out)
    print(report.summary(), file=out)
    verdict = "LEAK: duplicates across splits (exit status 1)" if report.leaks else "no duplicates across splits"
    print(verdict, file=out)


def stored_duplicate_counts(config: Union[str, ConfigRef], dataset) -> Dict[str, int]:
    """Exact-duplicate counts of a built or exported ``DatasetDict`` (for the dataset card), as ``audit --near 0``
    counts them but without decoding: each row's stored value is digested (a 2D image's PNG bytes, which one build
    encodes deterministically from the pixels, so equal bytes mean equal pixels and the reverse; raw arrays and
    volumes as they are)."""
    from .rows import _labels as arrow_labels
    from .rows import _pixels

    facts, size = config_ref(config)
    column = "volume" if facts.dims == 3 else "image"
    collected = _Collected()
    for number, split in enumerate(SPLITS):
        if split not in dataset:
            continue
        tables = dataset[split].select_columns(["index", "label", column]).with_format("arrow")
        for table in tables.iter(batch_size=256):
            values = table.column(column).combine_chunks()
            storage = values.storage if hasattr(values, "storage") else values
            if hasattr(storage.type, "get_field_index") and storage.type.get_field_index("bytes") >= 0:
                stored = [value or b"" for value in storage.field("bytes").to_pylist()]  # PNG bytes
            else:
                stored = [np.ascontiguousarray(p) for p in _pixels(values, facts, size)]
            digests = np.frombuffer(b"".join(hashlib.blake2b(v, digest_size=16).digest() for v in stored),
                                    dtype=np.uint8).reshape(len(stored), 16)
            index = table.column("index").to_numpy().astype(np.int64)
            labels = _labels(facts, arrow_labels(table.column("label"), facts))
            collected.add(number, (index, labels, digests, None, None))
    if not collected.parts["index"]:
        return {"groups": 0, "rows": 0, "cross_split": 0, "label_conflict": 0}
    exact, _, _ = find_groups(facts, collected.arrays(), None, 0.0)
    return {"groups": len(exact), "rows": sum(len(g.members) for g in exact),
            "cross_split": sum(g.cross_split for g in exact), "label_conflict": sum(g.label_conflict for g in exact)}
