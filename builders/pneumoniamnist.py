"""PneumoniaMNIST: binary classification, 2D, gray-scale; sizes 28, 64, 128, 224.

Source collection: Pediatric chest X-rays (Kermany et al.).

The MedMNIST+ recipe for PneumoniaMNIST (from the MedMNIST+ notes):

    In MedMNIST, the source images are gray-scale, and their sizes are (384–2,916)x(127–2,713). We center-crop the
    images with a window size of length of the short edge and resize them into 1x28x28.

    In MedMNIST+, for size 224x224, 128x128, and 64x64, we center-crop the source images of
    (384–2,916)x(127–2,713) with a window size of length of the short edge, and then resize the source images into
    the target size. Note that after center-crop, the smallest size of the images is 127x127, and we upsample them
    to 128x128 and 224x224.

As code (measured exact at 28 px on genuine sources, ``../shared/data/raw/kermany``): gray (283 files are stored
RGB), centered square of the short edge, bilinear resize, JPEG round trip at quality 75. Split (paper): the
collection's test folder (624) is the test split; its train folder is divided 9:1 into train and validation.
"""

from medmnist_plus_common.hf.builder import MedMNISTBuilder, size_configs
from medmnist_plus_common.recipes.image import SQUARE, ImageRecipe, class_folder_records, has_class_folders
from medmnist_plus_common.recipes.base import SplitRule

CLASSES = {"NORMAL": 0, "PNEUMONIA": 1}
# Kermany's Mendeley release has train/ and test/; the Kaggle copy moved 16 train images into val/.
PARTS = {"train": "train", "test": "test"}


class KermanyChestXRays(ImageRecipe):
    flag = "pneumoniamnist"
    collection = "Kermany et al. 2018 pediatric chest X-ray"
    manual_download_instructions = """\
PneumoniaMNIST is made from the chest X-rays of "Labeled Optical Coherence Tomography (OCT) and Chest X-Ray
Images for Classification" (Kermany et al., 2018, CC BY 4.0): https://data.mendeley.com/datasets/rscbjbr9sj/2
Download ChestXRay2017.zip, unpack it, and pass the folder it was unpacked into as data_dir. Expected tree
(found also one level down, e.g. CellData/chest_xray or chest_xray):
    chest_xray/train/NORMAL/*.jpeg        chest_xray/train/PNEUMONIA/*.jpeg      (5,232 images)
    chest_xray/test/NORMAL/*.jpeg         chest_xray/test/PNEUMONIA/*.jpeg       (624 images)"""
    root_candidates = ("", "chest_xray", "CellData/chest_xray")
    split_rule = SplitRule(ratios=(0.9, 0.1, 0.0), test_from="test", pool=("train",))
    mode, crop, source_format = "L", SQUARE, "JPEG"

    def is_root(self, path):
        return any(has_class_folders(path / part, CLASSES, minimum=2) for part in ("train", "test"))

    def records(self, root):
        parts = dict(PARTS)
        if (root / "val").is_dir():
            parts["train-val"] = "val"  # Kaggle's copy: part of the original train folder
        records = class_folder_records(root, parts, CLASSES, (".jpeg", ".jpg"))
        return [r if r.source_split != "train-val" else type(r)(r.record, r.label, "train") for r in records]


class PneumoniaMNIST(MedMNISTBuilder):
    DATASET_NAME = "pneumoniamnist"
    RECIPE = KermanyChestXRays()
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
