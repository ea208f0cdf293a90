"""Lazy NIfTI reading for the CT recipes (LiTS, RibFrac): open without loading, read only a window, orient it.

A volume is opened with nibabel and never loaded whole: :meth:`NiftiVolume.read` slices the image's ArrayProxy
(``img.dataobj[x0:x1, y0:y1, z0:z1]``), which reads only the bytes of that window from an uncompressed ``.nii``.
A small ``.nii.gz`` is decompressed as a stream up to the window, keeping only the window; a large one is
decompressed once per process into a temporary file on disk (see ``UNPACK_ABOVE``), whose windows are then read
like a ``.nii``. Peak memory is bounded by the window.

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
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ...release.download import file_identity
from ...errors import RawRecordError

logger = logging.getLogger(__name__)

DISPLAY_AXCODES = ("I", "P", "L")  # D x H x W of every CT crop (see the module text)
FALLBACK_AXCODES = ("L", "P", "S")  # voxel axes of a volume without spacing (DICOM's native order)
_PAIRS = {"L": "LR", "R": "LR", "A": "AP", "P": "AP", "S": "SI", "I": "SI"}


def _bad(path, err, what: str) -> RawRecordError:
    return RawRecordError(
        f"{path}: cannot be read as a NIfTI {what} ({type(err).__name__}: {err}); the file is truncated or corrupt. "
        "Download or unpack it again from the collection, or pass skip_bad=True (CLI --skip-bad) to leave its "
        "records out (they are reported).")


# A gzip stream cannot seek: every window read from a .nii.gz decompresses the volume from its start up to the
# window (0.6 s per box of a 300 MB LiTS volume). A large .nii.gz is therefore decompressed once into an unnamed
# temporary file (on disk, not in memory; the system removes it when the last image using it is gone), and the
# last UNPACKED_KEPT of them are kept per process, so the boxes of one volume (and a RibFrac image with its label
# volume) are read from one copy.
UNPACK_ABOVE = 16 * 2**20  # compressed bytes; smaller files (80^3 nodules, 120^3 masks) are read as they are
UNPACKED_KEPT = 2
# real path -> (file identity, pid, temporary file). A forked worker inherits the parent's open copies, but an inherited
# file shares its read position with the parent and the other workers: it reopens the copy for itself.
_unpacked: "OrderedDict[str, Tuple[str, int, object]]" = OrderedDict()


def _unpacked_copy(path: Path):
    """The decompressed bytes of the .nii.gz ``path`` in an unnamed temporary file (made once per version)."""
    import gzip
    import shutil
    import tempfile

    key, identity = os.path.realpath(path), file_identity(path)
    if key in _unpacked and _unpacked[key][0] == identity:
        _, pid, copy = _unpacked[key]
        if pid != os.getpid():
            try:  # the same temporary file with a read position of its own (Linux)
                copy = open(f"/proc/self/fd/{copy.fileno()}", "rb")
            except (OSError, ValueError):
                copy = None
        if copy is not None:
            _unpacked[key] = (identity, os.getpid(), copy)
            _unpacked.move_to_end(key)
            return copy
    copy = tempfile.TemporaryFile()
    try:
        with gzip.open(path, "rb") as source:
            shutil.copyfileobj(source, copy, 64 * 1024)  # small pieces: memory stays bounded by a crop
    except BaseException:
        copy.close()
        raise
    _unpacked[key] = (identity, os.getpid(), copy)
    _unpacked.move_to_end(key)
    while len(_unpacked) > UNPACKED_KEPT:
        _unpacked.popitem(last=False)  # an image still reading it keeps the file open
    return copy


def _nibabel_image(path: Path):
    import nibabel

    if str(path).endswith(".gz") and os.path.getsize(path) > UNPACK_ABOVE:
        copy = _unpacked_copy(path)
        copy.seek(0)
        size = int.from_bytes(copy.read(4), "little")
        copy.seek(0)
        image_class = nibabel.Nifti2Image if size in (540, 0x1C020000) else nibabel.Nifti1Image
        return image_class.from_stream(copy)
    return nibabel.load(str(path), mmap=False)


def load_image(path, what: str = "volume"):
    """Open a NIfTI file with nibabel (header only; no voxel is read), or raise :class:`RawRecordError` naming it."""
    import nibabel

    path = Path(path)
    if not path.is_file():
        raise RawRecordError(f"{path}: file not found. The collection is incomplete: unpack it again, or pass "
                             "skip_bad=True (CLI --skip-bad) to leave its records out (they are reported).")
    try:
        image = _nibabel_image(path)
        header = image.header
        shape = tuple(int(n) for n in image.shape)
    except (nibabel.filebasedimages.ImageFileError, OSError, EOFError, ValueError, zlib.error) as err:
        raise _bad(path, err, what) from None
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise RawRecordError(f"{path}: a NIfTI {what} of shape {shape}, not a 3D volume. It is not a file of "
                             "this collection: replace it, or pass skip_bad=True to leave it out.")
    stored = _stored_bytes(path, image)
    if stored is not None:  # an uncompressed file (or copy) must hold every voxel: a short one is truncated
        needed = int(header.get_data_offset()) + int(np.prod(image.shape)) * header.get_data_dtype().itemsize
        if stored < needed:
            raise RawRecordError(
                f"{path}: holds {stored:,} bytes{' decompressed' if str(path).endswith('.gz') else ''}, but its "
                f"header describes {needed:,} bytes of a {'x'.join(map(str, shape))} volume: the file is "
                "truncated. Download or unpack it again, or pass skip_bad=True (CLI --skip-bad) to leave its records "
                "out (they are reported).")
    return image


def _stored_bytes(path: Path, image) -> Optional[int]:
    """The bytes the voxels are read from: the .nii's, or its decompressed copy's; None for a streamed .nii.gz."""
    if not str(path).endswith(".gz"):
        return os.path.getsize(path)
    fileobj = image.file_map["image"].fileobj
    return os.fstat(fileobj.fileno()).st_size if fileobj is not None else None


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


def open_nifti(path, permutation: Tuple[int, int, int] = (0, 1, 2), what: str = "volume",
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


def instance_centers(path, slab: int = 16) -> Dict[int, Tuple[int, int, int]]:
    """The rounded center of mass (voxel indices, stored axis order) of every instance id > 0 of a label volume,
    read ``slab`` slices at a time (memory bounded by a slab, not the volume)."""
    volume = open_nifti(path, what="label volume")
    shape = volume.shape
    sums: Dict[int, np.ndarray] = {}
    for z0 in range(0, shape[2], slab):
        part = volume.read((slice(None), slice(None), slice(z0, min(z0 + slab, shape[2])))).astype(np.int64)
        ids = np.unique(part)
        for instance in ids[ids > 0]:
            coords = np.nonzero(part == instance)
            entry = sums.setdefault(int(instance), np.zeros(4))
            entry += (coords[0].sum(), coords[1].sum(), coords[2].sum() + z0 * len(coords[2]), len(coords[2]))
    # Python's round: halves to even, like imageops.crop_offset
    return {i: tuple(int(round(s / e[3])) for s in e[:3]) for i, e in sums.items()}
