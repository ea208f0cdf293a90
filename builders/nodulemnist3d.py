"""NoduleMNIST3D: binary classification, 3D, gray-scale; sizes 28, 64.

Source collection: LIDC-IDRI.

The MedMNIST+ recipe for NoduleMNIST3D (from the MedMNIST+ notes):

    In MedMNIST, we center-crop the spatially normalized images of size 80x80x80 into 28x28x28.

    In MedMNIST+, to be consistent with the dataset in MedMNIST, we center-crop the spatially normalized images of
    size 80x80x80 into 28x28x28, and then upsample them into 64x64x64.

As code: the 80^3 spatially normalized nodule volume is center-cropped to 28^3 (offset
``int(round((80 - 28) / 2.0)) = 26`` per axis): that is size 28. Size 64 (and any other size) is that crop
resized with MedMNIST's cubic-spline zoom, rounded and clipped to 0..255 (``volumeops.resize_gray``).

What is ASSUMED (nothing of this recipe is measured here: no genuine source or 64^3 file is in the sample):
the spatially normalized 80^3 volumes (made from LIDC-IDRI as in the MedMNIST paper, e.g. with the LIDC
preprocessing of its reference) are given as gray 0..255 volumes in ``<root>/<benign|malignant>/`` as ``.npy``,
``.nii`` or ``.nii.gz``; the rounding of the zoomed gray volume (``calibrate`` checks it against an official
file). Labels: 0 benign, 1 malignant. Split (paper): a seeded random 7:1:2. Blank volumes are dropped and
reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from medmnist_plus_common.hf.builder import MedMNISTBuilder, size_configs
from medmnist_plus_common.errors import RawRecordError
from medmnist_plus_common.recipes.base import RawRecord, SplitRule, Variant
from medmnist_plus_common.recipes.readers.volumes import CenteredVolumeRecipe
from medmnist_plus_common.recipes.volumeops import is_blank, resize_gray

CLASSES = {"benign": 0, "malignant": 1}
SOURCE_SIZE = 80  # the spatially normalized volumes
CROP_SIZE = 28  # the centered window: MedMNIST size 28


def as_gray(path: Path, crop: np.ndarray) -> np.ndarray:
    """The crop as uint8: uint8 as is; other dtypes must hold whole values 0..255 (else: say how to convert)."""
    if crop.dtype == np.uint8:
        return crop
    values = np.asarray(crop, dtype=np.float64)
    if values.size and (values.min() < 0 or values.max() > 255 or not np.array_equal(values, np.rint(values))):
        raise RawRecordError(
            f"{path}: holds {crop.dtype} values {values.min():g}..{values.max():g}, not gray levels 0..255. The "
            "recipe takes the spatially normalized nodule volumes as uint8 gray (as MedMNIST stores them): convert "
            "them first, or pass skip_bad=True (CLI --skip-bad) to leave the file out (it is reported).")
    return values.astype(np.uint8)


class LIDCNoduleVolumes(CenteredVolumeRecipe):
    flag = "nodulemnist3d"
    collection = "LIDC-IDRI (spatially normalized nodule volumes)"
    manual_download_instructions = """\
NoduleMNIST3D is made from the LIDC-IDRI lung CT collection (The Cancer Imaging Archive,
https://www.cancerimagingarchive.net/collection/lidc-idri/), as spatially normalized 80x80x80 volumes around
each nodule, labelled benign or malignant from the radiologists' ratings (see the MedMNIST paper). This project
does not make those volumes from the DICOM series; it takes them in this layout (this project's assumption),
gray 0..255, with data_dir the folder that holds it (also found one level down):
    benign/*.npy | *.nii.gz | *.nii       (label 0)
    malignant/*.npy | *.nii.gz | *.nii    (label 1)"""
    root_candidates = ("", "NoduleMNIST3D", "nodules")
    split_rule = SplitRule(ratios=(0.7, 0.1, 0.2))
    classes, source_size, crop_size = CLASSES, SOURCE_SIZE, CROP_SIZE
    source_name = "the spatially normalized nodule volumes"

    def load(self, root, record: RawRecord) -> np.ndarray:
        """The centered 28^3 window of the 80^3 volume, uint8 (only the window is read from .nii/.npy files)."""
        return as_gray(Path(root) / record.path, self.centered_crop(root, record))

    def render(self, crop28: np.ndarray, size: int, variant: Variant) -> Optional[np.ndarray]:
        volume = crop28 if size == CROP_SIZE else resize_gray(crop28, size)
        return None if is_blank(volume) else volume

    def parameters(self, variant: Variant) -> Dict[str, Any]:
        return {"recipe": type(self).__name__, "crop": f"centered {CROP_SIZE}^3 of the {SOURCE_SIZE}^3 volume",
                "resize": "28: none; other sizes: scipy.ndimage.zoom of the crop, order 3, rounded, clipped 0..255"}


class NoduleMNIST3D(MedMNISTBuilder):
    DATASET_NAME = "nodulemnist3d"
    RECIPE = LIDCNoduleVolumes()
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
