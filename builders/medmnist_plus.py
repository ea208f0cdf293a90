"""MedMNIST+: all 18 datasets in one builder, one config per dataset and size: ``"<flag>-<size>"`` (60 configs).

``load_dataset("medmnist_plus", "organmnist3d-64")`` resolves here once ``medmnist_plus_common`` is imported.
"""

from medmnist_plus_common.hf.builder import MedMNISTBuilder, all_configs


class MedMNISTPlus(MedMNISTBuilder):
    DATASET_NAME = "medmnist_plus"
    BUILDER_CONFIGS = all_configs()

    @classmethod
    def recipe_for(cls, flag: str):
        """Each dataset's recipe is the one its own builder carries."""
        from . import BUILDERS

        return BUILDERS[flag].recipe_for(flag)
