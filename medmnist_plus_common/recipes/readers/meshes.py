"""Reading, repairing and voxelizing triangle meshes (OBJ files) for the 3D mesh recipes (VesselMNIST3D).

Needs trimesh, pymeshfix, rtree (trimesh's ``local_voxelize`` uses it) and scipy: the ``recipes`` extra, checked
by :func:`require_mesh_libraries` with a message naming what is missing. Errors name the file, what is wrong and
what to do.

Version fact: VesselMNIST3D's 28^3 volumes are exact with trimesh 3.9 to 4.x (checked here with 4.12.2 on the
genuine sample), NOT with trimesh 5 (5.0 changed how meshes are subdivided when voxelized): the ``recipes`` extra
pins ``trimesh<5``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import RawRecordError, RawSourceError
from ..volumeops import is_blank, zoom_mask
from . import REPLACE_OR_SKIP

MESH_LIBRARIES = ("trimesh", "pymeshfix", "rtree", "scipy")


@dataclass
class RepairedMesh:
    """A repaired (watertight) mesh and the file it came from (named in errors)."""

    path: Path
    mesh: Any  # trimesh.Trimesh


def require_mesh_libraries(needed_by: str = "Reading meshes") -> None:
    """trimesh, pymeshfix, rtree and scipy, or a RawSourceError naming the missing ones and the extra."""
    import importlib

    missing = []
    for module in MESH_LIBRARIES:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise RawSourceError(f"{needed_by} needs {', '.join(missing)}, not installed here. Install the "
                             "recipes extra: pip install \"medmnist-plus[recipes]\" (trimesh<5, pymeshfix, rtree, "
                             "scipy).")


def read_mesh(path: Path, needed_by: str = "Reading meshes"):
    """The mesh of an OBJ file (``trimesh.load(path, force="mesh")``), or :class:`RawRecordError` naming it."""
    require_mesh_libraries(needed_by)
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
                             f"{REPLACE_OR_SKIP}") from None
    if not hasattr(mesh, "faces") or len(mesh.faces) == 0:
        raise RawRecordError(f"{path}: holds no triangle faces (not a mesh: empty, truncated or not OBJ). "
                             f"{REPLACE_OR_SKIP}")
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
                             f"{REPLACE_OR_SKIP}")
    return trimesh.Trimesh(np.asarray(points), np.asarray(faces))


def read_repaired_mesh(path: Path, needed_by: str = "Reading meshes") -> RepairedMesh:
    """The OBJ file ``path`` read (:func:`read_mesh`) and repaired with PyMeshFix's defaults (:func:`repair`)."""
    return RepairedMesh(path, repair(read_mesh(path, needed_by), path))


def voxel_grid(mesh, pitch: float, radius: int):
    """trimesh's filled ``VoxelGrid`` of ``2 * radius + 1`` voxels of ``pitch`` around the mesh centroid, or None."""
    from trimesh.voxel import creation

    return creation.local_voxelize(mesh, mesh.centroid, pitch=pitch, radius=radius, fill=True)


def voxelize(mesh, pitch: float, radius: int, path: Path) -> np.ndarray:
    """:func:`voxel_grid` as a bool array, or :class:`RawRecordError` naming ``path`` when trimesh fails or the
    grid is empty."""
    try:
        grid = voxel_grid(mesh, pitch, radius)
    except Exception as err:
        raise RawRecordError(f"{path}: trimesh cannot voxelize the repaired mesh ({type(err).__name__}: {err}). "
                             f"{REPLACE_OR_SKIP}") from None
    matrix = None if grid is None else np.asarray(grid.matrix)
    if matrix is None or not matrix.any():
        extent = float(np.max(mesh.extents)) if len(mesh.vertices) else 0.0
        raise RawRecordError(f"{path}: voxelizes to nothing at pitch {pitch:g} mm (the repaired mesh spans "
                             f"{extent:.3g} mm). It is not a vessel segment. {REPLACE_OR_SKIP}")
    return matrix


def blank_when_voxelized(mesh, pitch: float, radius: int, size: int) -> bool:
    """Whether :func:`voxel_grid` of ``mesh`` zoomed to ``size`` (``volumeops.zoom_mask``) holds no voxel."""
    grid = voxel_grid(mesh, pitch, radius)
    return grid is None or is_blank(zoom_mask(np.asarray(grid.matrix), size))
