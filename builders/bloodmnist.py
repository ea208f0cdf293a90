"""BloodMNIST: multi-class classification, 2D, RGB; sizes 28, 64, 128, 224.

Source collection: Peripheral blood cell images (Acevedo et al.).

The MedMNIST+ recipe for BloodMNIST (from the MedMNIST+ notes):

    In MedMNIST, the source images with resolution 3x360x363 pixels are center-cropped into 3x200x200, and then
    resized into 3x28x28.

    In MedMNIST+, for size 224x224, 128x128, and 64x64, we first center-crop the images with resolution 3x360x363
    into 3x200x200, and then resize the source images into the target size.
"""

from medmnist_plus_common.builder import MedMNISTBuilder, size_configs


class BloodMNIST(MedMNISTBuilder):
    DATASET_NAME = "bloodmnist"
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
