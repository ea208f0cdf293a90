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
stack or a folder of section images, read lazily (only the crop's sections and pixels; ``recipes/readers/em.py``);
the synapse table is a CSV ``z,y,x,label`` (voxel coordinates; label 0/inhibitory, 1/excitatory as the catalog;
the labels are not public: the user brings them).
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

from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from medmnist_plus_common.errors import RawSourceError
from medmnist_plus_common.hf.builder import MedMNISTBuilder, size_configs
from medmnist_plus_common.recipes import volumeops
from medmnist_plus_common.recipes.base import RawRecipe, RawRecord, SplitRule, Variant
from medmnist_plus_common.recipes.readers import em

VOXEL_NM = (30.0, 8.0, 8.0)  # z, y, x
FIELD_NM = 1024.0
CROP_SHAPE = tuple(int(round(FIELD_NM / nm)) for nm in VOXEL_NM)  # (34, 128, 128)
CUBE = int(round(FIELD_NM / VOXEL_NM[1]))  # 128: the field at the 8 nm pixel pitch
LABEL_NAMES = {"0": 0, "1": 1, "inhibitory": 0, "excitatory": 1, "inhibitory synapse": 0, "excitatory synapse": 1}


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
        return any(em.point_table_columns(p) for p in sorted(path.glob("*.csv")))

    def records(self, root: Path) -> List[RawRecord]:
        volumes, records = em.em_volumes(root), []
        for table in sorted(root.glob("*.csv")):
            columns = em.point_table_columns(table)
            if not columns:
                continue
            if "label" not in columns:
                raise RawSourceError(
                    f"{table}: has synapse locations but no label column. SynapseMNIST3D's synapse types are not "
                    "public: add a column label (0 or inhibitory, 1 or excitatory) with the types you have.")
            for where, ident, row in em.point_rows(table):
                label = LABEL_NAMES.get(row["label"].lower())
                if label is None:
                    raise RawSourceError(f"{where}: label {row['label']!r} is not 0/inhibitory or 1/excitatory.")
                volume = em.point_volume(row, where, root, volumes)
                records.append(RawRecord(f"{volume.relative_to(root).as_posix()}#{table.stem}:{ident}", label))
        return records

    def load(self, root: Path, record: RawRecord) -> np.ndarray:
        table_stem, _, ident = (record.part or "").partition(":")
        location = em.table_point(root / f"{table_stem}.csv", ident, record.record)
        crop = em.crop_em_volume(root / record.path, location, CROP_SHAPE, record.record)
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
