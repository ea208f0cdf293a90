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

As code (``medmnist_plus_common/recipes/lits.py`` holds the collection's facts and the shared reader; its ASSUMPTIONS
are stated there): one record per organ box of a LiTS volume (``<volume path>#<organ code>``); HU -> gray with
the abdominal window (level 50, width 400 HU by default: an assumption, a variant option that ``calibrate``
settles); the coronal slice through the box's center (the voxel axis the affine says runs anterior-posterior,
center index rounded like ``imageops.crop_offset``), cropped to the box's other two extents, displayed head up
and the patient's right on the left; PIL bilinear resize straight to the size, no JPEG step. A blank crop is
dropped. Labels: the box's organ by name, in the catalog's (alphabetical) order. Split (paper): by scan, the 70
test volumes are the test split and the 131 training volumes are divided 115 / 16 by a seeded shuffle of scans.
The official release holds about 14 coronal images per box, the recipe text one (the center slice): a complete
collection builds fewer rows than the catalog says.
"""

from medmnist_plus_common.hf.builder import MedMNISTBuilder, size_configs
from medmnist_plus_common.recipes.lits import LiTSRecipe


class LiTSCoronal(LiTSRecipe):
    flag = "organcmnist"
    plane = "coronal"


class OrganCMNIST(MedMNISTBuilder):
    DATASET_NAME = "organcmnist"
    RECIPE = LiTSCoronal()
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
