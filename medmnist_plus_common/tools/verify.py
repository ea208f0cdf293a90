"""``medmnist-plus verify``: check a copy of a config against the catalog and, optionally, a release file.

Always checked, per split: the row count (the catalog's, or the release file's when one is given), the features,
that the ``index`` values are exactly 0..N-1 (no missing, duplicated or unknown row) and that labels are in
range; the label histogram is shown (and, with a release file, must equal the file's).

With ``against=<release .npz>`` (the official file or one regenerated from the raw collections), every row is
compared exactly: pixels, label and index. Memory stays bounded: rows are streamed in batches, and the file's
pixels are reduced in one chunked pass to a 16-byte digest per row; the first mismatching rows are then re-read
from the file to say what differs (how many values, where, and the two values).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Union

import numpy as np

from ..catalog import SPLITS, ConfigRef, DatasetFacts, config_ref

MAX_REPORTED = 10
READ_BYTES = 2 * 2**20  # the release file is read in pieces of about this size


@dataclass
class Mismatch:
    split: str
    index: int
    kind: str  # "pixels", "label", "missing", "duplicated", "unknown index", "shape"
    detail: str

    def __str__(self) -> str:
        return f"{self.split} index {self.index}: {self.kind}: {self.detail}"


@dataclass
class SplitReport:
    split: str
    rows: int = 0
    expected_rows: int = 0
    exact: int = 0  # rows compared with the reference file whose pixels and label are equal
    histogram: Dict[str, int] = field(default_factory=dict)
    pixel_bytes: int = 0
    compared: bool = False


@dataclass
class VerifyReport:
    config: str
    source: str
    against: Optional[str]
    splits: List[SplitReport] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)  # whole-split or whole-config failures
    mismatches: List[Mismatch] = field(default_factory=list)  # the first ones, at most MAX_REPORTED
    counts: Dict[str, int] = field(default_factory=dict)  # mismatches of each kind, all of them
    notes: List[str] = field(default_factory=list)  # facts worth saying that are not failures
    present_only: bool = False  # a partial collection: rows absent from the source are not mismatches

    @property
    def ok(self) -> bool:
        return not self.problems and not self.counts

    def add(self, mismatch: Mismatch) -> None:
        self.counts[mismatch.kind] = self.counts.get(mismatch.kind, 0) + 1
        if len(self.mismatches) < MAX_REPORTED:
            self.mismatches.append(mismatch)

    def summary(self) -> str:
        rows = sum(s.rows for s in self.splits)
        what = "compared exactly with " + self.against if self.against else "checked against the catalog"
        kinds = ", ".join(f"{kind} {count:,}" for kind, count in sorted(self.counts.items()))
        failed = f"; {len(self.problems)} failed check(s)" if self.problems else ""
        if self.present_only:
            expected = sum(s.expected_rows for s in self.splits)
            exact = f": {sum(s.exact for s in self.splits):,} exact" if self.against else ""
            return (f"{'OK' if self.ok else 'FAILED'} {self.config}: {rows:,} of {expected:,} rows present{exact}"
                    f"{f'; mismatches: {kinds}' if kinds else ''}{failed} ({what}).")
        if self.ok:
            return f"OK {self.config}: {rows:,} rows in {len(self.splits)} split{'s' * (len(self.splits) > 1)} {what}; no mismatch."
        parts = [f"{sum(self.counts.values()):,} mismatching rows ({kinds})"] if self.counts else []
        parts += [f"{len(self.problems)} failed check(s)"] if self.problems else []
        return f"FAILED {self.config}: {'; '.join(parts)} in {rows:,} rows {what}."


def _digest(row: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=16).digest()


def _label_text(facts: DatasetFacts, label) -> str:
    if facts.is_multilabel:
        return "[" + "".join(str(int(v)) for v in np.asarray(label).ravel()) + "]"
    label = int(label)
    name = facts.labels[label] if 0 <= label < facts.num_classes else "out of range"
    return f"{label} ({name})"


def _histogram(facts: DatasetFacts, labels: np.ndarray) -> np.ndarray:
    if facts.is_multilabel:
        return labels.reshape(len(labels), -1).astype(np.int64).sum(0)
    return np.bincount(labels.reshape(-1).astype(np.int64), minlength=facts.num_classes)[: facts.num_classes]


def _histogram_text(facts: DatasetFacts, counts: np.ndarray) -> Dict[str, int]:
    return {facts.labels[i]: int(c) for i, c in enumerate(counts)}


class _Reference:
    """One split of a release file: labels in memory, pixels as one digest per row (chunked, bounded memory)."""

    def __init__(self, path: str, split: str, progress=None, index_dir: Optional[str] = None):
        from ..release.reader import ReleaseArchive, member_name

        self.path, self.split, self.index_dir = path, split, index_dir
        self.images_member = member_name(split, "images")
        with ReleaseArchive(path, index_dir) as archive:
            self.labels = archive.read_array(member_name(split, "labels"))
            header = archive.header(self.images_member)
            self.shape = header.shape[1:]
            self.digests = np.zeros((header.rows, 16), dtype=np.uint8)
            position = 0
            step = max(1, READ_BYTES // max(header.row_bytes, 1))  # small reads: ranges of about READ_BYTES
            ranges = [(start, min(start + step, header.rows)) for start in range(0, header.rows, step)] or [(0, 0)]
            for chunk in archive.iter_chunks(self.images_member, ranges):
                for row in chunk:
                    self.digests[position] = np.frombuffer(_digest(row), dtype=np.uint8)
                    position += 1
                if progress:
                    progress(f"{split}: {position:,}/{header.rows:,} rows of {path} read")
        self.rows = len(self.labels)

    def rows_at(self, indices: List[int]) -> Dict[int, np.ndarray]:
        """The release pixels of a few rows (inflating only near them, from the member's access points)."""
        from ..release.reader import ReleaseArchive

        wanted = sorted(set(indices))
        out = {}
        with ReleaseArchive(self.path, self.index_dir) as archive:
            ranges = [(i, i + 1) for i in wanted]
            rows = (row for chunk in archive.iter_chunks(self.images_member, ranges) for row in chunk)
            for i, row in zip(wanted, rows):
                out[i] = row.copy()
        return out


def _pixel_difference(ours: np.ndarray, theirs: np.ndarray) -> str:
    if ours.shape != theirs.shape:
        return f"shape {ours.shape} here, {theirs.shape} in the release"
    differ = np.argwhere(ours != theirs)
    first = tuple(int(v) for v in differ[0])
    return (f"{len(differ):,} of {ours.size:,} values differ, first at {first}: {int(ours[first])} here, "
            f"{int(theirs[first])} in the release")


def verify(config: Union[str, ConfigRef], *, against: Optional[str] = None, repo: Optional[str] = None, data_dir: Optional[str] = None,
           cache_dir: Optional[str] = None, source: str = "official", manifest: Optional[str] = None, splits=SPLITS,
           progress=None, present_only: bool = False) -> VerifyReport:
    """Verify ``config`` from ``repo`` (Hub id or exported folder), ``data_dir`` or the local build.

    ``present_only``: check only the rows the source has (a partial raw collection): absent rows, row counts and
    label histograms are not compared; the summary says how many rows were present and how many are exact.
    """
    from ..release.download import downloads_dir, index_dir
    from ..hf.features import features_for
    from .rows import open_split, split_name

    ref = config_ref(config)  # parsed once (or given parsed), passed on
    facts, size, config = ref.facts, ref.size, ref.name
    if against is not None:  # a file of another dataset or size: one clear error instead of every row differing
        from ..release.reader import check_release

        check_release(against, facts, size, strict=False)
    report = None
    for split in [split_name(s) for s in splits]:
        opened = open_split(ref, split, data_dir=data_dir, repo=repo, cache_dir=cache_dir, source=source,
                            manifest=manifest)
        if report is None:
            report = VerifyReport(config, f"{opened.kind} {opened.where}", against, present_only=present_only)
            expected = [features_for(facts, size, storage) for storage in ("png", "raw")[: 2 if facts.dims == 2 else 1]]
            if opened.features is None:
                report.problems.append("features: the source does not declare its features")
            elif opened.features not in expected:
                report.problems.append(f"features: {dict(opened.features)}; expected {dict(expected[0])}")
        reference = _Reference(against, split, progress, index_dir(downloads_dir(cache_dir))) if against else None
        report.splits.append(_verify_split(report, opened, facts, size, reference, progress))
    return report


def _verify_split(report: VerifyReport, opened, facts: DatasetFacts, size: int, reference: Optional[_Reference],
                  progress) -> SplitReport:
    split = opened.split
    row_mismatches_before = sum(report.counts.values())
    catalog_rows = facts.split_counts[split]
    expected_rows = reference.rows if reference is not None else catalog_rows
    result = SplitReport(split, expected_rows=expected_rows, compared=reference is not None)
    seen = np.zeros(expected_rows, dtype=bool)
    histogram = np.zeros(facts.num_classes, dtype=np.int64)
    sample_shape = facts.image_shape(size)
    differing: Dict[int, np.ndarray] = {}  # our pixels of the first rows whose digest differs
    for rows in opened.batches(pixels=reference is not None):
        result.rows += len(rows)
        labels = rows.label
        if facts.is_multilabel:
            bad = ~np.isin(labels, (0, 1)).all(1)
        else:
            bad = (labels < 0) | (labels >= facts.num_classes)
        for position in np.flatnonzero(bad):
            report.add(Mismatch(split, int(rows.index[position]), "label",
                                f"{_label_text(facts, labels[position])} is not a {facts.title} label"))
        histogram += _histogram(facts, labels[~bad])
        for position, index in enumerate(rows.index.tolist()):
            if not 0 <= index < expected_rows:
                report.add(Mismatch(split, index, "unknown index", f"the split has rows 0..{expected_rows - 1}"))
                continue
            if seen[index]:
                report.add(Mismatch(split, index, "duplicated", "more than one row has this index"))
                continue
            seen[index] = True
            if reference is None:
                continue
            ours = rows.pixels[position]
            result.pixel_bytes += ours.nbytes
            pixels_equal = False
            if ours.shape != sample_shape or ours.dtype != np.uint8:
                report.add(Mismatch(split, index, "shape", f"{ours.dtype} {ours.shape}; expected uint8 {sample_shape}"))
            elif _digest(ours) != reference.digests[index].tobytes():
                report.counts["pixels"] = report.counts.get("pixels", 0) + 1
                if len(differing) < MAX_REPORTED:
                    differing[index] = ours.copy()
            else:
                pixels_equal = True
            theirs = reference.labels[index]
            same = np.array_equal(np.asarray(labels[position]).ravel(), theirs.ravel())
            result.exact += pixels_equal and same
            if not same and not bad[position]:
                report.add(Mismatch(split, index, "label", f"{_label_text(facts, labels[position])} here, "
                                    f"{_label_text(facts, theirs if facts.is_multilabel else theirs[0])} in the release"))
        if progress:
            progress(f"{split}: {result.rows:,} of {expected_rows:,} rows checked"
                     + (f", {result.pixel_bytes / 2**20:,.1f} MiB of pixels compared" if reference is not None else ""))
    missing = np.flatnonzero(~seen) if not report.present_only else np.zeros(0, dtype=np.int64)
    for index in missing[:MAX_REPORTED].tolist():
        report.add(Mismatch(split, index, "missing", "no row has this index"))
    if len(missing) > MAX_REPORTED:
        report.counts["missing"] += len(missing) - MAX_REPORTED
    if differing:  # say what differs in the first rows whose pixels differ (their release rows read again)
        theirs = reference.rows_at(list(differing))
        for index, ours in sorted(differing.items()):
            report.counts["pixels"] -= 1  # counted above; add() counts it again with its detail
            report.add(Mismatch(split, index, "pixels", _pixel_difference(ours, theirs[index])))
    if result.rows != expected_rows and not report.present_only:
        where = "the release file" if reference is not None else "the catalog"
        report.problems.append(f"{split}: {result.rows:,} rows, but {where} has {expected_rows:,}")
    if reference is not None:
        if reference.rows != catalog_rows:
            report.notes.append(f"{split}: the release file has {reference.rows:,} rows; the official {facts.title} "
                                f"has {catalog_rows:,} (a subset or a non-official file)")
        if reference.shape != sample_shape:
            report.problems.append(f"{split}: the release file's images are {reference.shape}, not {sample_shape}")
        expected_histogram = _histogram(facts, reference.labels)
        explained = sum(report.counts.values()) > row_mismatches_before  # by the rows named above
        if not np.array_equal(histogram, expected_histogram) and not explained and not report.present_only:
            report.problems.append(f"{split}: label histogram {histogram.tolist()} differs from the release's "
                                   f"{expected_histogram.tolist()}")
    result.histogram = _histogram_text(facts, histogram)
    return result


def print_report(report: VerifyReport, out=None) -> None:
    import sys

    out = out or sys.stdout
    print(f"verify {report.config} ({report.source})" + (f" against {report.against}" if report.against else ""), file=out)
    for s in report.splits:
        top = sorted(s.histogram.items(), key=lambda item: -item[1])
        shown = ", ".join(f"{name}: {count:,}" for name, count in top[:6]) + (", ..." if len(top) > 6 else "")
        print(f"  {s.split:10s} {s.rows:>9,} rows (expected {s.expected_rows:,})  labels {shown}", file=out)
    for note in report.notes:
        print(f"  note: {note}", file=out)
    for problem in report.problems:
        print(f"  FAILED {problem}", file=out)
    if report.mismatches:
        print(f"  first mismatches ({len(report.mismatches)} of {sum(report.counts.values()):,}):", file=out)
        for mismatch in report.mismatches:
            print(f"    {mismatch}", file=out)
    print(report.summary(), file=out)
