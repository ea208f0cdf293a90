"""NoduleMNIST3D: binary classification, 3D, gray-scale; sizes 28, 64.

Source collection: LIDC-IDRI.

The MedMNIST+ recipe for NoduleMNIST3D (from the MedMNIST+ notes):

    In MedMNIST, we center-crop the spatially normalized images of size 80x80x80 into 28x28x28.

    In MedMNIST+, to be consistent with the dataset in MedMNIST, we center-crop the spatially normalized images of
    size 80x80x80 into 28x28x28, and then upsample them into 64x64x64.
"""

from medmnist_plus_common.builder import MedMNISTBuilder, size_configs


class NoduleMNIST3D(MedMNISTBuilder):
    DATASET_NAME = "nodulemnist3d"
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
