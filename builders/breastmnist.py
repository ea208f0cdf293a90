"""BreastMNIST: binary classification, 2D, gray-scale; sizes 28, 64, 128, 224.

Source collection: Breast Ultrasound Images (BUSI).

The MedMNIST+ recipe for BreastMNIST (from the MedMNIST+ notes):

    In MedMNIST, the source images of 1x500x500 are resized into 1x28x28.

    In MedMNIST+, for size 224x224, 128x128, and 64x64, we resize the source images of 1x500x500 into the target
    size.
"""

from medmnist_plus_common.builder import MedMNISTBuilder, size_configs


class BreastMNIST(MedMNISTBuilder):
    DATASET_NAME = "breastmnist"
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
