"""``align``: recover each raw record's official split and index by regenerating it at the size of an official
release file and matching it: exact pixel matches first (a hash of the bytes), then the nearest official image of the
same label within a tolerance. Duplicate images and leftovers are reported, not guessed silently.
"""

from __future__ import annotations

import csv
import hashlib
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..catalog import SPLITS, DatasetFacts
from ..errors import ReleaseFileError
from ..hf.registry import all_recipes, recipe_for
from ..recipes.base import Assigned, RawRecord, label_array, write_manifest
from ..release.reader import ReleaseArchive, member_name
from .regenerate import CHUNK_ROWS_BYTES, render, variants_for


def pixel_digest(pixels: np.ndarray) -> bytes:
    array = np.ascontiguousarray(pixels, dtype=np.uint8)
    return hashlib.blake2b(array.tobytes(), digest_size=16, person=str(array.shape).encode()[:16]).digest()


def release_size(facts: DatasetFacts, release: str) -> int:
    with ReleaseArchive(release) as archive:
        header = archive.header(member_name("train", "images"))
    size = header.shape[1] if len(header.shape) > 1 else 0
    if facts.image_shape(size) != header.shape[1:]:
        raise ReleaseFileError(f"{release}: train_images has shape {header.shape}, which is not {facts.title} at "
                               "any size. Pass the official release file of this dataset.")
    return size


@dataclass
class AlignReport:
    matched: List[Tuple[Assigned, str, float]]  # (assignment, "exact"|"nearest"|"ambiguous", mean abs difference)
    unmatched: List[Tuple[RawRecord, str, float]]  # (record, why, distance to the nearest same-label row)
    missing_rows: int  # official rows no record matched
    size: int
    seconds: float = 0.0

    def count(self, kind: str) -> int:
        return sum(1 for _, how, _ in self.matched if how == kind)

    def summary(self) -> str:
        return (f"Aligned {len(self.matched):,} records at {self.size} px in {self.seconds:.1f} s: "
                f"{self.count('exact'):,} exact, {self.count('nearest'):,} nearest, {self.count('ambiguous'):,} "
                f"ambiguous (identical official rows), {len(self.unmatched):,} unmatched; {self.missing_rows:,} "
                "official rows without a record")


def _release_rows(release: str, facts: DatasetFacts) -> Iterator[Tuple[str, int, np.ndarray, Any]]:
    """Every row of a release file: (split, index, pixels, label), streamed."""
    with ReleaseArchive(release) as archive:
        for split in SPLITS:
            for indices, labels, chunk in archive.split_chunks(split):
                for index, pixels, label in zip(indices.tolist(), chunk, labels):
                    yield split, index, pixels, _label_key(facts, label)


def _label_key(facts: DatasetFacts, label) -> Any:
    row = np.asarray(label).reshape(-1)
    return tuple(int(v) for v in row) if facts.is_multilabel else int(row[0])


def align(flag: str, data_dir, release, out=None, num_proc: int = 1, tolerance: float = 2.0,
          variant: Optional[str] = None, progress: bool = False) -> AlignReport:
    """Recover the official split and index of each raw record by matching it against ``release``.

    Each record is regenerated at the release's size; an exact pixel match with the same label is taken first;
    records left over are compared with every official row of their label (chunked, bounded memory) and take the
    nearest within ``tolerance`` (mean absolute difference in gray levels). With ``out``, writes the manifest
    there and a report of every record that is not an exact match beside it (``<out>.report.csv``).
    """
    started = time.perf_counter()
    recipe = recipe_for(flag)
    facts = recipe.facts
    release = str(release)
    size = release_size(facts, release)
    root = recipe.find_root(data_dir, all_recipes())
    records = sorted(recipe.records(root), key=lambda r: r.record)
    variants = variants_for(recipe, [size], variant)
    # 1. the official rows by hash (digests only: 16 bytes a row)
    by_digest: Dict[bytes, List[Tuple[str, int, Any]]] = {}
    for split, index, pixels, label in _release_rows(release, facts):
        by_digest.setdefault(pixel_digest(pixels), []).append((split, index, label))
    # 2. the records, regenerated at the release's size
    items = [Assigned("train", i, r) for i, r in enumerate(records)]
    taken: Dict[Tuple[str, int], str] = {}
    matched: List[Tuple[Assigned, str, float]] = []
    leftovers: List[Tuple[RawRecord, np.ndarray]] = []
    unmatched: List[Tuple[RawRecord, str, float]] = []
    for result in render(flag, root, items, [size], variants, num_proc, skip_bad=True,
                         progress="Regenerating records" if progress else None):
        record = result.item.record
        if result.error is not None:
            unmatched.append((record, f"unreadable: {result.error}", float("nan")))
            continue
        pixels = result.pixels[size]
        if pixels is None:
            unmatched.append((record, "blank output (MedMNIST dropped blank samples)", float("nan")))
            continue
        candidates = by_digest.get(pixel_digest(pixels), [])
        same_label = [c for c in candidates if c[2] == _label_key(facts, label_array(facts, record.label))]
        free = [c for c in same_label if (c[0], c[1]) not in taken]
        if free:
            split, index, _ = free[0]
            taken[(split, index)] = record.record
            matched.append((Assigned(split, index, record), "ambiguous" if len(same_label) > 1 else "exact", 0.0))
        else:
            leftovers.append((record, pixels))
    # 3. nearest official row of the same label for the rest
    if leftovers:
        for (record, pixels), best in zip(leftovers, _nearest(release, facts, leftovers, taken)):
            distance, split, index, ties = best
            if split is not None and distance <= tolerance and (split, index) not in taken:
                taken[(split, index)] = record.record
                matched.append((Assigned(split, index, record), "ambiguous" if ties > 1 else "nearest", distance))
            else:
                why = "no official row of its label within the tolerance" if split is not None else \
                    "no official row of its label"
                unmatched.append((record, why, distance))
    total_rows = sum(len(v) for v in by_digest.values())
    report = AlignReport(matched, unmatched, total_rows - len(taken), size)
    if out is not None:
        write_manifest(out, [a for a, _, _ in matched], facts)
        _write_align_report(f"{out}.report.csv", report)
    report.seconds = time.perf_counter() - started
    return report


def _nearest(release: str, facts: DatasetFacts, leftovers: List[Tuple[RawRecord, np.ndarray]],
             taken: Dict[Tuple[str, int], str], batch: int = 1024) -> List[Tuple[float, Optional[str], int, int]]:
    """For each leftover: (mean abs difference, split, index, ties) of its nearest free official row of its label."""
    results: List[Tuple[float, Optional[str], int, int]] = []
    for start in range(0, len(leftovers), batch):
        group = leftovers[start:start + batch]
        queries = np.stack([p.reshape(-1) for _, p in group]).astype(np.float32)
        query_labels = [_label_key(facts, label_array(facts, r.label)) for r, _ in group]
        wanted_labels = set(query_labels)
        best = [(float("inf"), None, -1, 0)] * len(group)
        rows, meta = [], []

        def flush():
            if not rows:
                return
            block = np.stack(rows).astype(np.float32)
            # mean absolute difference, block by block: (queries x rows) without a (queries x rows x pixels) array
            for qi, query in enumerate(queries):
                same = [i for i, m in enumerate(meta) if m[2] == query_labels[qi]]
                if not same:
                    continue
                distances = np.abs(block[same] - query).mean(axis=1)
                position = int(np.argmin(distances))
                value = float(distances[position])
                ties = int(np.sum(distances == value))
                if value < best[qi][0]:
                    split, index, _ = meta[same[position]]
                    best[qi] = (value, split, index, ties)
                elif value == best[qi][0]:
                    best[qi] = best[qi][:3] + (best[qi][3] + ties,)
            rows.clear()
            meta.clear()

        for split, index, pixels, label in _release_rows(release, facts):
            if (split, index) in taken or label not in wanted_labels:
                continue
            rows.append(pixels.reshape(-1))
            meta.append((split, index, label))
            if len(rows) * pixels.size >= CHUNK_ROWS_BYTES:
                flush()
        flush()
        results.extend(best)
    return results


def _write_align_report(path: str, report: AlignReport) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["record", "status", "split", "index", "mean_abs_difference", "note"])
        for assigned, how, distance in report.matched:
            if how != "exact":
                note = "identical official rows exist; any of them holds the same pixels" if how == "ambiguous" else ""
                writer.writerow([assigned.record.record, how, assigned.split, assigned.index, f"{distance:.3f}", note])
        for record, why, distance in report.unmatched:
            writer.writerow([record.record, "unmatched", "", "", f"{distance:.3f}", why])
