"""OrganMNIST3D: multi-class classification, 3D, gray-scale; sizes 28, 64.

Source collection: LiTS CT volumes with organ bounding boxes.

The MedMNIST+ recipe for OrganMNIST3D (from the MedMNIST+ notes):

    In MedMNIST, the source of the OrganMNIST3D is the same as that of the Organ{A,C,S}MNIST. Instead of 2D
    images, we directly use the 3D bounding boxes of size (15-152)x(15-112)x(12-1145) and process the images into
    28x28x28 to perform multi-class classifcation of 11 body organs.

    In MedMNIST+, we directly use the 3D bounding boxes of size (15-152)x(15-112)x(12-1145) and process the images
    into 64x64x64.
"""

from medmnist_plus_common.builder import MedMNISTBuilder, size_configs


class OrganMNIST3D(MedMNISTBuilder):
    DATASET_NAME = "organmnist3d"
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
