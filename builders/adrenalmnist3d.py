"""AdrenalMNIST3D: binary classification, 3D, gray-scale; sizes 28, 64.

Source collection: Adrenal gland shape masks, Zhongshan Hospital (not public).

The MedMNIST+ recipe for AdrenalMNIST3D (from the MedMNIST+ notes):

    In MedMNIST, we center-crop the images of size 120x120x120 into 64x64x64, and then resize them into 28x28x28.

    In MedMNIST+, we center-crop the images of size 120x120x120 into 64x64x64.
"""

from medmnist_plus_common.builder import MedMNISTBuilder, size_configs


class AdrenalMNIST3D(MedMNISTBuilder):
    DATASET_NAME = "adrenalmnist3d"
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
