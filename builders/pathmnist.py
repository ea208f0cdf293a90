"""PathMNIST: multi-class classification, 2D, RGB; sizes 28, 64, 128, 224.

Source collection: NCT-CRC-HE-100K and CRC-VAL-HE-7K.

The MedMNIST+ recipe for PathMNIST (from the MedMNIST+ notes):

    In MedMNIST, we resize the source images of 3x224x224 into 3x28x28.

    In MedMNIST+, for size 224x224, we utilize the source images directly; while for size 64x64 and 128x128, we
    resize the source images of 3x224x224 into the target size.
"""

from medmnist_plus_common.builder import MedMNISTBuilder, size_configs


class PathMNIST(MedMNISTBuilder):
    DATASET_NAME = "pathmnist"
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
