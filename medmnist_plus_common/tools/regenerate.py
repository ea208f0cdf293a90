"""``regenerate``: release files rebuilt from a raw collection with the dataset's recipe.

Each source record is decoded once and every requested size is written as a release file in the official format
(``<flag>.npz`` for 28, ``<flag>_<size>.npz`` otherwise; :mod:`..release.writer`), with bounded memory, plus the
manifest it used and a provenance file. The files load with ``np.load``, the official ``medmnist`` package (official
sizes) and our builders (``data_dir=<out>``, labelled regenerated).

Rendering is parallel (``num_proc``): records go to worker processes in order, results come back in order; the
workers also deflate each row, so writing the files does not serialize the processes. With one process the rows go
raw into each file's own deflate stream (no per-row stream to start and flush). :func:`render` is shared with
``align`` and ``calibrate``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..catalog import SPLITS, DatasetFacts
from ..errors import RawRecordError, RawSourceError, without_skip_advice
from ..hf.registry import all_recipes, recipe_for
from ..recipes.base import Assigned, Variant, check_split_counts, label_array, parse_variant, plan_records, write_manifest
from ..release.reader import member_name
from ..hf.sources import write_regenerated_provenance
from ..release.writer import DeflatedRow, StreamedRelease, deflate_library, release_file_name

logger = logging.getLogger(__name__)

CHUNK_ROWS_BYTES = 16 * 2**20


# -- rendering, in parallel --------------------------------------------------------------------------------


@dataclass
class Rendered:
    item: Assigned
    pixels: Dict[int, Any]  # size -> release row (a DeflatedRow when rendered with deflate), None when blank
    error: Optional[str] = None  # a bad record's message (only when skipping bad records)


def _render_job(job):
    """Render one record at every size; with ``deflate``, each row comes back as a :class:`DeflatedRow`."""
    flag, root, record, sizes, variants, skip_bad, deflate = job
    recipe = recipe_for(flag)
    try:
        loaded = recipe.load(Path(root), record)
        pixels = {size: recipe.render(loaded, size, variants[size]) for size in sizes}
    except RawRecordError as err:
        if not skip_bad:
            raise
        return {}, without_skip_advice(str(err))  # reported as skipped: no advice to skip it
    if deflate:
        pixels = {size: None if row is None else DeflatedRow.of(np.ascontiguousarray(row, dtype=np.uint8).tobytes())
                  for size, row in pixels.items()}
    return pixels, None


def render(flag: str, root: Path, items: Sequence[Assigned], sizes: Sequence[int], variants: Dict[int, Variant],
           num_proc: int = 1, skip_bad: bool = False, progress: Optional[str] = None,
           deflate: bool = False) -> Iterator[Rendered]:
    """Render ``items`` at every size (each record read once), in order, with ``num_proc`` processes.

    ``deflate``: the workers also compress each row (:class:`DeflatedRow`), for :func:`regenerate`'s files.
    """
    jobs = ((flag, str(root), item.record, tuple(sizes), variants, skip_bad, deflate) for item in items)
    bar = _progress(len(items), progress)
    try:
        if num_proc and num_proc > 1 and len(items) > 1:
            context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
            # records go 16 at a time (less pool traffic), fewer when there are few, so every worker gets some
            chunksize = max(1, min(16, len(items) // (4 * num_proc)))
            with context.Pool(num_proc) as pool:
                for item, (pixels, error) in zip(items, pool.imap(_render_job, jobs, chunksize=chunksize)):
                    bar.update(1)
                    yield Rendered(item, pixels, error)
        else:
            for item, job in zip(items, jobs):
                pixels, error = _render_job(job)
                bar.update(1)
                yield Rendered(item, pixels, error)
    finally:
        bar.close()


def _progress(total: int, desc: Optional[str]):
    from datasets.utils import tqdm as hf_tqdm

    return hf_tqdm(total=total, desc=desc or "Rendering", unit=" records", disable=desc is None)


def variants_for(recipe, sizes: Iterable[int], variant_text: Optional[str]) -> Dict[int, Variant]:
    try:
        return {size: parse_variant(recipe.default_variant(size), variant_text) for size in sizes}
    except ValueError as err:
        raise RawSourceError(str(err)) from None


def _check_sizes(facts: DatasetFacts, sizes: Sequence[int]) -> List[int]:
    from ..recipes.base import MAX_SIZE, MIN_SIZE

    sizes = sorted(set(int(s) for s in sizes))
    bad = [s for s in sizes if not MIN_SIZE <= s <= MAX_SIZE]
    if not sizes or bad:
        raise RawSourceError(f"Sizes {bad or sizes}: {facts.title} can be regenerated at {MIN_SIZE} to {MAX_SIZE} px "
                             f"(official sizes: {', '.join(map(str, facts.sizes))}).")
    return sizes


def library_versions() -> Dict[str, str]:
    from importlib import metadata

    versions = {}
    for name in ("medmnist-plus", "numpy", "pillow", "scipy", "nibabel", "trimesh", "pymeshfix"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


# -- regenerate --------------------------------------------------------------------------------------------


@dataclass
class RegenerateReport:
    files: Dict[int, str]
    counts: Dict[str, int]
    skipped: List[str] = field(default_factory=list)
    blank: List[str] = field(default_factory=list)
    official_indices: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        rows = sum(self.counts.values())
        text = (f"Regenerated {rows:,} rows ({' / '.join(f'{self.counts[s]:,}' for s in SPLITS)}) at "
                f"{', '.join(str(s) for s in sorted(self.files))} px in {self.seconds:.1f} s")
        if self.skipped:
            text += f"; {len(self.skipped)} bad record(s) skipped"
        if self.blank:
            text += f"; {len(self.blank)} blank output(s) dropped"
        return text + ("" if self.official_indices else "; NOT the official indices (no manifest)")


def regenerate(flag: str, data_dir, sizes: Sequence[int], out_dir, manifest=None, num_proc: int = 1,
               skip_bad: bool = False, variant: Optional[str] = None, no_checks: bool = False,
               seed: int = 0, progress: bool = False) -> RegenerateReport:
    """Write release files of ``flag`` at ``sizes`` from the raw collection in ``data_dir`` into ``out_dir``."""
    started = time.perf_counter()
    recipe = recipe_for(flag)
    facts = recipe.facts
    sizes = _check_sizes(facts, sizes)
    plan = plan_records(recipe, data_dir, manifest, seed, skip_bad, all_recipes())
    check_split_counts(plan, facts, strict=not no_checks, where=str(plan.root))
    variants = variants_for(recipe, sizes, variant)
    deflate_library()  # ISA-L or zlib chosen (and a missing isal said) once, before num_proc workers fork
    out_dir = Path(os.path.expanduser(str(out_dir)))
    out_dir.mkdir(parents=True, exist_ok=True)
    report = RegenerateReport(files={}, counts={}, skipped=list(plan.skipped), official_indices=plan.official_indices)
    planned = plan.counts()
    parallel = bool(num_proc and num_proc > 1)  # workers deflate each row; one process deflates each file's stream
    streamed = {size: StreamedRelease(str(out_dir / release_file_name(facts, size)), facts, size, planned,
                                      precompressed=parallel)
                for size in sizes}
    try:
        labels: Dict[str, List[np.ndarray]] = {split: [] for split in SPLITS}
        indices: Dict[str, List[int]] = {split: [] for split in SPLITS}
        kept: List[Assigned] = []
        current = None
        # One pool for every split: workers render records in order while this process appends the rows to each
        # release file as they arrive.
        items = [item for split in SPLITS for item in plan.split(split)]
        for result in render(flag, plan.root, items, sizes, variants, num_proc, skip_bad,
                             progress=facts.title if progress else None, deflate=parallel):
            split = result.item.split
            while current != split:
                current = _next_split(current, streamed)
            if result.error is not None:
                report.skipped.append(result.error)
                continue
            if any(result.pixels[size] is None for size in sizes):
                report.blank.append(result.item.record.record)
                continue
            for size in sizes:
                streamed[size].write(result.pixels[size])  # deflated by a worker, or an array deflated here
            labels[split].append(label_array(facts, result.item.record.label))
            indices[split].append(result.item.index)
            kept.append(result.item)
        while current != SPLITS[-1]:
            current = _next_split(current, streamed)
        for release in streamed.values():
            release.end_split()
        report.counts = {split: len(labels[split]) for split in SPLITS}
        for size in sizes:
            # a record dropped after its split's header was written: finish writes the file again, right counts
            report.files[size] = streamed[size].finish(_label_and_index_members(facts, labels, indices))
        manifest_out = out_dir / f"{flag}_manifest.csv"
        write_manifest(manifest_out, kept, facts)
        write_regenerated_provenance(out_dir, {
            os.path.basename(path): {
                "source": "regenerated", "collection": recipe.collection, "data_dir": str(plan.root),
                "manifest": str(manifest) if manifest else None, "manifest_written": manifest_out.name,
                "official_indices": plan.official_indices, "indices": plan.how, "size": size,
                "recipe": recipe.parameters(variants[size]), "versions": library_versions(),
                "skipped": report.skipped, "blank": report.blank, "verified": False,
            } for size, path in report.files.items()})
    finally:
        for release in streamed.values():
            release.discard()
    for problem in report.skipped:
        logger.warning("Skipped: %s", problem)
    for record in report.blank:
        logger.warning("Dropped %s: its output is blank.", record)
    report.seconds = time.perf_counter() - started
    return report


def _next_split(current: Optional[str], streamed: Dict[int, "StreamedRelease"]) -> str:
    """End ``current``'s image members and begin the next split's (splits without records get empty members)."""
    following = SPLITS[0] if current is None else SPLITS[SPLITS.index(current) + 1]
    for release in streamed.values():
        release.end_split()
        release.begin_split(following)
    return following


def _label_and_index_members(facts: DatasetFacts, labels: Dict[str, List[np.ndarray]],
                             indices: Dict[str, List[int]]) -> Dict[str, Tuple]:
    """The label members (official order) and, where the indices are not 0..n-1 (a partial manifest), index members.

    Rows are stored densely, in index order; a ``<split>_index`` member keeps sparse official indices (np.load and
    the medmnist package ignore it, our readers use it).
    """
    members = {}
    for split in SPLITS:
        rows = np.stack(labels[split]) if labels[split] else np.zeros((0,) + facts.label_shape(), np.uint8)
        members[member_name(split, "labels")] = (rows.shape, [rows])
    for split in SPLITS:
        if indices[split] != list(range(len(indices[split]))):
            index_rows = np.asarray(indices[split], dtype=np.int64)
            members[member_name(split, "index")] = (index_rows.shape, [index_rows], np.int64)
    return members


