"""OCTMNIST: multi-class classification, 2D, gray-scale; sizes 28, 64, 128, 224.

Source collection: Retinal OCT images (Kermany et al.).

The MedMNIST+ recipe for OCTMNIST (from the MedMNIST+ notes):

    In MedMNIST, the source images are gray-scale, and their sizes are (384–1,536)x(277–512). We center-crop the
    images with a window size of length of the short edge and resize them into 1x28x28.

    In MedMNIST+, for size 224x224, 128x128, and 64x64, we center-crop the images of (384–1,536)x(277–512) with a
    window size of length of the short edge, and then resize the source images into the target size.
"""

from medmnist_plus_common.builder import MedMNISTBuilder, size_configs


class OCTMNIST(MedMNISTBuilder):
    DATASET_NAME = "octmnist"
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
