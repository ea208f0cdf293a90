"""Lazy NIfTI reading for the CT recipes (LiTS, RibFrac): open without loading, read only a window, orient it.

A volume is opened with nibabel and never loaded whole: :meth:`NiftiVolume.read` slices the image's ArrayProxy
(``img.dataobj[x0:x1, y0:y1, z0:z1]``), which reads only the bytes of that window from an uncompressed ``.nii``
(and decompresses a ``.nii.gz`` as a stream, keeping only the window). Peak memory is bounded by the window.

Orientation. Voxel axes are named by the world direction they run towards, from the NIfTI affine (RAS+ world,
as nibabel reads it: ``nibabel.aff2axcodes``; e.g. ``('L', 'P', 'S')`` for a CT converted from DICOM in its
native order, ``('R', 'A', 'S')`` for a RAS-stored one). Every crop a CT recipe returns is put in one display
orientation, :data:`DISPLAY_AXCODES`: D x H x W = superior->inferior, anterior->posterior, patient right->left,
so an axial slice is seen as in a radiological viewer (anterior at the top, the patient's right on the left), a
coronal slice with the head at the top and the patient's right on the left, a sagittal one with the head at the
top and anterior on the left. Only the affine's rotation part is used (which voxel axis runs along which world
axis, and which way); voxel spacing is not used (crops are voxel boxes).

Volumes without voxel spacing or orientation (pixdim 0, which nibabel resets to 1 when it reads the header, and
qform_code = sform_code = 0, or a singular affine) have no usable affine: nibabel would invent its ANALYZE default
(x flipped), which says nothing about the scan. Their voxel indices are used as they are, taken in the order LiTS
and RibFrac volumes with an affine are stored in, :data:`FALLBACK_AXCODES` (axis 0 towards the patient's left,
axis 1 posterior, axis 2 superior: DICOM's native order), and a warning says so. Crops are voxel boxes either way.
"""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from .errors import RawRecordError

logger = logging.getLogger(__name__)

DISPLAY_AXCODES = ("I", "P", "L")  # D x H x W of every CT crop (see the module text)
FALLBACK_AXCODES = ("L", "P", "S")  # voxel axes of a volume without spacing (DICOM's native order)
_PAIRS = {"L": "LR", "R": "LR", "A": "AP", "P": "AP", "S": "SI", "I": "SI"}


def _bad(path, err, what: str) -> RawRecordError:
    return RawRecordError(
        f"{path}: cannot be read as a NIfTI {what} ({type(err).__name__}: {err}); the file is truncated or corrupt. "
        "Download or unpack it again from the collection, or pass skip_bad=True (CLI --skip-bad) to leave its "
        "records out (they are reported).")


def load_image(path, what: str = "volume"):
    """Open a NIfTI file with nibabel (header only; no voxel is read), or raise :class:`RawRecordError` naming it."""
    import nibabel

    path = Path(path)
    if not path.is_file():
        raise RawRecordError(f"{path}: file not found. The collection is incomplete: unpack it again, or pass "
                             "skip_bad=True (CLI --skip-bad) to leave its records out (they are reported).")
    try:
        image = nibabel.load(str(path), mmap=False)
        header = image.header
        shape = tuple(int(n) for n in image.shape)
    except (nibabel.filebasedimages.ImageFileError, OSError, EOFError, ValueError, zlib.error) as err:
        raise _bad(path, err, what) from None
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise RawRecordError(f"{path}: a NIfTI {what} of shape {shape}, not a 3D volume. It is not a file of "
                             "this collection: replace it, or pass skip_bad=True to leave it out.")
    if not str(path).endswith(".gz"):  # an uncompressed file must hold every voxel: a short one is truncated
        needed = int(header.get_data_offset()) + int(np.prod(image.shape)) * header.get_data_dtype().itemsize
        if os.path.getsize(path) < needed:
            raise RawRecordError(
                f"{path}: is {os.path.getsize(path):,} bytes, but its header describes {needed:,} bytes of a "
                f"{'x'.join(map(str, shape))} volume: the file is truncated. Download or unpack it again, or pass "
                "skip_bad=True (CLI --skip-bad) to leave its records out (they are reported).")
    return image


def axcodes(image) -> Optional[Tuple[str, str, str]]:
    """The world direction of each voxel axis from the affine, or None when the volume has no spacing."""
    import nibabel

    header = image.header
    if int(header.get("qform_code", 0)) == 0 and int(header.get("sform_code", 0)) == 0:
        return None  # no orientation in the file: nibabel's affine would be its ANALYZE default, not the scan's
    affine = np.asarray(image.affine, dtype=float)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        return None
    return tuple(nibabel.aff2axcodes(affine))


@dataclass
class NiftiVolume:
    """A NIfTI volume read lazily, in ``permutation`` order of its stored axes (a fix for mis-stored volumes).

    ``shape`` and every slice given to :meth:`read` are in that order; ``codes`` are the axis codes of that order.
    """

    path: Path
    image: object
    permutation: Tuple[int, int, int] = (0, 1, 2)
    codes: Tuple[str, str, str] = FALLBACK_AXCODES
    spacing_known: bool = True

    @property
    def shape(self) -> Tuple[int, int, int]:
        stored = tuple(int(n) for n in self.image.shape[:3])
        return tuple(stored[axis] for axis in self.permutation)

    def read(self, window: Sequence[slice]) -> np.ndarray:
        """The voxels of ``window`` (three slices in this volume's axis order) as float32 (scaled: HU for CT)."""
        stored = [slice(None)] * 3
        for axis, part in zip(self.permutation, window):
            stored[axis] = part
        index = tuple(stored) + ((0,) if len(self.image.shape) == 4 else ())
        try:
            data = np.asarray(self.image.dataobj[index], dtype=np.float32)
        except (OSError, EOFError, ValueError, zlib.error) as err:
            raise _bad(self.path, err, "volume") from None
        return data.transpose(self.permutation)

    def axis_along(self, pair: str) -> int:
        """The axis (in this volume's order) that runs along the world axis ``pair`` ("LR", "AP" or "SI")."""
        return next(i for i, code in enumerate(self.codes) if _PAIRS[code] == pair)

    def to_display(self, array: np.ndarray) -> np.ndarray:
        """A window read from this volume, reoriented to :data:`DISPLAY_AXCODES` (D x H x W)."""
        return reorient(array, self.codes)

    def proxy(self) -> "FloatProxy":
        """This volume as an array-like that :func:`volumeops.crop_around` can slice (float32 voxels)."""
        return FloatProxy(self)


class FloatProxy:
    """Slicing view of a :class:`NiftiVolume` with a float32 dtype (the ArrayProxy's dtype is the stored one,
    e.g. int16, which would truncate scaled voxels and cannot hold every padding value)."""

    dtype = np.dtype(np.float32)

    def __init__(self, volume: NiftiVolume):
        self.volume = volume
        self.shape = volume.shape

    def __getitem__(self, index):
        return self.volume.read(index)


def reorient(array: np.ndarray, codes: Sequence[str], target: Sequence[str] = DISPLAY_AXCODES) -> np.ndarray:
    """``array`` (axes named by ``codes``) transposed and flipped to the axes ``target`` (a copy, contiguous)."""
    from nibabel.orientations import apply_orientation, axcodes2ornt, ornt_transform

    transform = ornt_transform(axcodes2ornt(tuple(codes)), axcodes2ornt(tuple(target)))
    return np.ascontiguousarray(apply_orientation(array, transform))


def open_volume(path, permutation: Tuple[int, int, int] = (0, 1, 2), what: str = "volume",
                image=None) -> NiftiVolume:
    """Open ``path`` lazily (or use its ``image`` from :func:`load_image`); its axes are put in ``permutation``
    order (with the affine's columns alike)."""
    image = load_image(path, what) if image is None else image
    codes = axcodes(image)
    if codes is None:
        logger.warning("%s: no voxel spacing or orientation in the header (qform_code and sform_code 0, or a "
                       "singular affine): voxel indices are used, the axes taken as %s (DICOM's native order, as "
                       "the collection's other volumes).",
                       path, "".join(FALLBACK_AXCODES))
        return NiftiVolume(Path(path), image, tuple(permutation), FALLBACK_AXCODES, spacing_known=False)
    return NiftiVolume(Path(path), image, tuple(permutation), tuple(codes[axis] for axis in permutation))
