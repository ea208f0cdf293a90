"""The LiTS CT collection with the organ boxes of Xu et al.: the source of Organ{A,C,S}MNIST and OrganMNIST3D.

The collection (facts the reader below relies on; the ASSUMPTIONS are marked and are parameters or documented
choices, since MedMNIST never published its preprocessing):

- CT volumes of the Liver Tumor Segmentation Benchmark (Bilic et al.): ``volume-N.nii`` (N = 0..130, training
  batches 1 and 2) and ``test-volume-N.nii`` (N = 0..69), uncompressed or ``.nii.gz``, HU after the header's
  scaling, in any sub-folders of the folder given (the LiTS liver/tumor masks ``segmentation-N.nii`` are not used).
- Organ boxes (Xu et al. 2019, "annotations for the body organ localization based on the MICCAI LiTS dataset",
  IEEE DataPort): one text file per volume, ``segmentation-N.txt`` for ``volume-N`` and
  ``test-segmentation-N.txt`` for ``test-volume-N``. One line per organ, whitespace-separated integers:
  ``code x0 x1 y0 y1 z0 z1``, or the same preceded by the organ's name (``liver 1 x0 x1 ...``, names as in
  :data:`NAME_ALIASES`). ASSUMPTION (the format of the genuine files was not available here): ``x``, ``y`` and
  ``z`` are voxel axes 0, 1 and 2 of the volume as stored (after the fix of ``test-volume-59`` below); bounds are
  half-open like Python slices (voxels ``x0 .. x1 - 1``: a box may end at the volume's edge, ``x1 = shape``).
  When a line names its organ the name decides the label (the catalog's names are trusted) and must agree with
  the code; otherwise the code does, through :data:`ORGAN_CODES`. Blank lines and ``#`` comments are skipped.
- Records: one per organ box, named ``<path of the volume>#<code>`` (e.g. ``Training Batch 1/volume-0.nii#1``).
- ``test-volume-59`` is stored with its 2nd and 3rd voxel axes swapped (512 x Z x 512 where every other volume is
  512 x 512 x Z; ASSUMPTION taken from other LiTS readers, which swap its axes 1 and 2 to match the boxes; the
  genuine file was not available here). Detected by shape (axes 0 and 2 equal, axis 1 different:
  :func:`stored_permutation`), for any volume: the axes are swapped back before the box is applied, as the box
  files describe the volume in the usual order. The affine is read either way: if its columns, swapped alike,
  make axis 2 the S-I axis, it described the stored axes; if it does so unswapped, it was written for the usual
  order and is used as it is.
- Volumes without voxel spacing: see :mod:`.readers.nifti` (voxel axes taken as L, P, S; a warning says so).

HU -> gray: the abdominal window (ASSUMPTION: level 50 HU, width 400 HU, the usual abdominal window; the value
MedMNIST used is not published; ``calibrate`` settles it and ``recipe_variant="level=40,width=350"`` changes it):
clip to [level - width/2, level + width/2], scale to 0..255, round (:func:`volumeops.hu_window`). A box whose
windowed crop has no nonzero voxel (e.g. only air) is blank: dropped and counted.

Crops: every crop is reoriented to the display orientation of :mod:`.readers.nifti` (D x H x W = superior->inferior,
anterior->posterior, patient right->left). Which voxel axis is which comes from the affine: a volume stored in
DICOM order (affine ``diag(-sx, -sy, sz)``, axis codes L, P, S, what LiTS volumes usually have) has axis 0 = x
running towards the patient's left, axis 1 = y towards posterior, axis 2 = z towards superior; its axial slice
``v[x0:x1, y0:y1, c]`` is shown transposed (rows y, columns x) and its coronal and sagittal slices with z
reversed (head up). A RAS-stored volume (``diag(sx, sy, sz)``) has the same axes with x and y running the other
way, so its slices are also flipped left-right (and axial ones up-down) to look the same.

2D (Organ{A,C,S}MNIST): the plane's normal is the voxel axis that runs along S-I (axial), A-P (coronal) or L-R
(sagittal) according to the affine; the slice is the box's center
along that axis, ``x0 + crop_offset(x1 - x0, 1)`` (``int(round((n - 1) / 2))``, halves to even like
:func:`imageops.crop_offset`); the image is the box's two other extents on that slice, resized by PIL (bilinear,
as the measured 2D rule) straight to size x size (the box's aspect is not kept: the text says "resized"; no JPEG
round trip: the sources are NIfTI volumes, not JPEG files, an ASSUMPTION). 3D (OrganMNIST3D): the whole box,
windowed, resized by :func:`volumeops.resize_gray` (cubic zoom per axis) to size^3.

Split (the paper's rule, used without a manifest): by scan, 115 / 16 / 70. The 70 test volumes are the test
split; the 131 training volumes are divided 115 train / 16 validation by a seeded shuffle of scans (of a
partial collection, in that proportion); all boxes of a scan stay in one split (:class:`ScanSplitRule`).

Row counts: the center-slice rule gives one image per box (about 1,742 boxes in all, OrganMNIST3D's count), but
the official Organ{A,C,S}MNIST hold 58,830 / 23,583 / 25,211 images, about 34 / 14 / 15 per box: the 2D
releases took more slices per box than the recipe text says, by a rule that is not published. A complete
collection therefore builds fewer 2D rows than the catalog (use verification_mode='no_checks', CLI --no-checks).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from . import imageops, volumeops
from ..catalog import SPLITS, DatasetFacts
from ..errors import RawRecordError, RawSourceError
from .readers.nifti import NiftiVolume, open_nifti
from .base import Assigned, RawRecipe, RawRecord, SplitRule, Variant

logger = logging.getLogger(__name__)

# The organ codes of the box files and the organ each names (the catalog's label names). OrganMNIST3D's catalog
# lists its labels in this code order (label = code - 1); Organ{A,C,S}MNIST list them alphabetically. Labels are
# found by name in each dataset's own catalog list, so one table serves all four.
ORGAN_CODES = {1: "liver", 2: "kidney-right", 3: "kidney-left", 4: "femur-right", 5: "femur-left", 6: "bladder",
               7: "heart", 8: "lung-right", 9: "lung-left", 10: "spleen", 11: "pancreas"}
# Names a box line may carry before its code (Xu et al.'s short names and the catalog's).
NAME_ALIASES = dict({name: name for name in ORGAN_CODES.values()},
                    **{"kidney-r": "kidney-right", "kidney-l": "kidney-left", "femur-r": "femur-right",
                       "femur-l": "femur-left", "lung-r": "lung-right", "lung-l": "lung-left"})
WINDOW_LEVEL, WINDOW_WIDTH = 50.0, 400.0  # ASSUMPTION: the abdominal window (see the module text)
SCANS = {"train": 115, "validation": 16, "test": 70}  # the paper's split, in scans
PLANES = {"axial": ("SI", 0), "coronal": ("AP", 1), "sagittal": ("LR", 2)}  # world axis of the normal, display axis
BOX_FORMAT = "[name] code x0 x1 y0 y1 z0 z1 (integers; half-open voxel bounds along axes 0, 1, 2)"

VOLUME_NAME = re.compile(r"^(test-)?volume-(\d+)\.nii(\.gz)?$")
BOX_NAME = re.compile(r"^(test-)?segmentation-(\d+)\.txt$")

INSTRUCTIONS = """\
{title} is made from the CT volumes of the Liver Tumor Segmentation Benchmark (LiTS, Bilic et al.;
https://competitions.codalab.org/competitions/17094, also on Zenodo and academictorrents) and the organ bounding
boxes of Xu et al. 2019 (IEEE DataPort, "Annotations for body organ localization based on MICCAI LiTS dataset":
annotations_of_training_set.zip and annotations_of_testing_set.zip). Unpack the LiTS training batches 1 and 2,
the LiTS test data and both annotation archives into one folder and pass it as data_dir. Sub-folder names do not
matter; the files are found anywhere below it:
    <data_dir>/Training Batch 1/volume-0.nii ... volume-27.nii          (.nii or .nii.gz)
    <data_dir>/Training Batch 2/volume-28.nii ... volume-130.nii
    <data_dir>/Test Data/test-volume-0.nii ... test-volume-69.nii
    <data_dir>/annotations/segmentation-0.txt ... segmentation-130.txt, test-segmentation-0.txt ... -69.txt
Box lines: {box_format}.{rows_note}"""
ROWS_NOTE_2D = """
The recipe text's center slice gives one image per organ box (about 1,742 in all), while the official 2D release
has more slices per box (how they were chosen is not published): a complete collection builds fewer rows than the
catalog, so build with verification_mode='no_checks' (CLI --no-checks)."""
ROWS_NOTE_3D = """
The paper's split is by scan (115 / 16 / 70): the number of boxes in each split depends on which scans the seeded
shuffle picks, so build with verification_mode='no_checks' (CLI --no-checks) or pass a manifest of the official
split."""


def volume_key(name: str) -> Optional[Tuple[bool, int]]:
    """``(is_test, N)`` of a volume file name, or None."""
    match = VOLUME_NAME.match(name)
    return (bool(match.group(1)), int(match.group(2))) if match else None


def volume_name(key: Tuple[bool, int]) -> str:
    return f"{'test-' if key[0] else ''}volume-{key[1]}.nii"


def record_sort_key(record: str) -> Tuple:
    """Records in collection order: training volumes, then test volumes, by number, then organ code."""
    path, _, part = record.partition("#")
    key = volume_key(path.rsplit("/", 1)[-1]) or (True, 10**9)
    return key[0], key[1], int(part) if part.isdigit() else 0, record


@dataclass(frozen=True)
class OrganBox:
    code: int
    name: str  # the catalog's name of the organ
    bounds: Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int]]  # half-open, voxel axes 0, 1, 2
    file: str
    line: int

    def window(self) -> Tuple[slice, slice, slice]:
        return tuple(slice(lo, hi) for lo, hi in self.bounds)


def read_box_file(path: Path) -> List[OrganBox]:
    """The organ boxes of one box file (format: :data:`BOX_FORMAT`); errors name the file and the line."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise RawSourceError(f"{path}: cannot read the organ box file ({err.strerror}).") from None
    boxes, seen = [], {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].replace(",", " ").split()
        if not fields:
            continue
        where = f"{path}, line {number}"
        name = None
        if len(fields) == 8:
            alias = fields[0].lower()
            if alias not in NAME_ALIASES:
                raise RawSourceError(f"{where}: unknown organ name {fields[0]!r}; known: "
                                     f"{', '.join(sorted(NAME_ALIASES))}. Expected lines: {BOX_FORMAT}.")
            name, fields = NAME_ALIASES[alias], fields[1:]
        try:
            numbers = [int(float(f)) for f in fields]
        except ValueError:
            numbers = []
        if len(numbers) != 7:
            raise RawSourceError(f"{where}: {line.strip()!r} is not an organ box line. Expected: {BOX_FORMAT}. "
                                 "Is this a box file of Xu et al.'s LiTS organ annotations?")
        code = numbers[0]
        if code not in ORGAN_CODES:
            raise RawSourceError(f"{where}: organ code {code} is not one of 1..11 ({ORGAN_CODES}).")
        if name is not None and name != ORGAN_CODES[code]:
            raise RawSourceError(f"{where}: the line names {name!r} but code {code} is {ORGAN_CODES[code]!r}; "
                                 "fix the line (or the code table in medmnist_plus_common/recipes/lits.py if the codes "
                                 "of your box files differ).")
        if code in seen:
            raise RawSourceError(f"{where}: organ code {code} ({ORGAN_CODES[code]}) is listed twice (also on line "
                                 f"{seen[code]}); each organ has one box per volume.")
        seen[code] = number
        bounds = tuple((numbers[1 + 2 * a], numbers[2 + 2 * a]) for a in range(3))
        boxes.append(OrganBox(code, name or ORGAN_CODES[code], bounds, str(path), number))
    return boxes


@dataclass
class CollectionIndex:
    volumes: Dict[Tuple[bool, int], Path]
    boxes: Dict[Tuple[bool, int], Path]


_INDEX_CACHE: Dict[str, CollectionIndex] = {}


def index_collection(root: Path, refresh: bool = False) -> CollectionIndex:
    """Every volume and box file below ``root`` by ``(is_test, N)`` (cached per root for the build's loads)."""
    key = str(Path(root).resolve())
    if refresh or key not in _INDEX_CACHE:
        volumes, boxes = {}, {}
        for path in sorted(Path(root).rglob("*")):
            if path.name.startswith(".") or not path.is_file():
                continue
            found = volume_key(path.name)
            if found is not None:
                if found in volumes and volumes[found].name != path.name:  # .nii and .nii.gz both: prefer .nii
                    if path.name.endswith(".gz"):
                        continue
                elif found in volumes:
                    raise RawSourceError(f"{root}: {path.name} is there twice ({volumes[found]} and {path}). Keep "
                                         "one copy of each volume.")
                volumes[found] = path
                continue
            match = BOX_NAME.match(path.name)
            if match:
                found = (bool(match.group(1)), int(match.group(2)))
                if found in boxes:
                    raise RawSourceError(f"{root}: {path.name} is there twice ({boxes[found]} and {path}). Keep "
                                         "one copy of each box file.")
                boxes[found] = path
        _INDEX_CACHE[key] = CollectionIndex(volumes, boxes)
    return _INDEX_CACHE[key]


def stored_permutation(shape: Sequence[int]) -> Tuple[int, int, int]:
    """The axis order that undoes a swap of axes 1 and 2 (``test-volume-59``: 512 x Z x 512), else identity."""
    if len(shape) >= 3 and shape[0] == shape[2] != shape[1]:
        return (0, 2, 1)
    return (0, 1, 2)


def open_lits_volume(path: Path) -> NiftiVolume:
    """A LiTS volume, read lazily, with swapped axes 1 and 2 undone (see the module text)."""
    from .readers.nifti import load_image

    image = load_image(path)
    permutation = stored_permutation(image.shape)
    volume = open_nifti(path, permutation, image=image)
    if permutation != (0, 1, 2):
        logger.info("%s: stored with voxel axes 1 and 2 swapped (shape %s, as LiTS test-volume-59): swapped back "
                    "before its boxes are applied.", path, tuple(image.shape))
        # Swapped back, axis 2 is the slice (S-I) axis. An affine that describes the stored (swapped) axes says so
        # once its columns are swapped too; one written for the usual order says so as it is: use that one.
        stored_codes = (volume.codes[0], volume.codes[2], volume.codes[1])
        if volume.spacing_known and volume.codes[2] not in "SI" and stored_codes[2] in "SI":
            logger.info("%s: its affine describes the usual axis order, not the stored one: used as it is.", path)
            volume.codes = stored_codes
    return volume


@dataclass(frozen=True)
class ScanSplitRule(SplitRule):
    """The paper's split of LiTS by scan: the test volumes are the test split, the training volumes are divided
    train:validation by a seeded shuffle of scans (115:16 of 131), every box of a scan in its scan's split."""

    scans: Tuple[int, int, int] = (SCANS["train"], SCANS["validation"], SCANS["test"])
    test_from: Optional[str] = "test"
    pool: Tuple[Optional[str], ...] = ("train",)

    def describe(self) -> str:
        return (f"by scan, as the paper ({self.scans[0]} / {self.scans[1]} / {self.scans[2]} scans): the "
                f"collection's {self.test_from!r} volumes are the test split; its {self.pool[0]!r} volumes are "
                f"divided train:validation {self.scans[0]}:{self.scans[1]} by a seeded shuffle of scans, every box "
                "of a scan in the same split")

    def assign(self, records: Sequence[RawRecord], facts: DatasetFacts, seed: int = 0) -> List[Assigned]:
        scans: Dict[str, List[RawRecord]] = {}
        for record in records:
            scans.setdefault(record.path, []).append(record)
        order = sorted(scans, key=record_sort_key)
        pool = [scan for scan in order if scans[scan][0].source_split in self.pool]
        test = [scan for scan in order if scans[scan][0].source_split == self.test_from]
        if len(pool) == self.scans[0] + self.scans[1]:
            n_val = self.scans[1]
        else:
            n_val = int(round(len(pool) * self.scans[1] / (self.scans[0] + self.scans[1])))
        shuffled = [pool[i] for i in np.random.default_rng(seed).permutation(len(pool))]
        parts = {"validation": shuffled[:n_val], "train": shuffled[n_val:], "test": test}
        assigned = []
        for split in SPLITS:
            members = sorted((r for scan in parts[split] for r in scans[scan]), key=lambda r: record_sort_key(r.record))
            assigned += [Assigned(split, index, record) for index, record in enumerate(members)]
        return assigned


class LiTSRecipe(RawRecipe):
    """Organ boxes of LiTS CT volumes: the center slice in ``plane`` (2D), or the whole box (``plane=None``, 3D)."""

    plane: Optional[str] = None  # "axial", "coronal", "sagittal"; None: the 3D box
    collection = "LiTS CT volumes with the organ boxes of Xu et al."
    root_candidates = ("",)
    split_rule = ScanSplitRule()

    @property
    def manual_download_instructions(self) -> str:
        return INSTRUCTIONS.format(title=self.facts.title, box_format=BOX_FORMAT,
                                   rows_note=ROWS_NOTE_3D if self.plane is None else ROWS_NOTE_2D)

    def is_root(self, path: Path) -> bool:
        for pattern in ("*segmentation-*.txt", "*/*segmentation-*.txt", "*/*/*segmentation-*.txt"):
            if any(BOX_NAME.match(p.name) for p in path.glob(pattern)):
                return True
        return False

    def records(self, root: Path) -> List[RawRecord]:
        index = index_collection(root, refresh=True)
        if not index.boxes:
            raise RawSourceError(
                f"{root}: there are LiTS volumes but no organ box files (segmentation-N.txt / "
                "test-segmentation-N.txt): the volumes alone do not say where the organs are.\n"
                + self.manual_download_instructions)
        labels = self.facts.labels
        records = []
        for key in sorted(index.boxes):
            box_file = index.boxes[key]
            volume = index.volumes.get(key)
            # A box file without its volume still gives records: their load says the volume is missing, and
            # skip_bad=True builds the rest (a partial collection) with them reported.
            relative = (volume.relative_to(root) if volume is not None
                        else box_file.parent.relative_to(root) / volume_name(key)).as_posix()
            for box in read_box_file(box_file):
                records.append(RawRecord(f"{relative}#{box.code}", labels.index(box.name),
                                         "test" if key[0] else "train"))
        return records

    def box_of(self, root: Path, record: RawRecord) -> OrganBox:
        key = volume_key(record.path.rsplit("/", 1)[-1])
        if key is None or record.part is None or not record.part.isdigit():
            raise RawRecordError(f"{record.record}: not a LiTS organ record (<path>/[test-]volume-N.nii[.gz]#<code>).")
        box_file = index_collection(root).boxes.get(key)
        if box_file is None:
            raise RawRecordError(f"{root}: no box file {'test-' if key[0] else ''}segmentation-{key[1]}.txt for "
                                 f"{record.path}. Unpack Xu et al.'s annotation archives into {root}.")
        code = int(record.part)
        for box in read_box_file(box_file):
            if box.code == code:
                return box
        raise RawRecordError(f"{box_file}: has no box of organ code {code} ({record.record}).")

    def load(self, root: Path, record: RawRecord) -> np.ndarray:
        box = self.box_of(root, record)
        path = root / record.path
        if not path.is_file():
            raise RawRecordError(
                f"{box.file} lists organ boxes of {path.name}, but {path} is not there (nor as .nii.gz). Unpack the "
                "LiTS volume it belongs to into the data folder, or pass skip_bad=True (CLI --skip-bad) to build "
                "without its boxes (they are reported).")
        volume = open_lits_volume(path)
        shape = volume.shape
        for axis, (lo, hi) in enumerate(box.bounds):
            if not 0 <= lo < hi <= shape[axis]:
                problem = "is empty" if hi <= lo else f"leaves the volume (axis {axis} has voxels 0..{shape[axis] - 1})"
                raise RawRecordError(
                    f"{box.file}, line {box.line}: the box of {box.name} ({box.bounds}) {problem}; {path.name} is "
                    f"{'x'.join(map(str, shape))} voxels. The box file does not belong to this volume or is damaged: "
                    "replace it with the original annotation file, or pass skip_bad=True to leave this box out.")
        window = list(box.window())
        if self.plane is None:
            return volume.to_display(volume.read(window))
        pair, display_axis = PLANES[self.plane]
        normal = volume.axis_along(pair)
        lo, hi = box.bounds[normal]
        center = lo + imageops.crop_offset(hi - lo, 1)
        window[normal] = slice(center, center + 1)
        return np.take(volume.to_display(volume.read(window)), 0, axis=display_axis)

    def render(self, loaded: np.ndarray, size: int, variant: Variant) -> Optional[np.ndarray]:
        gray = volumeops.hu_window(loaded, float(variant.option("level", WINDOW_LEVEL)),
                                   float(variant.option("width", WINDOW_WIDTH)))
        if volumeops.is_blank(gray):
            return None
        if self.plane is None:
            return volumeops.resize_gray(gray, size)
        out = imageops.resize(Image.fromarray(gray, "L"), size, variant.kernel)
        return imageops.as_release_pixels(out, 1)

    def default_variant(self, size: int) -> Variant:
        return Variant(kernel="bilinear", jpeg_quality=None,
                       options=(("level", WINDOW_LEVEL), ("width", WINDOW_WIDTH)))

    def calibration_variants(self) -> List[Variant]:
        windows = [(50.0, 400.0), (40.0, 400.0), (40.0, 350.0), (60.0, 400.0), (50.0, 350.0)]
        kernels = ("bilinear",) if self.plane is None else ("bilinear", "bicubic", "lanczos")
        return [Variant(kernel=k, options=(("level", lv), ("width", w))) for lv, w in windows for k in kernels]

    def parameters(self, variant: Variant) -> Dict[str, Any]:
        level = float(variant.option("level", WINDOW_LEVEL))
        width = float(variant.option("width", WINDOW_WIDTH))
        crop = (f"center {self.plane} slice of the organ box" if self.plane else "the whole organ box")
        return {"recipe": type(self).__name__, "window": f"HU level {level:g}, width {width:g}", "crop": crop,
                "orientation": "superior->inferior, anterior->posterior, patient right->left (from the affine)",
                "resize": (f"PIL {variant.kernel}" if self.plane else "scipy zoom order 3, rounded"),
                "store": "lossless (NIfTI source)"}
