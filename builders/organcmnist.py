"""OrganCMNIST: multi-class classification, 2D, gray-scale; sizes 28, 64, 128, 224.

Source collection: LiTS CT volumes with organ bounding boxes.

The MedMNIST+ recipe for OrganCMNIST (from the MedMNIST+ notes):

    In MedMNIST, Hounsfeld-Unit (HU) of the 3D images are transformed into gray-scale with an abdominal window. We
    crop 2D images from the center slices of the 3D bounding boxes in axial/coronal/sagittal views (planes). The
    only diferences of Organ{A,C,S}MNIST are the views. The images are resized into 1x28x28 to perform multi-class
    classifcation of 11 body organs.

    In MedMNIST+, following the same procedure in MedMNIST, we crop 2D images from the center slices of the 3D
    bounding boxes in axial/coronal/sagittal views (planes). Then, for size 224x224, 128x128, and 64x64, we resize
    the source images into the target size.
"""

from medmnist_plus_common.builder import MedMNISTBuilder, size_configs


class OrganCMNIST(MedMNISTBuilder):
    DATASET_NAME = "organcmnist"
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
