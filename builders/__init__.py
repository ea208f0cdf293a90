"""One ``datasets.GeneratorBasedBuilder`` per MedMNIST+ dataset (configs: its sizes), plus the umbrella ``MedMNISTPlus``.

Each module reads like the MedMNIST+ recipe text for its dataset; the shared machinery is in
``medmnist_plus_common.hf.builder``.
"""

from .pathmnist import PathMNIST
from .chestmnist import ChestMNIST
from .dermamnist import DermaMNIST
from .octmnist import OCTMNIST
from .pneumoniamnist import PneumoniaMNIST
from .retinamnist import RetinaMNIST
from .breastmnist import BreastMNIST
from .bloodmnist import BloodMNIST
from .tissuemnist import TissueMNIST
from .organamnist import OrganAMNIST
from .organcmnist import OrganCMNIST
from .organsmnist import OrganSMNIST
from .organmnist3d import OrganMNIST3D
from .nodulemnist3d import NoduleMNIST3D
from .adrenalmnist3d import AdrenalMNIST3D
from .fracturemnist3d import FractureMNIST3D
from .vesselmnist3d import VesselMNIST3D
from .synapsemnist3d import SynapseMNIST3D
from .medmnist_plus import MedMNISTPlus

BUILDERS = {builder.DATASET_NAME: builder for builder in (PathMNIST, ChestMNIST, DermaMNIST, OCTMNIST, PneumoniaMNIST, RetinaMNIST, BreastMNIST, BloodMNIST, TissueMNIST, OrganAMNIST, OrganCMNIST, OrganSMNIST, OrganMNIST3D, NoduleMNIST3D, AdrenalMNIST3D, FractureMNIST3D, VesselMNIST3D, SynapseMNIST3D)}

__all__ = ['PathMNIST', 'ChestMNIST', 'DermaMNIST', 'OCTMNIST', 'PneumoniaMNIST', 'RetinaMNIST', 'BreastMNIST', 'BloodMNIST', 'TissueMNIST', 'OrganAMNIST', 'OrganCMNIST', 'OrganSMNIST', 'OrganMNIST3D', 'NoduleMNIST3D', 'AdrenalMNIST3D', 'FractureMNIST3D', 'VesselMNIST3D', 'SynapseMNIST3D', "MedMNISTPlus", "BUILDERS"]
