"""Regenerating release files from raw collections, and recovering and checking the official mapping.

- :func:`regenerate` decodes each source record once and writes every requested size as a release file in the
  official format (``<flag>.npz`` for 28, ``<flag>_<size>.npz`` otherwise), with bounded memory, plus the
  manifest it used and a provenance file. The files load with ``np.load``, the official ``medmnist`` package
  (official sizes) and our builders (``data_dir=<out>``, labelled regenerated).
- :func:`align` recovers each record's official split and index by regenerating it at the size of an official
  release file and matching it: exact pixel matches first (a hash of the bytes), then the nearest official image
  of the same label within a tolerance. Duplicate images and leftovers are reported, not guessed silently.
- :func:`calibrate` renders the records of a manifest with each candidate recipe variant and reports how close
  each comes to an official file: how a user with the official 64/128/224 px files settles the recipe there.

Rendering is parallel (``num_proc``): records go to worker processes in order, results come back in order.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .catalog import SPLITS, DatasetFacts
from .errors import RawRecordError, RawSourceError, ReleaseFileError
from .recipes import (Assigned, RawRecord, Variant, check_split_counts, label_array, parse_variant, plan_records,
                      recipe_for, write_manifest)
from .release import ReleaseArchive, member_name
from .sources import write_regenerated_provenance
from .synthetic import OFFICIAL_MEMBER_ORDER, open_npy_member, write_npz_members

logger = logging.getLogger(__name__)

CHUNK_ROWS_BYTES = 16 * 2**20


def release_file_name(facts: DatasetFacts, size: int) -> str:
    """The official file name of ``facts`` at ``size`` (``<flag>.npz`` at 28, else ``<flag>_<size>.npz``)."""
    if size in facts.files:
        return facts.files[size].file
    return f"{facts.flag}.npz" if size == 28 else f"{facts.flag}_{size}.npz"


# -- rendering, in parallel --------------------------------------------------------------------------------


@dataclass
class Rendered:
    item: Assigned
    pixels: Dict[int, Any]  # size -> release row (a DeflatedRow when rendered with deflate), None when blank
    error: Optional[str] = None  # a bad record's message (only when skipping bad records)


def deflate_piece(data: bytes) -> bytes:
    """``data`` as a self-contained piece of a raw deflate stream: compressed on its own and ended by a full flush
    (byte-aligned, not final). Pieces concatenated in order, then :data:`DEFLATE_END`, are one valid deflate stream
    of the concatenated data (what pigz does), so rows can be compressed in parallel, each in its worker."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


DEFLATE_END = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15).flush()  # an empty final block


@dataclass(frozen=True)
class DeflatedRow:
    """One release row as the workers send it to :func:`regenerate`: deflated on its own, with its CRC-32 and length
    (a third of the bytes of the raw row to move between processes)."""

    piece: bytes
    crc: int
    length: int

    @classmethod
    def of(cls, row: bytes) -> "DeflatedRow":
        return cls(deflate_piece(row), zlib.crc32(row), len(row))

    def raw(self) -> bytes:
        return zlib.decompressobj(-15).decompress(self.piece)


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
        return {}, str(err)
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


def _variants(recipe, sizes: Iterable[int], variant_text: Optional[str]) -> Dict[int, Variant]:
    try:
        return {size: parse_variant(recipe.default_variant(size), variant_text) for size in sizes}
    except ValueError as err:
        raise RawSourceError(str(err)) from None


def _check_sizes(facts: DatasetFacts, sizes: Sequence[int]) -> List[int]:
    from .recipes import MAX_SIZE, MIN_SIZE

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
    plan = plan_records(recipe, data_dir, manifest, seed, skip_bad)
    check_split_counts(plan, facts, strict=not no_checks, where=str(plan.root))
    variants = _variants(recipe, sizes, variant)
    out_dir = Path(os.path.expanduser(str(out_dir)))
    out_dir.mkdir(parents=True, exist_ok=True)
    report = RegenerateReport(files={}, counts={}, skipped=list(plan.skipped), official_indices=plan.official_indices)
    work = Path(tempfile.mkdtemp(prefix=".regenerate-", dir=out_dir))  # rows on disk, not in memory
    planned = plan.counts()
    streamed = {size: _StreamedRelease(str(out_dir / release_file_name(facts, size)), facts, size, planned)
                for size in sizes}
    try:
        labels: Dict[str, List[np.ndarray]] = {split: [] for split in SPLITS}
        indices: Dict[str, List[int]] = {split: [] for split in SPLITS}
        kept: List[Assigned] = []
        spools = {(split, size): open(work / f"{split}-{size}.raw", "wb") for split in SPLITS for size in sizes}
        current = None
        try:
            # One pool for every split: workers render records in order while this process deflates the rows
            # into each release file as they arrive (and spools them, in case a dropped record changes a count).
            items = [item for split in SPLITS for item in plan.split(split)]
            for result in render(flag, plan.root, items, sizes, variants, num_proc, skip_bad,
                                 progress=facts.title if progress else None, deflate=True):
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
                    row = result.pixels[size]
                    streamed[size].write(row)
                    spools[(split, size)].write(len(row.piece).to_bytes(4, "little") + row.piece)
                labels[split].append(label_array(facts, result.item.record.label))
                indices[split].append(result.item.index)
                kept.append(result.item)
            while current != SPLITS[-1]:
                current = _next_split(current, streamed)
            for release in streamed.values():
                release.end_split()
        finally:
            for handle in spools.values():
                handle.close()
        report.counts = {split: len(labels[split]) for split in SPLITS}
        for size in sizes:
            extra = _label_and_index_members(facts, labels, indices)
            if streamed[size].finish(extra):
                report.files[size] = streamed[size].path
                continue
            # a record was dropped after its split's header was written: write the file again from the spool
            members = {member_name(split, "images"): ((report.counts[split],) + facts.image_shape(size),
                                                      _spooled_rows(work / f"{split}-{size}.raw"))
                       for split in SPLITS}
            members.update(extra)
            order = list(OFFICIAL_MEMBER_ORDER) + [m for m in extra if m not in OFFICIAL_MEMBER_ORDER]
            report.files[size] = write_npz_members(streamed[size].path, {m: members[m] for m in order})
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
        shutil.rmtree(work, ignore_errors=True)
    for problem in report.skipped:
        logger.warning("Skipped: %s", problem)
    for record in report.blank:
        logger.warning("Dropped %s: its output is blank.", record)
    report.seconds = time.perf_counter() - started
    return report


class _StreamedRelease:
    """A release file written while its rows arrive, member by member in the official order.

    Each split's image member gets its ``.npy`` header with the planned row count; if records were dropped after
    that (bad or blank), the counts no longer agree and :meth:`finish` says so (the caller writes the file again).
    The file appears under its name only when complete (``.partial`` until then).
    """

    def __init__(self, path: str, facts: DatasetFacts, size: int, planned: Dict[str, int]):
        self.path, self.partial = path, path + ".partial"
        self.facts, self.size, self.planned = facts, size, planned
        self.archive = zipfile.ZipFile(self.partial, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        self.member, self.split, self.written, self.complete, self.pieces = None, None, 0, True, None

    def begin_split(self, split: str) -> None:
        shape = (self.planned[split],) + self.facts.image_shape(self.size)
        self.member = self.archive.open(f"{member_name(split, 'images')}.npy", "w", force_zip64=True)
        self.pieces = _Precompressed.install(self.member)
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
        self.write(DeflatedRow.of(header.getvalue()), count=False)
        self.split, self.written = split, 0

    def write(self, row: DeflatedRow, count: bool = True) -> None:
        if self.pieces is not None:
            self.pieces.append(row)
        else:
            self.member.write(row.raw())
        self.written += count

    def end_split(self) -> None:
        if self.member is not None:
            if self.written != self.planned[self.split]:
                self.complete = False  # the header promised more rows; the file is written again
            self.member.close()
            self.member = None

    def finish(self, extra: Dict[str, Tuple]) -> bool:
        """Write the label (and index) members and publish the file; False if it must be written again."""
        if self.complete:
            for name, (shape, chunks, *rest) in extra.items():
                with open_npy_member(self.archive, name, shape, rest[0] if rest else np.uint8) as out:
                    for chunk in chunks:
                        out.write(np.ascontiguousarray(chunk, dtype=rest[0] if rest else np.uint8).tobytes())
        self.archive.close()
        if self.complete:
            os.replace(self.partial, self.path)
        else:
            os.remove(self.partial)
        return self.complete

    def discard(self) -> None:
        """After a failure (or a finished file): close, and leave nothing that looks complete."""
        try:
            if self.member is not None:
                self.member.close()
            self.archive.close()
        except (OSError, ValueError):
            pass
        if os.path.exists(self.partial):
            os.remove(self.partial)


class _Precompressed:
    """Stands in for a zipfile member's deflate compressor and appends rows the workers already deflated.

    zipfile's member writer (``_ZipWriteFile``) keeps the raw size, the compressed size and the CRC-32 of what was
    written; rows arrive deflated with their own CRC and length, so these are updated here (CRCs are combined as
    zlib's ``crc32_combine`` does). Where zipfile lacks those fields, :meth:`install` says so and the rows are
    inflated and written the ordinary way, compressed in this process.
    """

    FIELDS = ("_compressor", "_fileobj", "_file_size", "_compress_size", "_crc")

    def __init__(self, member):
        self.member = member

    @classmethod
    def install(cls, member) -> Optional["_Precompressed"]:
        if not all(hasattr(member, name) for name in cls.FIELDS) or \
                not isinstance(member._compressor, type(zlib.compressobj())):
            return None
        pieces = cls(member)
        member._compressor = pieces
        return pieces

    def append(self, row: DeflatedRow) -> None:
        member = self.member
        member._fileobj.write(row.piece)
        member._compress_size += len(row.piece)
        member._file_size += row.length
        member._crc = crc32_combine(member._crc, row.crc, row.length)

    def compress(self, data: bytes) -> bytes:  # never called: rows go through append()
        raise RuntimeError("rows of a precompressed member are appended, not written")

    def flush(self) -> bytes:
        return DEFLATE_END


def _gf2_times(matrix: Sequence[int], vector: int) -> int:
    total, i = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


@functools.lru_cache(maxsize=64)
def _zeros_operator(length: int) -> Tuple[int, ...]:
    """The GF(2) operator that advances a CRC-32 over ``length`` zero bytes (zlib's crc32_combine, as a matrix)."""
    odd = [0xEDB88320] + [1 << (n - 1) for n in range(1, 32)]  # one zero bit
    even = [_gf2_times(odd, odd[n]) for n in range(32)]  # two zero bits
    odd = [_gf2_times(even, even[n]) for n in range(32)]  # four zero bits
    operator = [1 << n for n in range(32)]  # identity
    remaining = length
    while remaining:
        even = [_gf2_times(odd, odd[n]) for n in range(32)]  # the next power of two of zero bytes (8 bits, 16...)
        if remaining & 1:
            operator = [_gf2_times(even, operator[n]) for n in range(32)]
        remaining >>= 1
        if not remaining:
            break
        odd = [_gf2_times(even, even[n]) for n in range(32)]
        if remaining & 1:
            operator = [_gf2_times(odd, operator[n]) for n in range(32)]
        remaining >>= 1
    return tuple(operator)


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC-32 of A + B from crc32(A), crc32(B) and len(B)."""
    if length2 <= 0:
        return crc1
    return _gf2_times(_zeros_operator(length2), crc1) ^ crc2


def _next_split(current: Optional[str], streamed: Dict[int, "_StreamedRelease"]) -> str:
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


def _spooled_rows(path: Path) -> Iterator[np.ndarray]:
    """The rows spooled by :func:`regenerate` (each a 4-byte length and a deflated piece), one by one, raw."""
    with open(path, "rb") as f:
        while True:
            head = f.read(4)
            if not head:
                return
            piece = f.read(int.from_bytes(head, "little"))
            yield np.frombuffer(zlib.decompressobj(-15).decompress(piece), dtype=np.uint8)[None]


# -- align -------------------------------------------------------------------------------------------------


def pixel_digest(pixels: np.ndarray) -> bytes:
    array = np.ascontiguousarray(pixels, dtype=np.uint8)
    return hashlib.blake2b(array.tobytes(), digest_size=16, person=str(array.shape).encode()[:16]).digest()


def _release_size(facts: DatasetFacts, release: str) -> int:
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
            labels = archive.read_array(member_name(split, "labels"))
            indices = archive.row_indices(split)
            row = 0
            for chunk in archive.iter_chunks(member_name(split, "images"), [(0, None)]):
                for pixels in chunk:
                    index = int(indices[row]) if indices is not None else row
                    yield split, index, pixels, _label_key(facts, labels[row])
                    row += 1


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
    size = _release_size(facts, release)
    root = recipe.find_root(data_dir)
    records = sorted(recipe.records(root), key=lambda r: r.record)
    variants = _variants(recipe, [size], variant)
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


# -- calibrate ---------------------------------------------------------------------------------------------


@dataclass
class CalibrationRow:
    variant: Variant
    exact: int
    total: int
    mean_difference: float
    max_difference: int

    @property
    def exact_rate(self) -> float:
        return self.exact / self.total if self.total else 0.0


def calibrate(flag: str, data_dir, release, manifest, variants: Optional[Sequence[Variant]] = None,
              limit: Optional[int] = 200, progress: bool = False) -> List[CalibrationRow]:
    """Compare each recipe variant with ``release`` on the records of ``manifest``; best first."""
    recipe = recipe_for(flag)
    facts = recipe.facts
    size = _release_size(facts, str(release))
    plan = plan_records(recipe, data_dir, manifest)
    items = sorted(plan.assigned, key=lambda a: (SPLITS.index(a.split), a.index))[:limit]
    official = _official_rows(str(release), items)
    variants = list(variants or recipe.calibration_variants())
    stats = {v: [0, 0, 0.0, 0] for v in variants}
    for item in items:
        loaded = recipe.load(plan.root, item.record)
        reference = official[(item.split, item.index)].astype(np.int16)
        for v in variants:
            out = recipe.render(loaded, size, v)
            difference = np.abs(out.astype(np.int16) - reference) if out is not None else np.abs(reference)
            entry = stats[v]
            entry[0] += int(not difference.any())
            entry[1] += 1
            entry[2] += float(difference.mean())
            entry[3] = max(entry[3], int(difference.max()))
    rows = [CalibrationRow(v, e[0], e[1], e[2] / max(e[1], 1), e[3]) for v, e in stats.items()]
    return sorted(rows, key=lambda r: (-r.exact_rate, r.mean_difference, r.max_difference))


def _official_rows(release: str, items: Sequence[Assigned]) -> Dict[Tuple[str, int], np.ndarray]:
    rows = {}
    with ReleaseArchive(release) as archive:
        for split in SPLITS:
            indices = archive.row_indices(split)
            position = {int(i): row for row, i in enumerate(indices)} if indices is not None else {}
            wanted = sorted({(position.get(a.index, a.index), a.index) for a in items if a.split == split})
            if not wanted:
                continue
            chunks = archive.iter_chunks(member_name(split, "images"), [(row, row + 1) for row, _ in wanted])
            for (_, index), chunk in zip(wanted, chunks):
                rows[(split, index)] = np.array(chunk[0])
            for _ in chunks:
                pass
    return rows
