"""OCTMNIST: multi-class classification, 2D, gray-scale; sizes 28, 64, 128, 224.

Source collection: Retinal OCT images (Kermany et al.).

The MedMNIST+ recipe for OCTMNIST (from the MedMNIST+ notes):

    In MedMNIST, the source images are gray-scale, and their sizes are (384–1,536)x(277–512). We center-crop the
    images with a window size of length of the short edge and resize them into 1x28x28.

    In MedMNIST+, for size 224x224, 128x128, and 64x64, we center-crop the images of (384–1,536)x(277–512) with a
    window size of length of the short edge, and then resize the source images into the target size.

As code (the rule measured on the genuine PneumoniaMNIST sources of the same Kermany collection): gray (some
files are stored RGB), centered square of the short edge, bilinear resize, JPEG round trip at quality 75. Labels
are the class folders (CNV, DME, DRUSEN, NORMAL: the catalog's order). Split (paper): the collection's test folder
(1,000) is the test split; its train folder is divided 9:1 into train and validation.
"""
from medmnist_plus_common.hf.builder import MedMNISTBuilder, size_configs
from medmnist_plus_common.recipes.image import SQUARE, ImageRecipe, class_folder_records, has_class_folders
from medmnist_plus_common.recipes.base import SplitRule

CLASSES = {"CNV": 0, "DME": 1, "DRUSEN": 2, "NORMAL": 3}


class KermanyOCT(ImageRecipe):
    flag = "octmnist"
    collection = "Kermany et al. 2018 retinal OCT"
    manual_download_instructions = """\
OCTMNIST is made from the retinal OCT images of "Labeled Optical Coherence Tomography (OCT) and Chest X-Ray
Images for Classification" (Kermany et al., 2018, CC BY 4.0): https://data.mendeley.com/datasets/rscbjbr9sj/2
Download OCT2017.tar.gz (or the CellData archive), unpack it and pass the folder it was unpacked into as
data_dir. Expected tree (found also one level down, e.g. CellData/OCT or OCT2017):
    OCT/train/{CNV,DME,DRUSEN,NORMAL}/*.jpeg       OCT/test/{CNV,DME,DRUSEN,NORMAL}/*.jpeg (1,000)"""
    root_candidates = ("", "OCT", "CellData/OCT", "OCT2017")
    split_rule = SplitRule(ratios=(0.9, 0.1, 0.0), test_from="test", pool=("train",))
    mode, crop, source_format = "L", SQUARE, "JPEG"

    def is_root(self, path):
        return any(has_class_folders(path / part, CLASSES, minimum=2) for part in ("train", "test"))

    def records(self, root):
        parts = {"train": "train", "test": "test"}
        if (root / "val").is_dir():
            parts["train-val"] = "val"  # Kaggle's OCT2017 copy: part of the original train folder
        records = class_folder_records(root, parts, CLASSES, (".jpeg", ".jpg"))
        return [r if r.source_split != "train-val" else type(r)(r.record, r.label, "train") for r in records]


class OCTMNIST(MedMNISTBuilder):
    DATASET_NAME = "octmnist"
    RECIPE = KermanyOCT()
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
