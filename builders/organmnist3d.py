"""OrganMNIST3D: multi-class classification, 3D, gray-scale; sizes 28, 64.

Source collection: LiTS CT volumes with organ bounding boxes.

The MedMNIST+ recipe for OrganMNIST3D (from the MedMNIST+ notes):

    In MedMNIST, the source of the OrganMNIST3D is the same as that of the Organ{A,C,S}MNIST. Instead of 2D
    images, we directly use the 3D bounding boxes of size (15-152)x(15-112)x(12-1145) and process the images into
    28x28x28 to perform multi-class classifcation of 11 body organs.

    In MedMNIST+, we directly use the 3D bounding boxes of size (15-152)x(15-112)x(12-1145) and process the images
    into 64x64x64.

As code (``medmnist_plus_common/recipes/lits.py`` holds the collection's facts and the shared reader; its ASSUMPTIONS
are stated there): one record per organ box of a LiTS volume (``<volume path>#<organ code>``), read alone from
the volume (never the whole scan); HU -> gray with the abdominal window (level 50, width 400 HU by default: an
assumption, a variant option that ``calibrate`` settles); the box reoriented from the affine to D x H x W =
superior->inferior, anterior->posterior, patient right->left; ``volumeops.resize_gray`` (cubic zoom per axis,
rounded) to size^3. A blank box is dropped. Labels: the box's organ code - 1, i.e. the organ by name in the
catalog's order (liver, kidney-right, ...). Split (paper): by scan, the 70 test volumes are the test split and
the 131 training volumes are divided 115 / 16 by a seeded shuffle of scans (971 / 161 / 610 boxes officially).
"""

from medmnist_plus_common.hf.builder import MedMNISTBuilder, size_configs
from medmnist_plus_common.recipes.lits import LiTSRecipe


class LiTSBoxes(LiTSRecipe):
    flag = "organmnist3d"
    plane = None


class OrganMNIST3D(MedMNISTBuilder):
    DATASET_NAME = "organmnist3d"
    RECIPE = LiTSBoxes()
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
