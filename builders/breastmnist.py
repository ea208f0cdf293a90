"""BreastMNIST: binary classification, 2D, gray-scale; sizes 28, 64, 128, 224.

Source collection: Breast Ultrasound Images (BUSI).

The MedMNIST+ recipe for BreastMNIST (from the MedMNIST+ notes):

    In MedMNIST, the source images of 1x500x500 are resized into 1x28x28.

    In MedMNIST+, for size 224x224, 128x128, and 64x64, we resize the source images of 1x500x500 into the target
    size.

As code (measured exact at 28 and 64 px on 135 genuine sources, ``../shared/data/raw/busi``): the images are
449-701 px and not square, and "resize" was in fact a centered square crop of the short edge, then a bilinear
resize; gray; no JPEG step (PNG source). The ``*_mask*.png`` files are segmentations, not images. Labels: 0
malignant, 1 benign or normal. Split (paper): a seeded random 7:1:2.
"""

from medmnist_plus_common.hf.builder import MedMNISTBuilder, size_configs
from medmnist_plus_common.recipes.image import SQUARE, ImageRecipe, class_folder_records, has_class_folders
from medmnist_plus_common.recipes.base import SplitRule

CLASSES = {"malignant": 0, "benign": 1, "normal": 1}


class BUSI(ImageRecipe):
    flag = "breastmnist"
    collection = "Breast Ultrasound Images (BUSI)"
    manual_download_instructions = """\
BreastMNIST is made from "Dataset of breast ultrasound images" (Al-Dhabyani et al., 2020, CC BY 4.0):
https://scholar.cu.edu.eg/?q=afahmy/pages/dataset (also mirrored on Kaggle as "breast-ultrasound-images-dataset").
Unpack Dataset_BUSI.zip and pass the folder it was unpacked into as data_dir. Expected tree (also found one
level down, e.g. Dataset_BUSI_with_GT/):
    benign/benign (1).png ... (437)     malignant/malignant (1).png ... (210)     normal/normal (1).png ... (133)
The *_mask.png files beside them are segmentations and are not used."""
    root_candidates = ("", "Dataset_BUSI_with_GT")
    split_rule = SplitRule(ratios=(0.7, 0.1, 0.2))
    mode, crop, source_format = "L", SQUARE, "PNG"

    def is_root(self, path):
        return has_class_folders(path, CLASSES, minimum=2)

    def records(self, root):
        return class_folder_records(root, {None: ""}, CLASSES, (".png",), exclude=lambda name: "_mask" in name)


class BreastMNIST(MedMNISTBuilder):
    DATASET_NAME = "breastmnist"
    RECIPE = BUSI()
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
