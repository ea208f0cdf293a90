"""PneumoniaMNIST: binary classification, 2D, gray-scale; sizes 28, 64, 128, 224.

Source collection: Pediatric chest X-rays (Kermany et al.).

The MedMNIST+ recipe for PneumoniaMNIST (from the MedMNIST+ notes):

    In MedMNIST, the source images are gray-scale, and their sizes are (384–2,916)x(127–2,713). We center-crop the
    images with a window size of length of the short edge and resize them into 1x28x28.

    In MedMNIST+, for size 224x224, 128x128, and 64x64, we center-crop the source images of
    (384–2,916)x(127–2,713) with a window size of length of the short edge, and then resize the source images into
    the target size. Note that after center-crop, the smallest size of the images is 127x127, and we upsample them
    to 128x128 and 224x224.
"""

from medmnist_plus_common.builder import MedMNISTBuilder, size_configs


class PneumoniaMNIST(MedMNISTBuilder):
    DATASET_NAME = "pneumoniamnist"
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
