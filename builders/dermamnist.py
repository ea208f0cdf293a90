"""DermaMNIST: multi-class classification, 2D, RGB; sizes 28, 64, 128, 224.

Source collection: HAM10000.

The MedMNIST+ recipe for DermaMNIST (from the MedMNIST+ notes):

    In MedMNIST, the source images of 3x600x450 are resized into 3x28x28.

    In MedMNIST+, for size 224x224, 128x128, and 64x64, we resize the source images of 3x600x450 into the target
    size.
"""

from medmnist_plus_common.builder import MedMNISTBuilder, size_configs


class DermaMNIST(MedMNISTBuilder):
    DATASET_NAME = "dermamnist"
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
