"""SynapseMNIST3D: binary classification, 3D, gray-scale; sizes 28, 64.

Source collection: Rat cortex EM volume (MitoEM region, synapse labels not public).

The MedMNIST+ recipe for SynapseMNIST3D (from the MedMNIST+ notes):

    In MedMNIST, the original data is of the size 100umx100umx100um and the resolution 8nmx8nmx30nm, where a
    30umx30umx30um sub-volume was used in the MitoEM dataset with dense 3D mitochondria instance segmentation
    labels. For each labeled synaptic location, we crop a 3D volume of 1024nmx1024nmx1024nm and resize it into
    28x28x28 voxels.

    In MedMNIST+, for each labeled synaptic location, we crop a 3D volume of 1024x1024x1024 and center-crop it
    into 64x64x64 voxels.

As code: the EM volume (z, y, x order; 8 x 8 nm pixels, 30 nm sections) is an HDF5 dataset, a multi-page TIFF
stack or a folder of section images, read lazily (only the crop's sections and pixels); the synapse table is a CSV ``z,y,x,label`` (voxel
coordinates; label 0/inhibitory, 1/excitatory as the catalog; the labels are not public: the user brings them).
One record per table row, ``<volume path>#<row id>``. Around each location, 1024 nm per side:
``volumeops.crop_around`` of 34 x 128 x 128 voxels (1024 / 8 = 128 pixels; 1024 / 30 = 34.1 -> 34 sections,
1020 nm), padded with 0 outside the volume; then (ASSUMPTION, how the anisotropic voxels are handled) z is
resampled to the 8 nm pixel pitch, ``volumeops.zoom(crop, 128^3)`` (cubic; 34 sections -> 128, a 0.4% stretch),
giving the 1024 nm cube as 128^3 isotropic voxels. 28 (and sizes other than 64): ``volumeops.resize_gray`` of
that cube (the MedMNIST text: "resize it into 28x28x28"). 64: the text's "center-crop it into 64x64x64":
``volumeops.center_crop_3d(cube, 64)``, the central 512 nm at 8 nm (ASSUMPTION; ``recipe_variant="size64=resize"``
resizes the whole cube to 64^3 instead). Values rounded and clipped to uint8. A blank crop (all 0: a location
outside the imaged region) is dropped. Split (paper): a seeded random 7:1:2 of the synapses.
"""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from medmnist_plus_common.recipes import volumeops
from medmnist_plus_common.hf.builder import MedMNISTBuilder, size_configs
from medmnist_plus_common.errors import RawRecordError, RawSourceError
from medmnist_plus_common.recipes.base import RawRecipe, RawRecord, SplitRule, Variant

VOXEL_NM = (30.0, 8.0, 8.0)  # z, y, x
FIELD_NM = 1024.0
CROP_SHAPE = tuple(int(round(FIELD_NM / nm)) for nm in VOXEL_NM)  # (34, 128, 128)
CUBE = int(round(FIELD_NM / VOXEL_NM[1]))  # 128: the field at the 8 nm pixel pitch
VOLUME_SUFFIXES = (".h5", ".hdf5", ".hdf", ".tif", ".tiff")
SLICE_SUFFIXES = (".png", ".tif", ".tiff")  # section images of a volume stored as a folder
H5_NAMES = ("main", "raw", "data", "volume", "image", "em")  # dataset names tried first in an HDF5 file
_TABLES: Dict[str, Dict[str, Tuple[float, float, float]]] = {}
LABEL_NAMES = {"0": 0, "1": 1, "inhibitory": 0, "excitatory": 1, "inhibitory synapse": 0, "excitatory synapse": 1}


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


class EMVolume(RawRecipe):
    flag = "synapsemnist3d"
    collection = "rat cortex EM volume with synapse locations (MitoEM region; labels not public)"
    manual_download_instructions = """\
SynapseMNIST3D is made from an EM volume of rat cortex (the MitoEM-R region, 8 x 8 x 30 nm voxels; Wei et al.
2020, https://mitoem.grand-challenge.org/) and the locations of its synapses with their type. The synapse types
MedMNIST used are NOT public: the recipe runs on locations and labels you bring. Put into one folder, passed as
data_dir:
    <data_dir>/<volume>.h5        the EM volume, z,y,x order, uint8: an HDF5 file (its only 3D dataset, or one named
                                  main/raw/data/volume/image/em), a multi-page TIFF stack (<volume>.tif), or a
                                  folder of one PNG/TIFF image per section, sorted by name (<volume>/im0000.png ...)
    <data_dir>/synapses.csv       header z,y,x,label (voxel coordinates of each synapse in the volume; label 0 or
                                  'inhibitory', 1 or 'excitatory'); optional columns id (the record name) and
                                  volume (the volume's file name, when the folder holds several volumes)"""
    root_candidates = ("",)
    split_rule = SplitRule(ratios=(0.7, 0.1, 0.2))

    def is_root(self, path: Path) -> bool:
        return any(self._table_columns(p) for p in sorted(path.glob("*.csv")))

    @staticmethod
    def _table_columns(path: Path) -> Optional[List[str]]:
        try:
            with open(path, newline="", encoding="utf-8") as handle:
                columns = [c.strip().lower() for c in next(csv.reader(handle), [])]
        except (OSError, UnicodeDecodeError):
            return None
        return columns if {"z", "y", "x"} <= set(columns) else None

    def records(self, root: Path) -> List[RawRecord]:
        volumes = sorted(p for p in root.iterdir() if (p.is_file() and p.suffix.lower() in VOLUME_SUFFIXES) or (
            p.is_dir() and any(f.suffix.lower() in SLICE_SUFFIXES for f in p.iterdir())))
        records = []
        for table in sorted(root.glob("*.csv")):
            columns = self._table_columns(table)
            if not columns:
                continue
            if "label" not in columns:
                raise RawSourceError(
                    f"{table}: has synapse locations but no label column. SynapseMNIST3D's synapse types are not "
                    "public: add a column label (0 or inhibitory, 1 or excitatory) with the types you have.")
            with open(table, newline="", encoding="utf-8") as handle:
                for line, row in enumerate(csv.DictReader(handle), start=2):
                    row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
                    where = f"{table}, line {line}"
                    label = LABEL_NAMES.get(row["label"].lower())
                    if label is None:
                        raise RawSourceError(f"{where}: label {row['label']!r} is not 0/inhibitory or 1/excitatory.")
                    try:
                        [float(row[a]) for a in "zyx"]
                    except ValueError:
                        raise RawSourceError(f"{where}: z, y, x must be numbers (voxel coordinates).") from None
                    if row.get("volume"):
                        volume = root / row["volume"]
                    elif len(volumes) == 1:
                        volume = volumes[0]
                    else:
                        raise RawSourceError(
                            f"{where}: {'no EM volume (.h5/.hdf5/.tif)' if not volumes else f'{len(volumes)} volumes'}"
                            f" in {root}; put the one volume beside the table, or name it in a column volume.")
                    ident = row.get("id") or str(line - 2)
                    records.append(RawRecord(f"{volume.relative_to(root).as_posix()}#{table.stem}:{ident}", label))
        return records

    def _location(self, root: Path, record: RawRecord) -> Tuple[float, float, float]:
        table_stem, _, ident = (record.part or "").partition(":")
        table = root / f"{table_stem}.csv"
        stat = table.stat() if table.is_file() else None
        key = f"{table}:{stat.st_mtime_ns}:{stat.st_size}" if stat else str(table)
        if key not in _TABLES:  # each table read once per process, not once per synapse
            if stat is None:
                raise RawRecordError(f"{table}: the synapse table of {record.record} is not there.")
            with open(table, newline="", encoding="utf-8") as handle:
                rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
                        for row in csv.DictReader(handle)]
            _TABLES.clear()
            _TABLES[key] = {row.get("id") or str(number): tuple(float(row[a]) for a in "zyx")
                            for number, row in enumerate(rows)}
        location = _TABLES[key].get(ident)
        if location is None:
            raise RawRecordError(f"{table}: has no synapse {ident!r} ({record.record}).")
        return location

    @contextlib.contextmanager
    def open_volume(self, path: Path):
        """The EM volume as a lazily sliced z, y, x array (h5py dataset or :class:`TiffStack`), closed after use."""
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

    def load(self, root: Path, record: RawRecord) -> np.ndarray:
        location = self._location(root, record)
        with self.open_volume(root / record.path) as volume:
            if any(not -0.5 <= c < n - 0.5 for c, n in zip(location, volume.shape)):
                raise RawRecordError(f"{record.record}: location z,y,x = {location} is outside the volume "
                                     f"{volume.shape}. The table is for another volume, or its columns are not z,y,x.")
            try:
                crop = volumeops.crop_around(volume, location, CROP_SHAPE, pad_value=0)
            except (OSError, ValueError, EOFError) as err:
                raise RawRecordError(f"{root / record.path}: cannot read the crop ({err}); the file is truncated or "
                                     "corrupt. Copy it again, or pass skip_bad=True.") from None
        return volumeops.zoom(crop.astype(np.float64), CUBE)  # isotropic 8 nm, the 1024 nm cube

    def render(self, cube: np.ndarray, size: int, variant: Variant) -> Optional[np.ndarray]:
        if size == 64 and variant.option("size64", "center-crop") == "center-crop":
            out = np.clip(np.rint(volumeops.center_crop_3d(cube, 64)), 0, 255).astype(np.uint8)
        else:
            out = volumeops.resize_gray(cube, size)
        return None if volumeops.is_blank(out) else out

    def default_variant(self, size: int) -> Variant:
        return Variant(options=(("size64", "center-crop"),))

    def calibration_variants(self) -> List[Variant]:
        return [Variant(options=(("size64", "center-crop"),)), Variant(options=(("size64", "resize"),))]

    def parameters(self, variant: Variant) -> Dict[str, Any]:
        return {"recipe": type(self).__name__,
                "crop": f"{CROP_SHAPE[0]}x{CROP_SHAPE[1]}x{CROP_SHAPE[2]} voxels (z,y,x; 1024 nm) around the synapse",
                "isotropic": f"z zoomed to {CUBE} (cubic), 8 nm voxels",
                "64": ("central 64^3 of the cube" if variant.option("size64", "center-crop") == "center-crop"
                       else "the cube resized to 64^3"),
                "other sizes": "the cube resized (scipy zoom order 3, rounded)"}


class SynapseMNIST3D(MedMNISTBuilder):
    DATASET_NAME = "synapsemnist3d"
    RECIPE = EMVolume()
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
