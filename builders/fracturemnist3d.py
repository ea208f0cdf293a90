"""FractureMNIST3D: multi-class classification, 3D, gray-scale; sizes 28, 64.

Source collection: RibFrac.

The MedMNIST+ recipe for FractureMNIST3D (from the MedMNIST+ notes):

    In MedMNIST, for each annotated fracture area, we calculate its center and resize the center-cropped 64x64x64
    image into 28x28x28.

    In MedMNIST+, for each annotated fracture area, we calculate its center and center-crop the image into
    64x64x64.

As code: one record per annotated fracture, ``<image path>#<instance id>``, from the info CSVs
(``public_id,label_id,label_code``). RibFrac's codes are 1 displaced, 2 non-displaced, 3 buckle, 4 segmental, -1
uncertain type (0: background); the catalog's classes are buckle, nondisplaced, displaced, so (ASSUMPTION, by
name) code 3 -> 0, 2 -> 1, 1 -> 2, and codes 4 and -1, which the catalog has no class for, are dropped and
counted. The fracture's center is the center of mass of its instance's voxels in the label volume, rounded to
a voxel (computed slab by slab: the label volume is never loaded whole); the 64^3 window around it
(``volumeops.crop_around``: start ``round(center - 31.5)``, halves to even) is read alone from the CT volume,
padded with -1024 HU (air, ASSUMPTION) where it leaves the scan, reoriented from the affine to D x H x W =
superior->inferior, anterior->posterior, patient right->left (as the LiTS crops, ``medmnist_plus_common.nifti``),
and turned to gray with a CT window (ASSUMPTION: level 400, width 1200, i.e. -200..1000 HU, the window FracNet,
RibFrac's reference model, normalizes with; a variant option ``level=..,width=..`` that ``calibrate`` settles).
64 = that crop; 28 (and any other size) = ``volumeops.resize_gray(crop, size)``. A blank crop is dropped.
Split (paper: "official parts"; ASSUMPTION on how): RibFrac's validation part (scans 421-500) is the test split;
its training part (scans 1-420) is divided train:validation by a seeded shuffle of fractures, 1027:103 when
they are as many as the catalog's, else 9:1. RibFrac's test part (scans 501-660) has no public labels and cannot be used.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from medmnist_plus_common.recipes import volumeops
from medmnist_plus_common.hf.builder import MedMNISTBuilder, size_configs
from medmnist_plus_common.errors import RawRecordError, RawSourceError
from medmnist_plus_common.recipes.readers.nifti import open_nifti
from medmnist_plus_common.recipes.base import RawRecipe, RawRecord, SplitRule, Variant

logger = logging.getLogger(__name__)

# RibFrac label_code -> the catalog's class, by name (buckle, nondisplaced, displaced); others are dropped.
CODE_CLASSES = {3: "buckle rib fracture", 2: "nondisplaced rib fracture", 1: "displaced rib fracture"}
DROPPED_CODES = {4: "segmental", -1: "uncertain type"}
CROP = 64  # voxels per side of the crop around a fracture's center
PAD_HU = -1024.0  # air, where the crop leaves the scan (ASSUMPTION)
WINDOW_LEVEL, WINDOW_WIDTH = 400.0, 1200.0  # -200..1000 HU, as FracNet (ASSUMPTION)
PARTS = ((1, 420, "train"), (421, 500, "validation"), (501, 660, "test"))  # RibFrac's public ids per part
SLAB = 16  # label slices read at a time when computing centers
IMAGE_NAME = re.compile(r"^(RibFrac\d+)-image\.nii(\.gz)?$")
LABEL_NAME = re.compile(r"^(RibFrac\d+)-label\.nii(\.gz)?$")
_FILES: Dict[str, Tuple[Dict[str, Path], Dict[str, Path], List[Path]]] = {}
INFO_COLUMNS = ("public_id", "label_id", "label_code")


def ribfrac_part(public_id: str) -> Optional[str]:
    match = re.match(r"^RibFrac(\d+)$", public_id)
    if not match:
        return None
    number = int(match.group(1))
    return next((part for lo, hi, part in PARTS if lo <= number <= hi), None)


def instance_centers(path: Path) -> Dict[int, Tuple[int, int, int]]:
    """The rounded center of mass (voxel indices, stored axis order) of every instance id > 0 of a label volume,
    read ``SLAB`` slices at a time (memory bounded by a slab, not the volume)."""
    volume = open_nifti(path, what="label volume")
    shape = volume.shape
    sums: Dict[int, np.ndarray] = {}
    for z0 in range(0, shape[2], SLAB):
        slab = volume.read((slice(None), slice(None), slice(z0, min(z0 + SLAB, shape[2])))).astype(np.int64)
        ids = np.unique(slab)
        for instance in ids[ids > 0]:
            coords = np.nonzero(slab == instance)
            entry = sums.setdefault(int(instance), np.zeros(4))
            entry += (coords[0].sum(), coords[1].sum(), coords[2].sum() + z0 * len(coords[2]), len(coords[2]))
    # Python's round: halves to even, like imageops.crop_offset
    return {i: tuple(int(round(s / e[3])) for s in e[:3]) for i, e in sums.items()}


class RibFrac(RawRecipe):
    flag = "fracturemnist3d"
    collection = "RibFrac (MICCAI 2020 rib fracture challenge)"
    manual_download_instructions = """\
FractureMNIST3D is made from the RibFrac challenge data (Jin et al. 2020; https://ribfrac.grand-challenge.org/,
Zenodo records 3893507 and 3893497 (training parts 1 and 2) and 3893495 (validation)). Unpack the training and
validation archives (images, labels and the info CSVs) into one folder and pass it as data_dir; sub-folder names
do not matter, the files are found anywhere below it:
    <data_dir>/ribfrac-train-images-1/Part1/RibFrac1-image.nii.gz ...      (and -2/Part2, ribfrac-val-images)
    <data_dir>/ribfrac-train-labels-1/Part1/RibFrac1-label.nii.gz ...      (and -2/Part2, ribfrac-val-labels)
    <data_dir>/ribfrac-train-info-1.csv, ribfrac-train-info-2.csv, ribfrac-val-info.csv
        (columns public_id,label_id,label_code)
RibFrac's test part (RibFrac501-660, Zenodo 3993380) has no public labels: it cannot make FractureMNIST3D rows."""
    root_candidates = ("",)
    # 9:1 of the training part's fractures; exactly the catalog's 1027:103 when they are as many as the catalog's
    split_rule = SplitRule(ratios=(0.9, 0.1, 0.0), test_from="validation", pool=("train",))

    _centers_cache: Tuple[Optional[str], Dict[int, Tuple[int, int, int]]] = (None, {})

    def is_root(self, path: Path) -> bool:
        for pattern in ("*", "*/*", "*/*/*"):
            for found in path.glob(pattern):
                if IMAGE_NAME.match(found.name) or (found.name.lower().startswith("ribfrac-")
                                                    and found.name.lower().endswith(".csv")):
                    return True
        return False

    def _files(self, root: Path, refresh: bool = False) -> Tuple[Dict[str, Path], Dict[str, Path], List[Path]]:
        """Images and label volumes by public id, and the CSVs, anywhere below ``root`` (cached per root)."""
        key = str(Path(root).resolve())
        if refresh or key not in _FILES:
            images, labels, infos = {}, {}, []
            for path in sorted(Path(root).rglob("*")):
                if not path.is_file() or path.name.startswith("."):
                    continue
                match = IMAGE_NAME.match(path.name)
                if match:
                    images[match.group(1)] = path
                elif LABEL_NAME.match(path.name):
                    labels[LABEL_NAME.match(path.name).group(1)] = path
                elif path.suffix.lower() == ".csv":
                    infos.append(path)
            _FILES[key] = (images, labels, infos)
        return _FILES[key]

    def records(self, root: Path) -> List[RawRecord]:
        images, labels, infos = self._files(root, refresh=True)
        class_of = {code: self.facts.labels.index(name) for code, name in CODE_CLASSES.items()}
        records, dropped, seen_info = [], Counter(), False
        for info in infos:
            with open(info, newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                columns = [c.strip() for c in reader.fieldnames or []]
                if not set(INFO_COLUMNS) <= set(columns):
                    continue  # another CSV
                seen_info = True
                for line, row in enumerate(reader, start=2):
                    row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
                    try:
                        public_id, instance, code = row["public_id"], int(row["label_id"]), int(row["label_code"])
                    except ValueError:
                        raise RawSourceError(f"{info}, line {line}: label_id and label_code must be integers, got "
                                             f"{row['label_id']!r}, {row['label_code']!r}.") from None
                    if instance == 0:
                        continue  # the background row of every scan
                    part = ribfrac_part(public_id)
                    if part is None:
                        raise RawSourceError(f"{info}, line {line}: {public_id!r} is not a RibFrac scan id "
                                             "(RibFrac1 .. RibFrac660).")
                    if part == "test":
                        raise RawSourceError(f"{info}, line {line}: {public_id} belongs to RibFrac's test part, "
                                             "whose labels are not public; remove these lines.")
                    if code not in class_of:
                        dropped[DROPPED_CODES.get(code, f"code {code}")] += 1
                        continue
                    image = images.get(public_id)
                    relative = (image.relative_to(root).as_posix() if image is not None
                                else f"{public_id}-image.nii.gz")  # its load says the image is missing
                    records.append(RawRecord(f"{relative}#{instance}", class_of[code], part))
        if not seen_info:
            test_only = images and all(ribfrac_part(pid) == "test" for pid in images)
            what = ("these are RibFrac's test scans (RibFrac501-660), whose labels are not public: FractureMNIST3D "
                    "cannot be made from them" if test_only else "there is no RibFrac info CSV (columns "
                    "public_id,label_id,label_code): without it the fractures have no class")
            raise RawSourceError(f"{root}: {what}.\n{self.manual_download_instructions}")
        if dropped:
            logger.warning("%s: %s fracture(s) dropped: %s (FractureMNIST3D has classes for buckle, nondisplaced "
                           "and displaced fractures only).", root, sum(dropped.values()),
                           ", ".join(f"{n} {what}" for what, n in sorted(dropped.items())))
        self.last_dropped = dict(dropped)
        return records

    def _center(self, label_path: Path, instance: int, record: RawRecord) -> Tuple[int, int, int]:
        stat = label_path.stat()
        key = f"{label_path}:{stat.st_mtime_ns}:{stat.st_size}"
        if self._centers_cache[0] != key:  # records of a scan come one after the other: one scan cached
            type(self)._centers_cache = (key, instance_centers(label_path))
        center = self._centers_cache[1].get(instance)
        if center is None:
            raise RawRecordError(f"{label_path}: has no voxel of instance {instance}, which the info CSV lists "
                                 f"({record.record}). The label file does not match the CSV: unpack both again, "
                                 "or pass skip_bad=True to leave this fracture out.")
        return center

    def load(self, root: Path, record: RawRecord) -> np.ndarray:
        image_path = root / record.path
        public_id = image_path.name.split("-image")[0]
        label_path = self._files(root)[1].get(public_id)
        if not image_path.is_file():
            raise RawRecordError(f"{image_path}: the info CSV lists fractures of {public_id}, but its CT image is "
                                 "not there. Unpack its RibFrac images archive into the data folder, or pass "
                                 "skip_bad=True (CLI --skip-bad) to build without its fractures (they are reported).")
        if label_path is None:
            raise RawRecordError(f"{root}: no {public_id}-label.nii.gz for {image_path.name}: the fracture centers "
                                 "come from it. Unpack the RibFrac labels archive, or pass skip_bad=True.")
        image = open_nifti(image_path)
        label_volume_shape = open_nifti(label_path, what="label volume").shape
        if label_volume_shape != image.shape:
            raise RawRecordError(f"{label_path}: is {label_volume_shape}, but its image {image_path.name} is "
                                 f"{image.shape}: they are not a pair. Unpack both again, or pass skip_bad=True.")
        center = self._center(label_path, int(record.part), record)
        crop = volumeops.crop_around(image.proxy(), center, CROP, pad_value=PAD_HU)
        return image.to_display(crop)

    def render(self, loaded: np.ndarray, size: int, variant: Variant) -> Optional[np.ndarray]:
        gray = volumeops.hu_window(loaded, float(variant.option("level", WINDOW_LEVEL)),
                                   float(variant.option("width", WINDOW_WIDTH)))
        if volumeops.is_blank(gray):
            return None
        return gray if size == CROP else volumeops.resize_gray(gray, size)

    def default_variant(self, size: int) -> Variant:
        return Variant(kernel="bilinear", options=(("level", WINDOW_LEVEL), ("width", WINDOW_WIDTH)))

    def calibration_variants(self) -> List[Variant]:
        windows = [(400.0, 1200.0), (400.0, 1800.0), (500.0, 2000.0), (300.0, 1500.0), (50.0, 400.0)]
        return [Variant(options=(("level", lv), ("width", w))) for lv, w in windows]

    def parameters(self, variant: Variant) -> Dict[str, Any]:
        return {"recipe": type(self).__name__,
                "crop": f"{CROP}^3 around the fracture's center of mass, padded with {PAD_HU:g} HU",
                "window": f"HU level {float(variant.option('level', WINDOW_LEVEL)):g}, "
                          f"width {float(variant.option('width', WINDOW_WIDTH)):g}",
                "orientation": "superior->inferior, anterior->posterior, patient right->left (from the affine)",
                "resize": "none at 64; scipy zoom order 3, rounded, otherwise",
                "classes": "RibFrac codes 3/2/1 -> buckle/nondisplaced/displaced; 4 and -1 dropped"}


class FractureMNIST3D(MedMNISTBuilder):
    DATASET_NAME = "fracturemnist3d"
    RECIPE = RibFrac()
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
