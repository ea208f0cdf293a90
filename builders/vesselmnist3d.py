"""VesselMNIST3D: binary classification, 3D, gray-scale; sizes 28, 64.

Source collection: IntrA.

The MedMNIST+ recipe for VesselMNIST3D (from the MedMNIST+ notes):

    In MedMNIST, we fix the non-watertight mesh with PyMeshFix and voxelize the watertight mesh with trimesh into
    28x28x28 voxels.

    In MedMNIST+, we fix the non-watertight mesh with PyMeshFix and voxelize the watertight mesh with trimesh into
    64x64x64 voxels.

As code (28^3 measured exact on all 1,909 generated IntrA segments: 1,908 reproduce an official volume voxel for
voxel, see ``../shared/data/raw/intra/README.md``; with trimesh 3.9 to 4.x, not 5: see ``readers/meshes.py``): read
the segment mesh; repair it with PyMeshFix's defaults; voxelize it, filled, into the 29^3 grid of pitch 1 mm centered
on trimesh's (area-weighted surface) centroid; zoom the 0/1 grid to 28^3 with cubic splines and threshold at 0.5
(``volumeops.zoom_mask``), stored 0/255.

The 64^3 rule is NOT known (no official 64^3 file was available to check). Default: the same 29 mm field of view
and the same shape of rule as at 28, i.e. an odd grid one voxel larger than the target, zoomed down to it: radius
32 (65^3 voxels) at pitch 29/65 mm, zoomed 65 -> 64. At 28 this rule gives exactly the measured radius 14, pitch
1.0; it keeps every segment's scale and centering the same at both sizes (a 64 volume is a finer sampling of the
same 29 mm cube, which is what "voxelize into 64x64x64" suggests), rather than zooming the 28 or 29 grid up. Any
size s uses radius ceil(s / 2) and pitch 29 / (2 * radius + 1). Change it with the variant options ``pitch``
(mm; a fraction such as 29/65 is accepted) and ``radius`` (voxels; the grid is 2 * radius + 1 wide), e.g.
``recipe_variant="pitch=0.5,radius=32"``; ``calibrate`` compares choices against an official file.

The collection has one degenerate segment (``generated/vessel/obj/ArteryObjAN186-10.obj``, 11 vertices, ~1.4 mm):
it voxelizes to a single voxel, its 28^3 volume is blank, and it is dropped and reported (MedMNIST dropped it too:
validation has 191 rows, not 192). The official sizes share their rows, so a segment whose 28^3 volume is blank
is dropped at every size (at 64 the finer grid would still show a few voxels of it). Labels: 0 vessel,
1 aneurysm. Split (paper): a seeded random 7:1:2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from medmnist_plus_common.errors import RawSourceError
from medmnist_plus_common.hf.builder import MedMNISTBuilder, size_configs
from medmnist_plus_common.recipes.base import RawRecipe, RawRecord, SplitRule, Variant
from medmnist_plus_common.recipes.image import files_under
from medmnist_plus_common.recipes.readers import meshes
from medmnist_plus_common.recipes.volumeops import is_blank, zoom_mask

CLASSES = {"vessel": 0, "aneurysm": 1}
FIELD_OF_VIEW_MM = 29.0  # measured at 28: radius 14 at pitch 1 mm -> 29 voxels of 1 mm
REFERENCE_SIZE, REFERENCE_CHECK_MM3 = 28, 27.0  # the measured size (blank there: dropped at every size); see below


def default_grid(size: int) -> Dict[str, Any]:
    radius = (size + 1) // 2
    return {"pitch": FIELD_OF_VIEW_MM / (2 * radius + 1), "radius": radius}


def blank_at_reference(segment: meshes.RepairedMesh) -> bool:
    """Whether its 28^3 volume is blank (MedMNIST dropped it). ASSUMPTION: one of 27 mm^3 or more (3x3x3 voxels of
    1 mm) is not, and is not voxelized to check (genuine segments: 130-460 mm^3, the degenerate one 0.03 mm^3)."""
    return (abs(float(segment.mesh.volume)) < REFERENCE_CHECK_MM3
            and meshes.blank_when_voxelized(segment.mesh, pitch=1.0, radius=14, size=REFERENCE_SIZE))


class IntrASegments(RawRecipe):
    flag = "vesselmnist3d"
    collection = "IntrA (3D intracranial aneurysm dataset)"
    manual_download_instructions = """\
VesselMNIST3D is made from the generated vessel segments of "IntrA: 3D Intracranial Aneurysm Dataset for Deep
Learning" (Yang et al., CVPR 2020): https://github.com/intra3d2019/IntrA (download links in its README).
Unpack IntrA.zip and pass the folder it was unpacked into as data_dir. Expected tree (found also one level down,
e.g. IntrA/):
    generated/vessel/obj/*.obj        (1,694 healthy vessel segments, label 0)
    generated/aneurysm/obj/*.obj      (215 aneurysm segments, label 1)
The .ad files and the annotated/ and complete/ folders are not used. Needs the recipes extra
(pip install "medmnist-plus[recipes]": trimesh<5, pymeshfix, rtree, scipy)."""
    root_candidates = ("", "IntrA")
    split_rule = SplitRule(ratios=(0.7, 0.1, 0.2))

    def is_root(self, path):
        return any((path / "generated" / name / "obj").is_dir() for name in CLASSES)

    def records(self, root) -> List[RawRecord]:
        return [RawRecord(path.relative_to(root).as_posix(), label) for name, label in CLASSES.items()
                for path in files_under(root / "generated" / name / "obj", (".obj",))]

    def load(self, root, record: RawRecord) -> meshes.RepairedMesh:  # read and repaired once, for every size
        return meshes.read_repaired_mesh(Path(root) / record.path, needed_by="VesselMNIST3D's recipe")

    def render(self, segment: meshes.RepairedMesh, size: int, variant: Variant) -> Optional[np.ndarray]:
        pitch = variant.number("pitch", default_grid(size)["pitch"], float, "pitch=29/65,radius=32")
        radius = variant.number("radius", default_grid(size)["radius"], int, "pitch=29/65,radius=32")
        if pitch <= 0 or radius < 1:
            raise RawSourceError(f"recipe variant pitch={pitch}, radius={radius}: both must be positive")
        if (size, pitch, radius) != (REFERENCE_SIZE, 1.0, 14) and blank_at_reference(segment):
            return None  # the same rows at every size: MedMNIST dropped the segment, whose 28^3 volume is blank
        volume = zoom_mask(meshes.voxelize(segment.mesh, pitch, radius, segment.path), size)
        return None if is_blank(volume) else volume

    def default_variant(self, size: int) -> Variant:
        return Variant(options=tuple(default_grid(size).items()))  # pitch, radius

    def calibration_variants(self) -> List[Variant]:
        # the measured 28 rule (at 64: the 29^3 grid zoomed up), the 64 default (29 mm, finer), 1 mm over 65 mm
        return [self.default_variant(28), self.default_variant(64), Variant(options=(("pitch", 1.0), ("radius", 32)))]

    def parameters(self, variant: Variant) -> Dict[str, Any]:
        pitch, radius = variant.number("pitch", 1.0, float), variant.number("radius", 14, int)
        return {"recipe": type(self).__name__, "repair": "PyMeshFix, default settings",
                "voxelize": (f"trimesh local_voxelize, filled, around the mesh centroid: {2 * radius + 1}^3 voxels "
                             f"of {pitch:g} mm ({pitch * (2 * radius + 1):g} mm field of view)"),
                "resize": "scipy.ndimage.zoom of the 0/1 grid, order 3, > 0.5, stored 0/255",
                "variant": variant.describe()}


class VesselMNIST3D(MedMNISTBuilder):
    DATASET_NAME = "vesselmnist3d"
    RECIPE = IntrASegments()
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
