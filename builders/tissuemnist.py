"""TissueMNIST: multi-class classification, 2D, gray-scale; sizes 28, 64, 128, 224.

Source collection: BBBC051 (Broad Bioimage Benchmark Collection).

The MedMNIST+ recipe for TissueMNIST (from the MedMNIST+ notes):

    In MedMNIST, each gray-scale image is 32x32x7 pixels, where 7 denotes 7 slices. We obtain 2D maximum
    projections by taking the maximum pixel value along the axial-axis of each pixel, and resize them into 28x28
    gray-scale images.

    In MedMNIST+, following the same procedure in MedMNIST, we obtain 2D maximum projections by taking the maximum
    pixel value along the axial-axis of each pixel, resulting in images of size 1x32x32. Then, for size 224x224,
    128x128, and 64x64, we resize the source images into the target size.
"""

from medmnist_plus_common.builder import MedMNISTBuilder, size_configs


class TissueMNIST(MedMNISTBuilder):
    DATASET_NAME = "tissuemnist"
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
