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
superior->inferior, anterior->posterior, patient right->left (as the LiTS crops, ``recipes/readers/nifti.py``),
and turned to gray with a CT window (ASSUMPTION: level 400, width 1200, i.e. -200..1000 HU, the window FracNet,
RibFrac's reference model, normalizes with; a variant option ``level=..,width=..`` that ``calibrate`` settles).
64 = that crop; 28 (and any other size) = ``volumeops.resize_gray(crop, size)``. A blank crop is dropped.
Split (paper: "official parts"; ASSUMPTION on how): RibFrac's validation part (scans 421-500) is the test split;
its training part (scans 1-420) is divided train:validation by a seeded shuffle of fractures, 1027:103 when
they are as many as the catalog's, else 9:1. RibFrac's test part (scans 501-660) has no public labels and cannot be used.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from medmnist_plus_common.hf.builder import MedMNISTBuilder, size_configs
from medmnist_plus_common.recipes import volumeops
from medmnist_plus_common.recipes.base import RawRecipe, RawRecord, SplitRule, Variant
from medmnist_plus_common.recipes.readers import ribfrac

logger = logging.getLogger(__name__)

# RibFrac label_code -> the catalog's class, by name (buckle, nondisplaced, displaced); others are dropped.
CODE_CLASSES = {3: "buckle rib fracture", 2: "nondisplaced rib fracture", 1: "displaced rib fracture"}
DROPPED_CODES = {4: "segmental", -1: "uncertain type"}
CROP, PAD_HU = 64, -1024.0  # voxels per side of the crop around a fracture's center; air outside the scan (ASSUMPTION)
WINDOW_LEVEL, WINDOW_WIDTH = 400.0, 1200.0  # -200..1000 HU, as FracNet (ASSUMPTION)
SLAB = 16  # label slices read at a time when computing centers


class RibFrac(RawRecipe):
    flag = "fracturemnist3d"
    collection = "RibFrac (MICCAI 2020 rib fracture challenge)"
    manual_download_instructions = ribfrac.DOWNLOAD_INSTRUCTIONS
    root_candidates = ("",)
    # 9:1 of the training part's fractures; exactly the catalog's 1027:103 when they are as many as the catalog's
    split_rule = SplitRule(ratios=(0.9, 0.1, 0.0), test_from="validation", pool=("train",))
    _centers_cache: Tuple[Optional[str], Dict[int, Tuple[int, int, int]]] = (None, {})  # the last scan's centers

    def is_root(self, path: Path) -> bool:
        return ribfrac.is_ribfrac_root(path)

    def records(self, root: Path) -> List[RawRecord]:
        class_of = {code: self.facts.labels.index(name) for code, name in CODE_CLASSES.items()}
        records, dropped = [], Counter()
        for fracture in ribfrac.read_fractures(root, self.manual_download_instructions):
            if fracture.code in class_of:
                records.append(RawRecord(fracture.record, class_of[fracture.code], fracture.part))
            else:
                dropped[DROPPED_CODES.get(fracture.code, f"code {fracture.code}")] += 1
        if dropped:
            logger.warning("%s: %s fracture(s) dropped: %s (FractureMNIST3D has classes for buckle, nondisplaced "
                           "and displaced fractures only).", root, sum(dropped.values()),
                           ", ".join(f"{n} {what}" for what, n in sorted(dropped.items())))
        self.last_dropped = dict(dropped)
        return records

    def load(self, root: Path, record: RawRecord) -> np.ndarray:
        image, label_path = ribfrac.open_scan(root, root / record.path)
        center, type(self)._centers_cache = ribfrac.fracture_center(label_path, int(record.part), record.record,
                                                                    self._centers_cache, SLAB)
        return image.to_display(volumeops.crop_around(image.proxy(), center, CROP, pad_value=PAD_HU))

    def render(self, loaded: np.ndarray, size: int, variant: Variant) -> Optional[np.ndarray]:
        gray = volumeops.hu_window(loaded, float(variant.option("level", WINDOW_LEVEL)),
                                   float(variant.option("width", WINDOW_WIDTH)))
        return None if volumeops.is_blank(gray) else (gray if size == CROP else volumeops.resize_gray(gray, size))

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
