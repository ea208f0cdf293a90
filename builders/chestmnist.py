"""ChestMNIST: multi-label classification, 2D, gray-scale; sizes 28, 64, 128, 224.

Source collection: NIH ChestX-ray14.

The MedMNIST+ recipe for ChestMNIST (from the MedMNIST+ notes):

    In MedMNIST, we resize the source images of 1x1,024x1,024 into 1x28x28.

    In MedMNIST+, for size 224x224, 128x128, and 64x64, we resize the source images of 1x1,024x1,024 into the
    target size.
"""

from medmnist_plus_common.builder import MedMNISTBuilder, size_configs


class ChestMNIST(MedMNISTBuilder):
    DATASET_NAME = "chestmnist"
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
