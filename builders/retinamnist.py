"""RetinaMNIST: ordinal classification, 2D, RGB; sizes 28, 64, 128, 224.

Source collection: DeepDRiD.

The MedMNIST+ recipe for RetinaMNIST (from the MedMNIST+ notes):

    In MedMNIST, the source images of 3x1,736x1,824 are center-cropped with a window size of length of the short
    edge and resized into 3x28x28.

    In MedMNIST+, for size 224x224, 128x128, and 64x64, we first center-crop the source images of 3x1,736x1,824
    with a window size of length of the short edge, and then resize the source images into the target size.
"""

from medmnist_plus_common.builder import MedMNISTBuilder, size_configs


class RetinaMNIST(MedMNISTBuilder):
    DATASET_NAME = "retinamnist"
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
