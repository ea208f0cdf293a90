"""Reading electron-microscopy (EM) volumes and the tables of points in them (SynapseMNIST3D's source).

An EM volume (z, y, x order) is an HDF5 dataset (needs h5py: the ``recipes`` extra), a multi-page TIFF stack
(:class:`TiffStack`) or a folder of one 2D image per section (:class:`SliceFolder`, as MitoEM is distributed);
:func:`open_em_volume` opens any of them as a lazily sliced array, so a crop reads only its sections and pixels.
A point table is a CSV with the columns ``z,y,x`` (voxel coordinates) and optionally ``id`` (the point's name)
and ``volume`` (the volume's file name, when a folder holds several). Errors name the file (and line), what is
wrong and what to do.
"""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ...errors import RawRecordError, RawSourceError
from ..volumeops import crop_around

VOLUME_SUFFIXES = (".h5", ".hdf5", ".hdf", ".tif", ".tiff")
SLICE_SUFFIXES = (".png", ".tif", ".tiff")  # section images of a volume stored as a folder
H5_NAMES = ("main", "raw", "data", "volume", "image", "em")  # dataset names tried first in an HDF5 file
_TABLES: Dict[str, Dict[str, Tuple[float, float, float]]] = {}


class TiffStack:
    """A multi-page TIFF as a lazily sliced z, y, x array (reads only the pages and pixels asked for)."""

    def __init__(self, path: Path):
        from PIL import Image

        self.path = path
        self.image = Image.open(path)
        self.shape = (getattr(self.image, "n_frames", 1), self.image.height, self.image.width)
        self.dtype = np.asarray(self.image.crop((0, 0, 1, 1))).dtype

    def close(self):
        self.image.close()

    def __getitem__(self, index):
        zs, ys, xs = index
        pages = []
        for z in range(*zs.indices(self.shape[0])):
            self.image.seek(z)
            box = (xs.start or 0, ys.start or 0, xs.stop or self.shape[2], ys.stop or self.shape[1])
            pages.append(np.asarray(self.image.crop(box)))
        return np.stack(pages)


class SliceFolder:
    """A folder of 2D section images (PNG or TIFF, sorted by name = z) as a lazily sliced z, y, x array: only the
    sections and pixels asked for are read (MitoEM distributes its volumes as one image per section)."""

    def __init__(self, path: Path):
        from PIL import Image

        self.path = path
        self.files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SLICE_SUFFIXES)
        if not self.files:
            raise RawRecordError(f"{path}: the folder holds no section images ({', '.join(SLICE_SUFFIXES)}).")
        with Image.open(self.files[0]) as first:
            self.shape = (len(self.files), first.height, first.width)
            self.dtype = np.asarray(first.crop((0, 0, 1, 1))).dtype

    def __getitem__(self, index):
        from PIL import Image

        zs, ys, xs = index
        pages = []
        for z in range(*zs.indices(self.shape[0])):
            with Image.open(self.files[z]) as page:
                if (page.height, page.width) != self.shape[1:]:
                    raise ValueError(f"{self.files[z].name} is {page.width}x{page.height}, the first section "
                                     f"{self.shape[2]}x{self.shape[1]}")
                box = (xs.start or 0, ys.start or 0, xs.stop or self.shape[2], ys.stop or self.shape[1])
                pages.append(np.asarray(page.crop(box)))
        return np.stack(pages)

    def close(self):
        pass


def em_volumes(folder: Path) -> List[Path]:
    """The EM volumes directly in ``folder``: HDF5 and TIFF files, and folders holding section images."""
    return sorted(p for p in folder.iterdir() if (p.is_file() and p.suffix.lower() in VOLUME_SUFFIXES) or (
        p.is_dir() and any(f.suffix.lower() in SLICE_SUFFIXES for f in p.iterdir())))


@contextlib.contextmanager
def open_em_volume(path: Path):
    """The EM volume as a lazily sliced z, y, x array (h5py dataset, :class:`TiffStack` or :class:`SliceFolder`),
    closed after use."""
    if not path.exists():
        raise RawRecordError(f"{path}: the EM volume is not there. Put it beside the synapse table.")
    try:
        if path.is_dir():
            handle = volume = SliceFolder(path)
        elif path.suffix.lower() in (".tif", ".tiff"):
            handle = TiffStack(path)
            volume = handle
        else:
            import h5py

            handle = h5py.File(path, "r")
            found = [handle[n] for n in H5_NAMES if n in handle and getattr(handle[n], "ndim", 0) == 3]
            if not found:
                handle.visititems(lambda name, obj: found.append(obj)
                                  if isinstance(obj, h5py.Dataset) and obj.ndim == 3 else None)
            if len(found) != 1:
                handle.close()
                raise RawRecordError(f"{path}: holds {len(found)} 3D datasets and none named "
                                     f"{'/'.join(H5_NAMES)}; keep the EM volume as the file's only 3D dataset.")
            volume = found[0]
    except RawRecordError:
        raise
    except (OSError, ValueError, SyntaxError) as err:
        raise RawRecordError(f"{path}: cannot be read as an EM volume ({err}); the file is truncated or corrupt. "
                             "Copy it again, or pass skip_bad=True to leave its synapses out.") from None
    try:
        yield volume
    finally:
        handle.close()


def crop_em_volume(path: Path, location: Sequence[float], shape: Tuple[int, int, int], name: str) -> np.ndarray:
    """The ``shape`` window around ``location`` (z, y, x; ``volumeops.crop_around``, 0 outside the volume) read
    from the EM volume ``path``; ``name`` (the record) is named when the location is outside the volume."""
    with open_em_volume(path) as volume:
        if any(not -0.5 <= c < n - 0.5 for c, n in zip(location, volume.shape)):
            raise RawRecordError(f"{name}: location z,y,x = {location} is outside the volume "
                                 f"{volume.shape}. The table is for another volume, or its columns are not z,y,x.")
        try:
            return crop_around(volume, location, shape, pad_value=0)
        except (OSError, ValueError, EOFError) as err:
            raise RawRecordError(f"{path}: cannot read the crop ({err}); the file is truncated or "
                                 "corrupt. Copy it again, or pass skip_bad=True.") from None


# -- point tables ---------------------------------------------------------------------------------------------


def point_table_columns(path: Path) -> Optional[List[str]]:
    """The columns of a point table (lower case), or None when ``path`` is not one (no z, y, x columns)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            columns = [c.strip().lower() for c in next(csv.reader(handle), [])]
    except (OSError, UnicodeDecodeError):
        return None
    return columns if {"z", "y", "x"} <= set(columns) else None


def _rows(table: Path) -> List[Dict[str, str]]:
    with open(table, newline="", encoding="utf-8") as handle:
        return [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(handle)]


def point_rows(table: Path) -> Iterator[Tuple[str, str, Dict[str, str]]]:
    """``(where, id, row)`` for every row of a point table: ``where`` names the table and line (for errors), ``id``
    is the row's ``id`` or its number from 0, the row's keys are lower case."""
    for line, row in enumerate(_rows(table), start=2):
        yield f"{table}, line {line}", row.get("id") or str(line - 2), row


def point_volume(row: Dict[str, str], where: str, root: Path, volumes: Sequence[Path]) -> Path:
    """The volume a table row's point lies in (its ``volume`` column, else the one volume in ``volumes``), after
    checking its z, y, x are numbers; or a :class:`RawSourceError` naming ``where``."""
    try:
        [float(row[a]) for a in "zyx"]
    except ValueError:
        raise RawSourceError(f"{where}: z, y, x must be numbers (voxel coordinates).") from None
    if row.get("volume"):
        return root / row["volume"]
    if len(volumes) == 1:
        return volumes[0]
    raise RawSourceError(f"{where}: {'no EM volume (.h5/.hdf5/.tif)' if not volumes else f'{len(volumes)} volumes'}"
                         f" in {root}; put the one volume beside the table, or name it in a column volume.")


def table_point(table: Path, ident: str, name: str, what: str = "synapse") -> Tuple[float, float, float]:
    """The z, y, x of point ``ident`` of ``table`` (each table read once per process while unchanged, not once
    per point); ``name`` (the record) and ``what`` (the kind of point) are named in errors."""
    stat = table.stat() if table.is_file() else None
    key = f"{table}:{stat.st_mtime_ns}:{stat.st_size}" if stat else str(table)
    if key not in _TABLES:
        if stat is None:
            raise RawRecordError(f"{table}: the {what} table of {name} is not there.")
        rows = _rows(table)
        _TABLES.clear()
        _TABLES[key] = {row.get("id") or str(number): tuple(float(row[a]) for a in "zyx")
                        for number, row in enumerate(rows)}
    location = _TABLES[key].get(ident)
    if location is None:
        raise RawRecordError(f"{table}: has no {what} {ident!r} ({name}).")
    return location
