"""PathMNIST: multi-class classification, 2D, RGB; sizes 28, 64, 128, 224.

Source collection: NCT-CRC-HE-100K and CRC-VAL-HE-7K.

The MedMNIST+ recipe for PathMNIST (from the MedMNIST+ notes):

    In MedMNIST, we resize the source images of 3x224x224 into 3x28x28.

    In MedMNIST+, for size 224x224, we utilize the source images directly; while for size 64x64 and 128x128, we
    resize the source images of 3x224x224 into the target size.

As code: the 224 px RGB TIFF tiles are used as they are at 224 and resized (PIL bilinear) to the other sizes;
TIFF is lossless, so no JPEG step. Labels are the class folders, in the catalog's order (ADI adipose ... TUM
colorectal adenocarcinoma epithelium). Split (paper): NCT-CRC-HE-100K is divided 9:1 into train and validation,
CRC-VAL-HE-7K is the test split. Some TIFF headers of the collection are malformed (PIL reads them anyway).
"""
from medmnist_plus_common.hf.builder import MedMNISTBuilder, size_configs
from medmnist_plus_common.recipes.image import SQUARE, ImageRecipe, class_folder_records, has_class_folders
from medmnist_plus_common.recipes.base import SplitRule

CLASSES = {"ADI": 0, "BACK": 1, "DEB": 2, "LYM": 3, "MUC": 4, "MUS": 5, "NORM": 6, "STR": 7, "TUM": 8}
PARTS = {"train": "NCT-CRC-HE-100K", "test": "CRC-VAL-HE-7K"}


class KatherColorectalHistology(ImageRecipe):
    flag = "pathmnist"
    collection = "NCT-CRC-HE-100K and CRC-VAL-HE-7K"
    manual_download_instructions = """\
PathMNIST is made from "100,000 histological images of human colorectal cancer and healthy tissue" (Kather et
al., 2018, CC BY 4.0): https://zenodo.org/records/1214456 . Download NCT-CRC-HE-100K.zip and CRC-VAL-HE-7K.zip,
unpack both into one folder and pass it as data_dir. Expected tree:
    NCT-CRC-HE-100K/{ADI,BACK,DEB,LYM,MUC,MUS,NORM,STR,TUM}/*.tif     (100,000 tiles, 224x224 RGB)
    CRC-VAL-HE-7K/{ADI,BACK,DEB,LYM,MUC,MUS,NORM,STR,TUM}/*.tif       (7,180 tiles)"""
    split_rule = SplitRule(ratios=(0.9, 0.1, 0.0), test_from="test", pool=("train",))
    mode, crop, source_format = "RGB", SQUARE, "TIFF"
    min_source_size = (224, 224)

    def is_root(self, path):
        return any(has_class_folders(path / part, CLASSES, minimum=2) for part in PARTS.values())

    def records(self, root):
        return class_folder_records(root, PARTS, CLASSES, (".tif", ".tiff"))


class PathMNIST(MedMNISTBuilder):
    DATASET_NAME = "pathmnist"
    RECIPE = KatherColorectalHistology()
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
