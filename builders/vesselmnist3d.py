"""VesselMNIST3D: binary classification, 3D, gray-scale; sizes 28, 64.

Source collection: IntrA.

The MedMNIST+ recipe for VesselMNIST3D (from the MedMNIST+ notes):

    In MedMNIST, we fix the non-watertight mesh with PyMeshFix and voxelize the watertight mesh with trimesh into
    28x28x28 voxels.

    In MedMNIST+, we fix the non-watertight mesh with PyMeshFix and voxelize the watertight mesh with trimesh into
    64x64x64 voxels.

As code (28^3 measured exact on all 1,909 generated IntrA segments: 1,908 reproduce an official volume voxel for
voxel, see ``../shared/data/raw/intra/README.md``): read the segment mesh; repair it with PyMeshFix's defaults;
voxelize it, filled, into the 29^3 grid of pitch 1 mm centered on trimesh's (area-weighted surface) centroid;
zoom the 0/1 grid to 28^3 with cubic splines and threshold at 0.5 (``volumeops.zoom_mask``), stored 0/255.

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

Version fact: the 28^3 volumes are exact with trimesh 3.9 to 4.x (checked here with 4.12.2 on the genuine
sample), NOT with trimesh 5 (5.0 changed how meshes are subdivided when voxelized): the ``recipes`` extra pins
``trimesh<5``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from medmnist_plus_common.hf.builder import MedMNISTBuilder, size_configs
from medmnist_plus_common.errors import RawRecordError, RawSourceError
from medmnist_plus_common.recipes.image import files_under
from medmnist_plus_common.recipes.base import RawRecipe, RawRecord, SplitRule, Variant
from medmnist_plus_common.recipes.volumeops import is_blank, zoom_mask

CLASSES = {"vessel": 0, "aneurysm": 1}
FIELD_OF_VIEW_MM = 29.0  # measured at 28: radius 14 at pitch 1 mm -> 29 voxels of 1 mm
REFERENCE_SIZE = 28  # the size whose rule is measured; a segment blank there is dropped at every size
REFERENCE_CHECK_MM3 = 27.0  # smaller watertight meshes are checked for blankness at the reference size
_WHAT_TO_DO = ("Replace it with the collection's original file, or pass skip_bad=True (CLI --skip-bad) to leave "
               "it out (it is reported).")


def default_grid(size: int) -> Dict[str, Any]:
    """The voxel grid for ``size``: radius ceil(size / 2), pitch 29 mm / (2 * radius + 1) (28: 14 and 1.0 mm)."""
    radius = (size + 1) // 2
    return {"pitch": FIELD_OF_VIEW_MM / (2 * radius + 1), "radius": radius}


def _number(variant: Variant, key: str, default, kind):
    value = variant.option(key, default)
    try:
        return kind(Fraction(str(value))) if kind is float else kind(str(value))
    except (ValueError, ZeroDivisionError):
        raise RawSourceError(f"recipe variant option {key}={value!r} is not a {kind.__name__} (e.g. "
                             f"pitch=29/65,radius=32)") from None


@dataclass
class Segment:
    """A repaired segment mesh and the file it came from (named in errors)."""

    path: Path
    mesh: Any  # trimesh.Trimesh, watertight after the repair


def require_mesh_libraries() -> None:
    """trimesh, pymeshfix and rtree (trimesh's local_voxelize needs it), or a RawSourceError naming the extra."""
    import importlib

    missing = []
    for module in ("trimesh", "pymeshfix", "rtree", "scipy"):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise RawSourceError(f"VesselMNIST3D's recipe needs {', '.join(missing)}, not installed here. Install the "
                             "recipes extra: pip install \"medmnist-plus[recipes]\" (trimesh<5, pymeshfix, rtree, "
                             "scipy).")


def read_mesh(path: Path):
    """The mesh of an OBJ file (``trimesh.load(path, force="mesh")``), or :class:`RawRecordError` naming it."""
    require_mesh_libraries()
    import trimesh

    if not path.is_file():
        raise RawRecordError(f"{path}: file not found. The collection is incomplete: unpack it again.")
    try:
        mesh = trimesh.load(str(path), force="mesh")
    except Exception as err:  # trimesh raises many kinds (ValueError, IndexError, decode errors) on bad files
        # on bytes that are not UTF-8, trimesh guesses the encoding with charset_normalizer (an optional module)
        why = ("its bytes are not text, and an OBJ file is text" if isinstance(err, (UnicodeError, ImportError))
               else f"{type(err).__name__}: {err}")
        raise RawRecordError(f"{path}: cannot be read as an OBJ mesh ({why}); the file is truncated or corrupt. "
                             f"{_WHAT_TO_DO}") from None
    if not hasattr(mesh, "faces") or len(mesh.faces) == 0:
        raise RawRecordError(f"{path}: holds no triangle faces (not a mesh: empty, truncated or not OBJ). "
                             f"{_WHAT_TO_DO}")
    return mesh


def repair(mesh, path: Path):
    """PyMeshFix with its default settings (``MeshFix(v, f).repair()``): the watertight mesh as a Trimesh."""
    import pymeshfix
    import trimesh

    fixer = pymeshfix.MeshFix(mesh.vertices, mesh.faces)
    fixer.repair()
    # pymeshfix >= 0.17 names them points/faces; older releases v/f
    points = getattr(fixer, "points", None)
    faces = getattr(fixer, "faces", None)
    if points is None or faces is None:
        points, faces = fixer.v, fixer.f
    if len(faces) == 0:
        raise RawRecordError(f"{path}: cannot be repaired: PyMeshFix removed every face (the mesh has "
                             f"{len(mesh.vertices)} vertices and {len(mesh.faces)} faces, none of them usable). "
                             f"{_WHAT_TO_DO}")
    return trimesh.Trimesh(np.asarray(points), np.asarray(faces))


def voxelize(mesh, pitch: float, radius: int, path: Path) -> np.ndarray:
    """trimesh's filled voxel grid of ``2 * radius + 1`` voxels of ``pitch`` around the mesh centroid (bool)."""
    from trimesh.voxel import creation

    try:
        grid = creation.local_voxelize(mesh, mesh.centroid, pitch=pitch, radius=radius, fill=True)
    except Exception as err:
        raise RawRecordError(f"{path}: trimesh cannot voxelize the repaired mesh ({type(err).__name__}: {err}). "
                             f"{_WHAT_TO_DO}") from None
    matrix = None if grid is None else np.asarray(grid.matrix)
    if matrix is None or not matrix.any():
        extent = float(np.max(mesh.extents)) if len(mesh.vertices) else 0.0
        raise RawRecordError(f"{path}: voxelizes to nothing at pitch {pitch:g} mm (the repaired mesh spans "
                             f"{extent:.3g} mm). It is not a vessel segment. {_WHAT_TO_DO}")
    return matrix


def blank_at_reference(segment: Segment) -> bool:
    """Whether the segment's measured 28^3 volume is blank (then MedMNIST dropped it, at every size).

    Only small meshes are voxelized for this check (watertight volume below ``REFERENCE_CHECK_MM3``); larger ones
    are taken as not blank. ASSUMPTION (not proven for every segment): a watertight segment of 27 mm^3 or more
    (the volume of a 3x3x3 block of the 1 mm voxels) is not blank at 28; the genuine sample's segments are
    130-460 mm^3 and the degenerate one 0.03 mm^3.
    """
    if abs(float(segment.mesh.volume)) >= REFERENCE_CHECK_MM3:
        return False
    from trimesh.voxel import creation

    grid = creation.local_voxelize(segment.mesh, segment.mesh.centroid, pitch=1.0, radius=14, fill=True)
    return grid is None or is_blank(zoom_mask(np.asarray(grid.matrix), REFERENCE_SIZE))


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
        records = []
        for name, label in CLASSES.items():
            for path in files_under(root / "generated" / name / "obj", (".obj",)):
                records.append(RawRecord(path.relative_to(root).as_posix(), label))
        return records

    def load(self, root, record: RawRecord) -> Segment:
        """Read and repair once: the watertight mesh does not depend on the size."""
        path = Path(root) / record.path
        return Segment(path, repair(read_mesh(path), path))

    def render(self, segment: Segment, size: int, variant: Variant) -> Optional[np.ndarray]:
        grid = default_grid(size)
        pitch = _number(variant, "pitch", grid["pitch"], float)
        radius = _number(variant, "radius", grid["radius"], int)
        if pitch <= 0 or radius < 1:
            raise RawSourceError(f"recipe variant pitch={pitch}, radius={radius}: both must be positive")
        if (size, pitch, radius) != (REFERENCE_SIZE, 1.0, 14) and blank_at_reference(segment):
            return None  # the same rows at every size: MedMNIST dropped the segment, whose 28^3 volume is blank
        volume = zoom_mask(voxelize(segment.mesh, pitch, radius, segment.path), size)
        return None if is_blank(volume) else volume

    def default_variant(self, size: int) -> Variant:
        grid = default_grid(size)
        return Variant(options=(("pitch", grid["pitch"]), ("radius", grid["radius"])))

    def calibration_variants(self) -> List[Variant]:
        # the measured 28 rule (at 64: the 29^3 grid zoomed up), the 64 default (the same 29 mm view, finer), and
        # 1 mm voxels over a 65 mm view
        return [self.default_variant(28), self.default_variant(64), Variant(options=(("pitch", 1.0), ("radius", 32)))]

    def parameters(self, variant: Variant) -> Dict[str, Any]:
        pitch, radius = float(Fraction(str(variant.option("pitch", 1.0)))), int(variant.option("radius", 14))
        return {"recipe": type(self).__name__, "repair": "PyMeshFix, default settings",
                "voxelize": (f"trimesh local_voxelize, filled, around the mesh centroid: {2 * radius + 1}^3 voxels "
                             f"of {pitch:g} mm ({pitch * (2 * radius + 1):g} mm field of view)"),
                "resize": "scipy.ndimage.zoom of the 0/1 grid, order 3, > 0.5, stored 0/255",
                "variant": variant.describe()}


class VesselMNIST3D(MedMNISTBuilder):
    DATASET_NAME = "vesselmnist3d"
    RECIPE = IntrASegments()
    BUILDER_CONFIGS = size_configs(DATASET_NAME)
