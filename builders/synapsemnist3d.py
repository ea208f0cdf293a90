"""SynapseMNIST3D: binary classification, 3D, gray-scale; sizes 28, 64.

Source collection: Rat cortex EM volume (MitoEM region, synapse labels not public).

The MedMNIST+ recipe for SynapseMNIST3D (from the MedMNIST+ notes):

    In MedMNIST, the original data is of the size 100umx100umx100um and the resolution 8nmx8nmx30nm, where a
    30umx30umx30um sub-volume was used in the MitoEM dataset with dense 3D mitochondria instance segmentation
    labels. For each labeled synaptic location, we crop a 3D volume of 1024nmx1024nmx1024nm and resize it into
    28x28x28 voxels.

    In MedMNIST+, for each labeled synaptic location, we crop a 3D volume of 1024x1024x1024 and center-crop it
    into 64x64x64 voxels.
"""

from medmnist_plus_common.builder import MedMNISTBuilder, size_configs


class SynapseMNIST3D(MedMNISTBuilder):
    DATASET_NAME = "synapsemnist3d"
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
