"""VesselMNIST3D: binary classification, 3D, gray-scale; sizes 28, 64.

Source collection: IntrA.

The MedMNIST+ recipe for VesselMNIST3D (from the MedMNIST+ notes):

    In MedMNIST, we fix the non-watertight mesh with PyMeshFix and voxelize the watertight mesh with trimesh into
    28x28x28 voxels.

    In MedMNIST+, we fix the non-watertight mesh with PyMeshFix and voxelize the watertight mesh with trimesh into
    64x64x64 voxels.
"""

from medmnist_plus_common.builder import MedMNISTBuilder, size_configs


class VesselMNIST3D(MedMNISTBuilder):
    DATASET_NAME = "vesselmnist3d"
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
