"""Raw-source recipes: how a MedMNIST+ dataset is regenerated from its original collection.

A recipe (one per dataset, defined in ``builders/<flag>.py`` so the module reads like its recipe paragraph) says

- where the collection lies inside the folder a user unpacked it into (:meth:`RawRecipe.find_root`),
- which records it has, with their labels and the collection's own split (:meth:`RawRecipe.records`),
- how one record is read, with the steps that do not depend on the target size done once (:meth:`RawRecipe.load`),
- how the loaded record becomes one row of the release arrays at a size (:meth:`RawRecipe.render`).

Splits and official indices come from a manifest (CSV ``split,index,record[,label]``, e.g. written by
``medmnist-plus align``) or, without one, from the split rule of the MedMNIST paper (:class:`SplitRule`), which
gives the official split sizes but not the official indices: such builds say so everywhere.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..catalog import ANY_SIZE_RANGE, SPLITS, DatasetFacts, load_catalog
from ..errors import RawSourceError

logger = logging.getLogger(__name__)

MIN_SIZE, MAX_SIZE = ANY_SIZE_RANGE  # any size in this range can be regenerated from a raw source
SPLIT_SEED = 0
_RELEASE_SPLIT_NAMES = {"train": "train", "val": "validation", "valid": "validation", "validation": "validation",
                        "test": "test"}


@dataclass(frozen=True)
class RawRecord:
    """One record of a raw collection: the source of one example.

    ``record`` is its path relative to the collection root (POSIX separators), followed by ``#<part>`` when one
    file holds several records (an organ box of a CT volume, a fracture of a scan). ``label`` is the catalog's
    class id, or a tuple of 0/1 per label for multi-label datasets. ``source_split`` is the collection's own
    part (``"train"``, ``"test"``, ``"validation"``) where it has one: the paper's split rule uses it.
    """

    record: str
    label: Any
    source_split: Optional[str] = None

    @property
    def path(self) -> str:
        return self.record.split("#", 1)[0]

    @property
    def part(self) -> Optional[str]:
        return self.record.split("#", 1)[1] if "#" in self.record else None


@dataclass(frozen=True)
class Assigned:
    """A record with its split and index (official when it came from a manifest)."""

    split: str
    index: int
    record: RawRecord


@dataclass(frozen=True)
class SplitRule:
    """The split of the MedMNIST paper, for collections without a manifest.

    ``test_from``: the collection's own part that is the test split (e.g. Kermany's ``test`` folder); the records
    of the ``pool`` parts are then divided train:validation by ``ratios[:2]``. Without ``test_from`` the whole
    collection is divided train:validation:test by ``ratios``. When the records are exactly as many as the
    catalog's rows, the catalog's split sizes are used, so a complete collection gets the official sizes.
    """

    ratios: Tuple[float, float, float] = (0.7, 0.1, 0.2)
    test_from: Optional[str] = None
    pool: Tuple[Optional[str], ...] = ("train", None)

    def describe(self) -> str:
        if self.test_from:
            parts = " and ".join(repr(p) for p in self.pool if p)
            return (f"the collection's {self.test_from!r} part is the test split; its {parts} part is divided "
                    f"train:validation {self.ratios[0]:g}:{self.ratios[1]:g} by a seeded shuffle")
        return "a seeded shuffle divides the collection train:validation:test " + ":".join(
            f"{r * 10:g}" for r in self.ratios)

    def assign(self, records: Sequence[RawRecord], facts: DatasetFacts, seed: int = SPLIT_SEED) -> List[Assigned]:
        records = sorted(records, key=lambda r: r.record)
        counts = facts.split_counts
        if self.test_from:
            test = [r for r in records if r.source_split == self.test_from]
            pool = [r for r in records if r.source_split in self.pool]
            n_val = counts["validation"] if len(pool) == counts["train"] + counts["validation"] else \
                int(round(len(pool) * self.ratios[1] / (self.ratios[0] + self.ratios[1])))
            order = np.random.default_rng(seed).permutation(len(pool))
            shuffled = [pool[i] for i in order]
            parts = {"train": shuffled[n_val:], "validation": shuffled[:n_val], "test": test}
        else:
            total = sum(counts.values())
            if len(records) == total:
                n_val, n_test = counts["validation"], counts["test"]
            else:
                n_val = int(round(len(records) * self.ratios[1]))
                n_test = int(round(len(records) * self.ratios[2]))
            order = np.random.default_rng(seed).permutation(len(records))
            shuffled = [records[i] for i in order]
            parts = {"validation": shuffled[:n_val], "test": shuffled[n_val:n_val + n_test],
                     "train": shuffled[n_val + n_test:]}
        return [Assigned(split, index, record) for split in SPLITS
                for index, record in enumerate(sorted(parts[split], key=lambda r: r.record))]


@dataclass(frozen=True)
class Variant:
    """The size-dependent, measurable choices of a recipe (what ``calibrate`` compares).

    ``kernel``: the PIL resampling filter of 2D resizes. ``jpeg_quality``: the quality of the JPEG round trip
    of JPEG sources (None: no round trip). ``options``: recipe-specific settings (e.g. a 3D field of view).
    """

    kernel: str = "bilinear"
    jpeg_quality: Optional[int] = None
    options: Tuple[Tuple[str, Any], ...] = ()

    def describe(self) -> str:
        text = f"kernel={self.kernel}, jpeg={'q%d' % self.jpeg_quality if self.jpeg_quality else 'none'}"
        return text + "".join(f", {key}={value}" for key, value in self.options)

    def option(self, key: str, default=None):
        return dict(self.options).get(key, default)

    def number(self, key: str, default, kind=float, example: str = ""):
        """Option ``key`` as a ``kind`` (a float may be a fraction: ``29/65``), or a RawSourceError citing ``example``."""
        value = self.option(key, default)
        try:
            return kind(Fraction(str(value))) if kind is float else kind(str(value))
        except (ValueError, ZeroDivisionError):
            raise RawSourceError(f"recipe variant option {key}={value!r} is not a {kind.__name__}"
                                 + (f" (e.g. {example})" if example else "")) from None


class RawRecipe:
    """Base of every dataset's recipe. Subclasses set the class attributes and implement the four methods."""

    flag: str = ""
    collection: str = ""  # the source collection, as its authors name it
    manual_download_instructions: str = ""  # where to get it, what to unpack, the expected tree
    root_candidates: Tuple[str, ...] = ("",)  # relative paths inside data_dir where the collection may start
    split_rule: SplitRule = SplitRule()

    @property
    def facts(self) -> DatasetFacts:
        return load_catalog()[self.flag]

    # -- the collection ---------------------------------------------------------------------------------

    def is_root(self, path: Path) -> bool:
        """Whether ``path`` is the top of this collection's expected tree."""
        raise NotImplementedError

    def find_root(self, data_dir, others: Iterable["RawRecipe"] = ()) -> Path:
        """The collection's top folder inside ``data_dir``: itself, a known sub-path, or one level down.

        ``others``: the other datasets' recipes, to name the collection a wrong folder holds instead.
        """
        base = Path(os.path.expanduser(str(data_dir)))
        if not base.is_dir():
            raise RawSourceError(
                f"{base}: no such folder. Pass data_dir=<the folder you unpacked {self.collection} into>.\n"
                f"{self.manual_download_instructions}")
        candidates = [base / rel for rel in self.root_candidates]
        children = sorted(p for p in base.iterdir() if p.is_dir())
        candidates += children + [child / rel for child in children for rel in self.root_candidates if rel]
        for candidate in candidates:
            if candidate.is_dir() and self.is_root(candidate):
                return candidate
        other = _other_collection(base, self.flag, others)
        hint = f" It looks like {other} instead." if other else ""
        raise RawSourceError(
            f"{base}: does not hold the {self.collection} collection that {self.facts.title} is made from "
            f"(looked there, in {', '.join(repr(r) for r in self.root_candidates if r) or 'no sub-path'} and one "
            f"level down).{hint}\n{self.manual_download_instructions}")

    def records(self, root: Path) -> List[RawRecord]:
        """Every record of the collection under ``root``, with its label and source part."""
        raise NotImplementedError

    def load(self, root: Path, record: RawRecord) -> Any:
        """Read one record and apply the size-independent steps (done once for all sizes)."""
        raise NotImplementedError

    def render(self, loaded: Any, size: int, variant: Variant) -> Optional[np.ndarray]:
        """One release row at ``size`` (uint8, release layout); None when the output is blank (dropped)."""
        raise NotImplementedError

    # -- choices ------------------------------------------------------------------------------------------

    def default_variant(self, size: int) -> Variant:
        return Variant()

    def calibration_variants(self) -> List[Variant]:
        """The candidates ``calibrate`` compares against an official file."""
        return [self.default_variant(28)]

    def parameters(self, variant: Variant) -> Dict[str, Any]:
        """The recipe's settings, for provenance files and the card."""
        return {"recipe": type(self).__name__, "variant": variant.describe()}

    def read_label(self, value: str) -> Any:
        """A manifest's ``label`` cell as a label value (class id, or multi-hot tuple)."""
        facts = self.facts
        if facts.is_multilabel:
            bits = value.replace("|", "").replace(" ", "")
            if len(bits) != facts.num_classes or set(bits) - {"0", "1"}:
                raise ValueError(f"a multi-hot label of {facts.num_classes} digits 0/1, got {value!r}")
            return tuple(int(b) for b in bits)
        label = int(value)
        if not 0 <= label < facts.num_classes:
            raise ValueError(f"labels are 0..{facts.num_classes - 1}, got {label}")
        return label


def label_array(facts: DatasetFacts, label: Any) -> np.ndarray:
    """A record's label as one row of the release's label array."""
    if facts.is_multilabel:
        return np.asarray(label, dtype=np.uint8).reshape(facts.num_classes)
    return np.asarray([label], dtype=np.uint8)


def _other_collection(base: Path, flag: str, others: Iterable[RawRecipe]) -> Optional[str]:
    """Name the collection of another recipe found in ``base`` (to tell a user they pointed at the wrong one)."""
    for recipe in others:
        if recipe.flag == flag:
            continue
        for candidate in [base / rel for rel in recipe.root_candidates]:
            try:
                if candidate.is_dir() and recipe.is_root(candidate):
                    return f"the {recipe.collection} collection ({recipe.facts.title})"
            except OSError:
                continue
    return None


# -- manifests --------------------------------------------------------------------------------------------

MANIFEST_COLUMNS = ("split", "index", "record", "label")


def safe_record_path(root: Path, record: str, manifest: str, line: int) -> Path:
    """The file of ``record`` under ``root``; refuse paths that leave it (``..``, absolute, links out of it)."""
    relative = record.split("#", 1)[0]
    where = f"{manifest}, line {line}"
    if not relative or os.path.isabs(relative) or relative.startswith(("/", "\\")) or ":" in relative.split("/")[0]:
        raise RawSourceError(f"{where}: record {record!r} is not a path relative to the raw folder {root}. "
                             "Write records as paths inside the collection, e.g. train/NORMAL/x.jpeg.")
    path = root / relative
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
        raise RawSourceError(f"{where}: record {record!r} points outside the raw folder {root} "
                             "(through '..' or a link). Records must be files inside the collection.")
    return path


def read_manifest(path, recipe: RawRecipe, root: Path, records: Dict[str, RawRecord],
                  skip_missing: bool = False) -> Tuple[List[Assigned], List[str]]:
    """The records of a manifest with their official split and index; returns (assigned, skipped problems).

    Every row is checked: known split, an index within the catalog's split size, no split/index or record
    twice, a record inside ``root`` that exists (with ``skip_missing`` a missing one is skipped and reported),
    one of the collection's records (not a mask or another excluded file), and a label equal to the collection's.
    """
    facts = recipe.facts
    manifest = str(path)
    try:
        handle = open(os.path.expanduser(manifest), newline="", encoding="utf-8-sig")  # spreadsheets write a BOM
    except OSError as err:
        raise RawSourceError(f"{manifest}: cannot read the manifest ({err.strerror}). Pass the path of a CSV "
                             "with the columns split,index,record[,label] (e.g. written by `medmnist-plus align`).")
    assigned, skipped, seen_index, seen_record = [], [], {}, {}
    with handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        if not {"split", "index", "record"} <= set(columns):
            raise RawSourceError(f"{manifest}: the header is {columns}, but a manifest needs the columns "
                                 "split,index,record and optionally label.")
        for line, row in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            split = _RELEASE_SPLIT_NAMES.get(row["split"].lower())
            if split is None:
                raise RawSourceError(f"{manifest}, line {line}: unknown split {row['split']!r}; use train, val "
                                     "(or validation) or test.")
            try:
                index = int(row["index"])
            except ValueError:
                raise RawSourceError(f"{manifest}, line {line}: index {row['index']!r} is not an integer.") from None
            limit = facts.split_counts[split]
            if not 0 <= index < limit:
                raise RawSourceError(f"{manifest}, line {line}: index {index} is out of range: the official "
                                     f"{facts.title} {split} split has rows 0..{limit - 1}. Fix the manifest.")
            key = (split, index)
            if key in seen_index:
                raise RawSourceError(f"{manifest}, line {line}: {split} index {index} is listed twice (also on "
                                     f"line {seen_index[key]}). Each official row has one record.")
            seen_index[key] = line
            record_name = row["record"].replace("\\", "/")
            if record_name in seen_record:
                raise RawSourceError(f"{manifest}, line {line}: record {record_name!r} is listed twice (also on "
                                     f"line {seen_record[record_name]}).")
            seen_record[record_name] = line
            file_path = safe_record_path(root, record_name, manifest, line)
            if not file_path.is_file():
                problem = f"{manifest}, line {line}: record {record_name!r} does not exist under {root}"
                if skip_missing:
                    skipped.append(problem)
                    continue
                raise RawSourceError(problem + ". Check that data_dir is the folder the manifest was made for, "
                                     "or pass skip_bad=True (CLI --skip-bad) to leave missing records out.")
            known = records.get(record_name)
            if known is None:
                raise RawSourceError(
                    f"{manifest}, line {line}: {record_name!r} is a file under {root} but not one of the "
                    f"{recipe.collection} records this dataset is made from (the recipe leaves out files such as "
                    "masks, ungradable images or other collections' files). Fix the manifest.")
            label = known.label
            if row.get("label"):
                try:
                    manifest_label = recipe.read_label(row["label"])
                except ValueError as err:
                    raise RawSourceError(f"{manifest}, line {line}: bad label: {err}.") from None
                if manifest_label != label:
                    raise RawSourceError(
                        f"{manifest}, line {line}: label {row['label']!r} of record {record_name!r} differs from "
                        f"its label in the collection ({label!r}). The manifest was made for other files.")
                label = manifest_label
            assigned.append(Assigned(split, index, RawRecord(record_name, label, known.source_split)))
    if not assigned and not skipped:
        raise RawSourceError(f"{manifest}: the manifest lists no records.")
    return assigned, skipped


def write_manifest(path, assigned: Iterable[Assigned], facts: DatasetFacts) -> str:
    """Write a manifest CSV (``split,index,record,label``; splits named as in the release: train/val/test)."""
    rows = sorted(assigned, key=lambda a: (SPLITS.index(a.split), a.index))
    partial = f"{path}.partial"
    with open(partial, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(MANIFEST_COLUMNS)
        for item in rows:
            label = item.record.label
            label_text = "".join(str(int(b)) for b in label) if facts.is_multilabel else str(int(label))
            writer.writerow([{"validation": "val"}.get(item.split, item.split), item.index, item.record.record,
                             label_text])
    os.replace(partial, path)
    return str(path)


@dataclass
class Plan:
    """What a raw build makes: the records of each split with their indices, and how they were assigned."""

    root: Path
    assigned: List[Assigned]
    official_indices: bool  # True when from a manifest
    how: str  # a sentence for the info, the card and warnings
    skipped: List[str] = field(default_factory=list)

    def split(self, split: str) -> List[Assigned]:
        return sorted((a for a in self.assigned if a.split == split), key=lambda a: a.index)

    def counts(self) -> Dict[str, int]:
        return {split: sum(1 for a in self.assigned if a.split == split) for split in SPLITS}


def plan_records(recipe: RawRecipe, data_dir, manifest=None, seed: int = SPLIT_SEED,
                 skip_bad: bool = False, others: Iterable[RawRecipe] = ()) -> Plan:
    """The records to build from ``data_dir``: a manifest's, or the whole collection split by the paper's rule.
    ``others``: see :meth:`RawRecipe.find_root`."""
    root = recipe.find_root(data_dir, others)
    records = recipe.records(root)
    if not records and manifest is None:
        raise RawSourceError(f"{root}: the {recipe.collection} tree is there but holds no records.\n"
                             f"{recipe.manual_download_instructions}")
    if manifest is not None:
        by_name = {r.record: r for r in records}
        assigned, skipped = read_manifest(manifest, recipe, root, by_name, skip_missing=skip_bad)
        return Plan(root, assigned, True, f"official split and indices from the manifest {manifest}", skipped)
    assigned = recipe.split_rule.assign(records, recipe.facts, seed)
    how = (f"NOT the official indices: no manifest was given, so {recipe.split_rule.describe()} (seed {seed}); "
           "the split sizes follow the paper, but which record is which official row is unknown "
           "(recover it with `medmnist-plus align`)")
    return Plan(root, assigned, False, how)


def check_split_counts(plan: Plan, facts: DatasetFacts, strict: bool, where: str) -> None:
    """Split sizes that differ from the catalog: an error when ``strict``, else a warning (partial collections)."""
    counts = plan.counts()
    if counts == facts.split_counts:
        return
    text = ", ".join(f"{s} {counts[s]:,} (official {facts.split_counts[s]:,})" for s in SPLITS)
    message = f"{where}: the records give split sizes {text}."
    if strict:
        raise RawSourceError(
            message + " Either the collection is incomplete, or it is not the one this dataset is made from. "
            "To build a partial collection on purpose, use verification_mode='no_checks' (CLI: --no-checks).")
    logger.warning(message + " Building them anyway (verification_mode='no_checks').")


def parse_variant(default: Variant, text: Optional[str]) -> Variant:
    """``default`` changed by ``"kernel=bicubic,jpeg=90"`` (``jpeg=none``: no round trip; other keys: options)."""
    if not text:
        return default
    kernel, quality, options = default.kernel, default.jpeg_quality, dict(default.options)
    for item in text.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep:
            raise ValueError(f"recipe variant {text!r}: write key=value pairs, e.g. kernel=bicubic,jpeg=none")
        if key == "kernel":
            from .imageops import RESAMPLE

            if value not in RESAMPLE:
                raise ValueError(f"recipe variant {text!r}: unknown kernel {value!r}; one of {sorted(RESAMPLE)}")
            kernel = value
        elif key == "jpeg":
            quality = None if value.lower() in ("none", "off", "0") else int(value)
        else:
            options[key] = value
    return Variant(kernel, quality, tuple(sorted(options.items())))
