"""VesselMNIST3D recipe throughput: volumes per second, one process vs two, and the recipe vs the bare calls.

Two sets of meshes in the IntrA layout (a temporary folder):
- ``synthetic``: open (non-watertight) bent tubes of 20,000 faces each (a torus with a wedge cut out, varied in
  size and orientation), written as OBJ by trimesh;
- ``genuine``: the six genuine IntrA segments of ``../shared/data/raw/intra`` (linked, never copied), repeated
  to make enough records for two processes (skipped when absent).

For each set: the per-mesh time of the bare calls (``trimesh.load`` + ``pymeshfix`` repair + ``local_voxelize``
+ ``zoom > 0.5``) against the whole recipe (``RECIPE.load`` + ``RECIPE.render``, with its checks), and the
volumes per second of ``regenerate.render`` (what ``regenerate``/``align`` run) with ``num_proc`` 1 and 2.
Results (with ``--write``): ``benchmarks/results/recipe_3d_throughput.json``.

    .venv/bin/python benchmarks/recipe_3d_throughput.py [--meshes 16] [--copies 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
INTRA = ROOT.parent / "shared" / "data" / "raw" / "intra"


def bent_open_tube(seed: int, faces: int = 21_600):  # about 20,000 once the wedge is cut
    import trimesh

    rng = np.random.default_rng(seed)
    minor_sections = 50
    major_sections = faces // (2 * minor_sections)
    torus = trimesh.creation.torus(major_radius=rng.uniform(7.5, 9.5), minor_radius=rng.uniform(1.8, 3.0),
                                   major_sections=major_sections, minor_sections=minor_sections)
    # cut a wedge out: two open ends, like a vessel segment
    centers = torus.triangles_center
    keep = ~((centers[:, 0] > 0) & (np.abs(centers[:, 1]) < 2.0))
    tube = trimesh.Trimesh(torus.vertices, torus.faces[keep], process=False)
    tube.remove_unreferenced_vertices()
    tube.apply_transform(trimesh.transformations.random_rotation_matrix(rng.random(3)))
    return tube


def make_synthetic(root: Path, count: int) -> int:
    folder = root / "generated" / "vessel" / "obj"
    folder.mkdir(parents=True, exist_ok=True)
    faces = 0
    for i in range(count):
        tube = bent_open_tube(i)
        faces = len(tube.faces)
        tube.export(str(folder / f"tube{i:03d}.obj"), file_type="obj")
    return faces


def link_genuine(root: Path, copies: int) -> int:
    n = 0
    for kind in ("vessel", "aneurysm"):
        folder = root / "generated" / kind / "obj"
        folder.mkdir(parents=True, exist_ok=True)
        for source in sorted((INTRA / "generated" / kind / "obj").glob("*.obj")):
            for k in range(copies):
                os.symlink(source, folder / f"c{k}_{source.name}")
                n += 1
    return n


def bare_calls(path: Path) -> np.ndarray:
    import pymeshfix
    import trimesh
    from scipy import ndimage

    mesh = trimesh.load(str(path), force="mesh")
    fixer = pymeshfix.MeshFix(mesh.vertices, mesh.faces)
    fixer.repair()
    mesh = trimesh.Trimesh(fixer.points, fixer.faces)
    grid = trimesh.voxel.creation.local_voxelize(mesh, mesh.centroid, pitch=1.0, radius=14, fill=True)
    return ndimage.zoom(grid.matrix.astype(float), 28 / 29, order=3) > 0.5


def _spin(_) -> int:
    """A fixed CPU-only job (~0.2 s): the control, to see what two processes get from the machine right now."""
    total = 0
    for i in range(3_000_000):
        total += i * i % 7
    return total


def control_speedup(jobs: int = 12) -> float:
    import multiprocessing

    times = {}
    for num_proc in (1, 2):
        start = time.perf_counter()
        with multiprocessing.get_context("fork").Pool(num_proc) as pool:
            list(pool.imap(_spin, range(jobs)))
        times[num_proc] = time.perf_counter() - start
    return times[1] / times[2]


def measure(root: Path, repeat: int) -> dict:
    from builders.vesselmnist3d import VesselMNIST3D
    RECIPE = VesselMNIST3D.RECIPE
    from medmnist_plus_common.recipes.base import Assigned
    from medmnist_plus_common.tools.regenerate import render

    records = RECIPE.records(root)
    items = [Assigned("train", i, r) for i, r in enumerate(records)]
    variants = {28: RECIPE.default_variant(28)}
    bare, recipe = [], []
    for round_ in range(repeat):  # interleaved (which goes first alternates), best of repeat per mesh
        for record in records:
            for which in ((0, 1) if round_ % 2 == 0 else (1, 0)):
                start = time.perf_counter()
                if which == 0:
                    bare_calls(root / record.path)
                else:
                    RECIPE.render(RECIPE.load(root, record), 28, variants[28])
                (bare if which == 0 else recipe).append((record.record, time.perf_counter() - start))

    def best(pairs):
        out = {}
        for name, seconds in pairs:
            out[name] = min(seconds, out.get(name, float("inf")))
        return out

    bare_best, recipe_best = best(bare), best(recipe)
    ratios = [recipe_best[n] / bare_best[n] for n in bare_best]
    result = {"records": len(records), "bare_ms_per_mesh": 1000 * float(np.mean(list(bare_best.values()))),
              "recipe_ms_per_mesh": 1000 * float(np.mean(list(recipe_best.values()))),
              "recipe_over_bare_mean": float(np.mean(ratios)), "recipe_over_bare_max": float(np.max(ratios))}
    times = {1: [], 2: []}
    controls = []
    for _ in range(repeat):  # 1 and 2 processes back to back, with the control beside them
        controls.append(control_speedup())
        for num_proc in (1, 2):
            start = time.perf_counter()
            done = sum(1 for _ in render("vesselmnist3d", root, items, [28], variants, num_proc=num_proc))
            times[num_proc].append(time.perf_counter() - start)
            assert done == len(items)
    for num_proc in (1, 2):
        result[f"volumes_per_s_num_proc_{num_proc}"] = len(items) / min(times[num_proc])
        result[f"seconds_num_proc_{num_proc}"] = times[num_proc]
    result["speedup_2_over_1"] = result["volumes_per_s_num_proc_2"] / result["volumes_per_s_num_proc_1"]
    result["speedup_per_round"] = [a / b for a, b in zip(times[1], times[2])]
    result["control_cpu_loop_speedup_per_round"] = controls  # ~2.0 on an idle 2-core machine
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meshes", type=int, default=16, help="synthetic 20,000-face meshes")
    parser.add_argument("--copies", type=int, default=10, help="times each genuine mesh is listed")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "recipe_3d_throughput.json"))
    parser.add_argument("--write", action="store_true", help="save the results to --out (else only print)")
    args = parser.parse_args()
    import pymeshfix
    import scipy
    import trimesh

    results = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "python": platform.python_version(),
               "trimesh": trimesh.__version__, "pymeshfix": pymeshfix.__version__, "scipy": scipy.__version__}
    results["load_average_before"] = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="recipe3d-") as tmp:
        synthetic = Path(tmp) / "synthetic"
        results["synthetic_faces"] = make_synthetic(synthetic, args.meshes)
        results["synthetic"] = measure(synthetic, args.repeat)
        print("synthetic", json.dumps(results["synthetic"], indent=1))
        if (INTRA / "generated").is_dir():
            genuine = Path(tmp) / "genuine"
            link_genuine(genuine, args.copies)
            results["genuine"] = measure(genuine, args.repeat)
            print("genuine", json.dumps(results["genuine"], indent=1))
    results["load_average_after"] = os.getloadavg()  # other work on the 2 cores skews num_proc 2
    if args.write:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
        print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
