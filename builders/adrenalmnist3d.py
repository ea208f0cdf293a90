"""AdrenalMNIST3D: binary classification, 3D, gray-scale; sizes 28, 64.

Source collection: Adrenal gland shape masks, Zhongshan Hospital (not public).

The MedMNIST+ recipe for AdrenalMNIST3D (from the MedMNIST+ notes):

    In MedMNIST, we center-crop the images of size 120x120x120 into 64x64x64, and then resize them into 28x28x28.

    In MedMNIST+, we center-crop the images of size 120x120x120 into 64x64x64.

As code: the 120^3 binary shape mask (nonzero = inside) is center-cropped to 64^3 (offset
``int(round((120 - 64) / 2.0)) = 28`` per axis) and stored 0/255: that is size 64. Size 28 is that 64^3 crop
zoomed as 0/1 with cubic splines and thresholded at 0.5 (``volumeops.zoom_mask``), stored 0/255; other sizes
the same zoom from the crop.

What is proven: the 64 -> 28 step is measured exact on the official files (every official 28^3 volume is
``zoom(v64 / 255, 28 / 64, order=3) > 0.5`` of its official 64^3 volume, 200/200 checked). The 120 -> 64 center
crop is the recipe text, not measured (no 120^3 source is public). The collection is private: the recipe runs on
a user's own masks in the layout of ``manual_download_instructions``, which is this project's ASSUMPTION, not the
hospital's. Labels: 0 normal, 1 hyperplasia. Split: the paper splits by patient, which these files do not say;
without a manifest a seeded random 7:1:2 over files is used (labelled as such). Blank masks are dropped and
reported.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from medmnist_plus_common.hf.builder import MedMNISTBuilder, size_configs
from medmnist_plus_common.recipes.base import RawRecord, SplitRule, Variant
from medmnist_plus_common.recipes.readers.volumes import CenteredVolumeRecipe
from medmnist_plus_common.recipes.volumeops import is_blank, zoom_mask

CLASSES = {"normal": 0, "hyperplasia": 1}
SOURCE_SIZE = 120  # the shape masks
CROP_SIZE = 64  # the centered window: MedMNIST+ size 64


class AdrenalShapeMasks(CenteredVolumeRecipe):
    flag = "adrenalmnist3d"
    collection = "adrenal gland shape masks (Zhongshan Hospital, not public)"
    manual_download_instructions = """\
AdrenalMNIST3D is made from private adrenal gland shape masks (Zhongshan Hospital Affiliated to Fudan
University); they are not public, so there is nothing to download. The recipe runs on your own 120x120x120
binary masks (nonzero = inside) in this layout (this project's assumption, not a published one), with data_dir
the folder that holds it (also found one level down):
    normal/*.nii.gz | *.nii | *.npy           (label 0)
    hyperplasia/*.nii.gz | *.nii | *.npy      (label 1)
Without a manifest (CSV split,index,record[,label]) the split is a seeded random 7:1:2, NOT the official one
(MedMNIST split by patient)."""
    root_candidates = ("", "AdrenalMNIST3D", "adrenal")
    split_rule = SplitRule(ratios=(0.7, 0.1, 0.2))
    classes, source_size, crop_size = CLASSES, SOURCE_SIZE, CROP_SIZE
    source_name = "the adrenal shape masks"

    def load(self, root, record: RawRecord) -> np.ndarray:
        """The centered 64^3 window of the 120^3 mask, 0/255 (only the window is read from .nii/.npy files)."""
        return np.where(self.centered_crop(root, record) != 0, 255, 0).astype(np.uint8)

    def render(self, crop64: np.ndarray, size: int, variant: Variant) -> Optional[np.ndarray]:
        volume = crop64 if size == CROP_SIZE else zoom_mask(crop64, size)
        return None if is_blank(volume) else volume

    def parameters(self, variant: Variant) -> Dict[str, Any]:
        return {"recipe": type(self).__name__, "crop": f"centered {CROP_SIZE}^3 of the {SOURCE_SIZE}^3 mask",
                "resize": "64: none; other sizes: scipy.ndimage.zoom of the 0/1 crop, order 3, > 0.5, stored 0/255"}


class AdrenalMNIST3D(MedMNISTBuilder):
    DATASET_NAME = "adrenalmnist3d"
    RECIPE = AdrenalShapeMasks()
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
