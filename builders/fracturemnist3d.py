"""FractureMNIST3D: multi-class classification, 3D, gray-scale; sizes 28, 64.

Source collection: RibFrac.

The MedMNIST+ recipe for FractureMNIST3D (from the MedMNIST+ notes):

    In MedMNIST, for each annotated fracture area, we calculate its center and resize the center-cropped 64x64x64
    image into 28x28x28.

    In MedMNIST+, for each annotated fracture area, we calculate its center and center-crop the image into
    64x64x64.
"""

from medmnist_plus_common.builder import MedMNISTBuilder, size_configs


class FractureMNIST3D(MedMNISTBuilder):
    DATASET_NAME = "fracturemnist3d"
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
