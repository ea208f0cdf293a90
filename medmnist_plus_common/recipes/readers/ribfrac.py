"""Reading the RibFrac collection (MICCAI 2020 rib fracture challenge; FractureMNIST3D's source).

Its files are found by name anywhere below the folder a user unpacked the archives into: the CT images
``RibFrac<n>-image.nii[.gz]``, the instance-label volumes ``RibFrac<n>-label.nii[.gz]`` (each fracture an instance
id > 0) and the info CSVs (``public_id,label_id,label_code``, one line per instance). The public ids fall into
RibFrac's parts (:data:`PARTS`); the test part's labels are not public. Errors name the file (and line), what is
wrong and what to do.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ...errors import RawRecordError, RawSourceError
from .nifti import NiftiVolume, instance_centers, open_nifti

PARTS = ((1, 420, "train"), (421, 500, "validation"), (501, 660, "test"))  # RibFrac's public ids per part
IMAGE_NAME = re.compile(r"^(RibFrac\d+)-image\.nii(\.gz)?$")
LABEL_NAME = re.compile(r"^(RibFrac\d+)-label\.nii(\.gz)?$")
INFO_COLUMNS = ("public_id", "label_id", "label_code")
_FILES: Dict[str, Tuple[Dict[str, Path], Dict[str, Path], List[Path]]] = {}
Centers = Dict[int, Tuple[int, int, int]]

DOWNLOAD_INSTRUCTIONS = """\
FractureMNIST3D is made from the RibFrac challenge data (Jin et al. 2020; https://ribfrac.grand-challenge.org/,
Zenodo records 3893507 and 3893497 (training parts 1 and 2) and 3893495 (validation)). Unpack the training and
validation archives (images, labels and the info CSVs) into one folder and pass it as data_dir; sub-folder names
do not matter, the files are found anywhere below it:
    <data_dir>/ribfrac-train-images-1/Part1/RibFrac1-image.nii.gz ...      (and -2/Part2, ribfrac-val-images)
    <data_dir>/ribfrac-train-labels-1/Part1/RibFrac1-label.nii.gz ...      (and -2/Part2, ribfrac-val-labels)
    <data_dir>/ribfrac-train-info-1.csv, ribfrac-train-info-2.csv, ribfrac-val-info.csv
        (columns public_id,label_id,label_code)
RibFrac's test part (RibFrac501-660, Zenodo 3993380) has no public labels: it cannot make FractureMNIST3D rows."""


@dataclass(frozen=True)
class Fracture:
    """One annotated fracture of an info CSV: its scan's image (relative to the root), instance id, code, part."""

    image: str
    instance: int
    code: int
    part: str

    @property
    def record(self) -> str:
        return f"{self.image}#{self.instance}"


def ribfrac_part(public_id: str) -> Optional[str]:
    match = re.match(r"^RibFrac(\d+)$", public_id)
    if not match:
        return None
    number = int(match.group(1))
    return next((part for lo, hi, part in PARTS if lo <= number <= hi), None)


def is_ribfrac_root(path: Path) -> bool:
    """Whether a RibFrac image or info CSV lies in ``path`` or up to two levels below it."""
    for pattern in ("*", "*/*", "*/*/*"):
        for found in path.glob(pattern):
            if IMAGE_NAME.match(found.name) or (found.name.lower().startswith("ribfrac-")
                                                and found.name.lower().endswith(".csv")):
                return True
    return False


def ribfrac_files(root: Path, refresh: bool = False) -> Tuple[Dict[str, Path], Dict[str, Path], List[Path]]:
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


def read_fractures(root: Path, instructions: str = "") -> List[Fracture]:
    """Every fracture (instance id > 0) of the info CSVs below ``root``, in file and line order (the file list is
    walked again). Without an info CSV, a :class:`RawSourceError` says why (ending with ``instructions``)."""
    images, _, infos = ribfrac_files(root, refresh=True)
    fractures, seen_info = [], False
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
                image = images.get(public_id)
                relative = (image.relative_to(root).as_posix() if image is not None
                            else f"{public_id}-image.nii.gz")  # its load says the image is missing
                fractures.append(Fracture(relative, instance, code, part))
    if not seen_info:
        test_only = images and all(ribfrac_part(pid) == "test" for pid in images)
        what = ("these are RibFrac's test scans (RibFrac501-660), whose labels are not public: FractureMNIST3D "
                "cannot be made from them" if test_only else "there is no RibFrac info CSV (columns "
                "public_id,label_id,label_code): without it the fractures have no class")
        raise RawSourceError(f"{root}: {what}.\n{instructions}")
    return fractures


def open_scan(root: Path, image_path: Path) -> Tuple[NiftiVolume, Path]:
    """The CT image of a scan (lazily, :func:`nifti.open_nifti`) and the path of its label volume, checked to be
    a pair of the same shape."""
    public_id = image_path.name.split("-image")[0]
    label_path = ribfrac_files(root)[1].get(public_id)
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
    return image, label_path


def fracture_center(label_path: Path, instance: int, record: str, cached: Tuple[Optional[str], Centers],
                    slab: int) -> Tuple[Tuple[int, int, int], Tuple[Optional[str], Centers]]:
    """The rounded center of mass of ``instance`` in its label volume (:func:`nifti.instance_centers`, ``slab``
    slices at a time), and the centers of that scan as ``(version key, centers)``: pass them back as ``cached``
    (records of a scan come one after the other, so one scan is kept)."""
    stat = label_path.stat()
    key = f"{label_path}:{stat.st_mtime_ns}:{stat.st_size}"
    if cached[0] != key:
        cached = (key, instance_centers(label_path, slab))
    center = cached[1].get(instance)
    if center is None:
        raise RawRecordError(f"{label_path}: has no voxel of instance {instance}, which the info CSV lists "
                             f"({record}). The label file does not match the CSV: unpack both again, "
                             "or pass skip_bad=True to leave this fracture out.")
    return center, cached
