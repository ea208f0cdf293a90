"""Reading the volume files of 3D raw collections (NIfTI ``.nii``/``.nii.gz``, numpy ``.npy``) lazily.

:func:`open_volume` returns an array-like that is sliced, not loaded: a nibabel ``ArrayProxy`` (``img.dataobj``)
or a read-only numpy memmap, so a recipe that crops (``volumeops.center_crop_3d``, ``crop_around``) reads only
its window from uncompressed files. Errors name the file, what is wrong and what to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...errors import RawRecordError, RawSourceError
from ..base import RawRecipe, RawRecord
from . import REPLACE_OR_SKIP

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".npy")


def open_volume(path: Path) -> Any:
    """The voxel array of a ``.nii``/``.nii.gz``/``.npy`` file, unloaded (ArrayProxy or memmap), as stored.

    NIfTI arrays are taken in their stored axis order (no reorientation to RAS) and with their scaling
    (``scl_slope``/``scl_inter``) applied when sliced, as nibabel does.
    """
    path = Path(path)
    if not path.is_file():
        raise RawRecordError(f"{path}: file not found. The collection is incomplete: copy it again.")
    name = path.name.lower()
    nibabel = None
    if name.endswith((".nii", ".nii.gz")):
        try:
            import nibabel
        except ImportError:
            raise RawSourceError(f"{path}: reading NIfTI files needs nibabel, not installed here. Install the recipes "
                                 "extra: pip install \"medmnist-plus[recipes]\".") from None
    try:
        if name.endswith(".npy"):
            return np.load(path, mmap_mode="r", allow_pickle=False)
        if nibabel is not None:
            return nibabel.load(str(path)).dataobj
    except Exception as err:  # nibabel and numpy raise many kinds on truncated or foreign files
        raise RawRecordError(f"{path}: cannot be read as a volume ({type(err).__name__}: {err}); the file is "
                             f"truncated or corrupt. {REPLACE_OR_SKIP}") from None
    raise RawRecordError(f"{path}: is not a volume file (expected one of {', '.join(VOLUME_SUFFIXES)}).")


def read_window(path: Path, volume: Any, window) -> np.ndarray:
    """``window(volume)`` (a crop) as an array, with read errors of truncated files named."""
    try:
        return np.asarray(window(volume))
    except (OSError, EOFError, ValueError) as err:
        raise RawRecordError(f"{path}: cannot be read to the end ({type(err).__name__}: {err}); the file is "
                             f"truncated or corrupt. {REPLACE_OR_SKIP}") from None


def check_shape(path: Path, volume: Any, expected: Sequence[int], what: str) -> None:
    """A volume of another shape is not a file of this collection: say which shape was expected."""
    shape = tuple(int(n) for n in volume.shape)
    if shape != tuple(expected):
        raise RawRecordError(
            f"{path}: is a volume of {'x'.join(map(str, shape))} voxels, but {what} are "
            f"{'x'.join(map(str, expected))}. It is not a file of this collection (or was resampled): replace it, "
            "or pass skip_bad=True (CLI --skip-bad) to leave it out (it is reported).")


def has_volume_folders(path: Path, folders: Sequence[str]) -> bool:
    """Whether one of ``folders`` under ``path`` holds a volume file (stops at the first one found)."""
    import os

    for name in folders:
        folder = Path(path) / name
        if not folder.is_dir():
            continue
        with os.scandir(folder) as entries:
            if any(e.name.lower().endswith(VOLUME_SUFFIXES) and not e.name.startswith(".") for e in entries):
                return True
    return False


class CenteredVolumeRecipe(RawRecipe):
    """A 3D dataset made from one volume file per record in class folders, of which a centered cube is kept
    (NoduleMNIST3D: 80^3 -> 28^3; AdrenalMNIST3D: 120^3 -> 64^3). Set ``classes``, ``source_size``, ``crop_size``
    and ``source_name``; :meth:`centered_crop` reads only the cube from ``.nii``/``.npy`` files."""

    classes: dict = {}
    source_size: int = 0
    crop_size: int = 0
    source_name: str = ""  # for errors: "the spatially normalized nodule volumes"

    def is_root(self, path):
        return has_volume_folders(path, self.classes)

    def records(self, root):
        from ..image import class_folder_records

        return class_folder_records(root, {None: ""}, self.classes, VOLUME_SUFFIXES)

    def centered_crop(self, root, record: RawRecord) -> np.ndarray:
        from ..volumeops import center_crop_3d

        path = Path(root) / record.path
        volume = open_volume(path)
        check_shape(path, volume, (self.source_size,) * 3, self.source_name)
        return read_window(path, volume, lambda v: center_crop_3d(v, self.crop_size))
