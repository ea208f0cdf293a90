"""TissueMNIST: multi-class classification, 2D, gray-scale; sizes 28, 64, 128, 224.

Source collection: BBBC051 (Broad Bioimage Benchmark Collection).

The MedMNIST+ recipe for TissueMNIST (from the MedMNIST+ notes):

    In MedMNIST, each gray-scale image is 32x32x7 pixels, where 7 denotes 7 slices. We obtain 2D maximum
    projections by taking the maximum pixel value along the axial-axis of each pixel, and resize them into 28x28
    gray-scale images.

    In MedMNIST+, following the same procedure in MedMNIST, we obtain 2D maximum projections by taking the maximum
    pixel value along the axial-axis of each pixel, resulting in images of size 1x32x32. Then, for size 224x224,
    128x128, and 64x64, we resize the source images into the target size.

As code: each stack of 7 gray 32x32 slices becomes its maximum projection (32x32), resized (PIL bilinear) to the
size; no JPEG step. BBBC051's on-disk format and class mapping are not documented by MedMNIST: the layout read
here is an assumption (stated in the instructions: a folder per class, named by the class id 0-7 or the catalog's
name, each stack a 7-page TIFF or a 7x32x32 ``.npy``); 16-bit stacks keep their high byte. Split (paper): a
seeded random 7:1:2.
"""
import numpy as np
from PIL import Image, ImageSequence

from medmnist_plus_common.recipes import imageops
from medmnist_plus_common.hf.builder import MedMNISTBuilder, size_configs
from medmnist_plus_common.catalog import load_catalog
from medmnist_plus_common.errors import RawRecordError
from medmnist_plus_common.recipes.image import SQUARE, ImageRecipe, class_folder_records, open_image
from medmnist_plus_common.recipes.base import SplitRule

SLICES, SIDE = 7, 32
CLASS_FOLDERS = {**{str(i): i for i in range(8)}, **{name: i for i, name in enumerate(load_catalog()["tissuemnist"].labels)}}


class BBBC051KidneyStacks(ImageRecipe):
    flag = "tissuemnist"
    collection = "BBBC051 kidney cortex cells"
    manual_download_instructions = """\
TissueMNIST is made from BBBC051 (Woloshuk et al., 2021; Broad Bioimage Benchmark Collection):
https://bbbc.broadinstitute.org/BBBC051 . MedMNIST did not publish how it read the collection; this recipe
reads one 32x32x7 gray stack per cell, in a folder per class named by the class id 0-7 (or the catalog's label
name, see `medmnist-plus info tissuemnist`). Pass the folder holding the class folders as data_dir:
    0/<cell>.tif (7 pages of 32x32) or 0/<cell>.npy (7x32x32)   ...   7/..."""
    split_rule = SplitRule(ratios=(0.7, 0.1, 0.2))
    mode, crop, source_format = "L", SQUARE, "TIFF"

    def is_root(self, path):
        # class folders "0".."7" (with "0" among them), or named by the catalog's label names
        found = [name for name in CLASS_FOLDERS if (path / name).is_dir()]
        return len(found) >= 2 and ("0" in found or any(not name.isdigit() for name in found))

    def records(self, root):
        return class_folder_records(root, {None: ""}, {k: v for k, v in CLASS_FOLDERS.items() if (root / k).is_dir()},
                                    (".tif", ".tiff", ".npy"))

    def read_source(self, path):
        if path.suffix.lower() == ".npy":
            try:
                stack = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as err:
                raise RawRecordError(f"{path}: not a readable .npy stack ({err}). Replace it, or pass skip_bad=True.") from None
        else:
            image = open_image(path)
            stack = np.stack([np.asarray(page) for page in ImageSequence.Iterator(image)])
        if stack.shape != (SLICES, SIDE, SIDE):
            raise RawRecordError(f"{path}: has shape {stack.shape}, but a BBBC051 stack is {SLICES} slices of "
                                 f"{SIDE}x{SIDE}. It is not a stack of this collection: replace it, or pass skip_bad=True.")
        if stack.dtype.kind == "u" and stack.dtype.itemsize == 2:  # 16-bit, either byte order
            stack = (stack >> 8).astype(np.uint8)
        elif stack.dtype != np.uint8:  # casting would wrap or truncate the pixels silently
            raise RawRecordError(f"{path}: has pixels of type {stack.dtype}, but a BBBC051 stack is 8- or 16-bit "
                                 "unsigned gray. Convert it (or replace it), or pass skip_bad=True.")
        return Image.fromarray(imageops.max_projection(stack).astype(np.uint8), "L")


class TissueMNIST(MedMNISTBuilder):
    DATASET_NAME = "tissuemnist"
    RECIPE = BBBC051KidneyStacks()
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
