"""BloodMNIST: multi-class classification, 2D, RGB; sizes 28, 64, 128, 224.

Source collection: Peripheral blood cell images (Acevedo et al.).

The MedMNIST+ recipe for BloodMNIST (from the MedMNIST+ notes):

    In MedMNIST, the source images with resolution 3x360x363 pixels are center-cropped into 3x200x200, and then
    resized into 3x28x28.

    In MedMNIST+, for size 224x224, 128x128, and 64x64, we first center-crop the images with resolution 3x360x363
    into 3x200x200, and then resize the source images into the target size.

As code: RGB, the centered 200x200 window (offsets rounded as for every crop: halves to even), bilinear resize,
JPEG round trip at quality 75. Labels are the class folders (basophil, eosinophil, erythroblast, ig, lymphocyte,
monocyte, neutrophil, platelet: the catalog's order). Split (paper): a seeded random 7:1:2.
"""
from medmnist_plus_common.hf.builder import MedMNISTBuilder, size_configs
from medmnist_plus_common.recipes.image import ImageRecipe, class_folder_records, has_class_folders
from medmnist_plus_common.recipes.base import SplitRule

CLASSES = {"basophil": 0, "eosinophil": 1, "erythroblast": 2, "ig": 3, "lymphocyte": 4, "monocyte": 5,
           "neutrophil": 6, "platelet": 7}


class PeripheralBloodCells(ImageRecipe):
    flag = "bloodmnist"
    collection = "Peripheral blood cell images (PBC)"
    manual_download_instructions = """\
BloodMNIST is made from "A dataset of microscopic peripheral blood cell images" (Acevedo et al., 2020, CC BY
4.0): https://data.mendeley.com/datasets/snkd93bnjr/1 . Download PBC_dataset_normal_DIB.zip, unpack it and pass
the folder it was unpacked into as data_dir. Expected tree (17,092 images, about 360x363 RGB JPEG):
    PBC_dataset_normal_DIB/{basophil,eosinophil,erythroblast,ig,lymphocyte,monocyte,neutrophil,platelet}/*.jpg"""
    root_candidates = ("", "PBC_dataset_normal_DIB")
    split_rule = SplitRule(ratios=(0.7, 0.1, 0.2))
    mode, crop, source_format = "RGB", (200, 200), "JPEG"
    min_source_size = (200, 200)

    def is_root(self, path):
        return has_class_folders(path, CLASSES, minimum=3)

    def records(self, root):
        return class_folder_records(root, {None: ""}, CLASSES, (".jpg", ".jpeg"))


class BloodMNIST(MedMNISTBuilder):
    DATASET_NAME = "bloodmnist"
    RECIPE = PeripheralBloodCells()
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
