"""Benchmark: the LiTS recipes on a 2 GiB CT volume: peak memory bounded by the crops, and volumes per second.

Issue 9 asks for "peak RSS bounded by crops (goal: under 1 GiB with a 2 GiB CT volume), next to the floor of reading
the crops alone" and volumes per second single process and with num_proc 2. This writes one LiTS-layout volume of
512 x 512 x 4096 int16 voxels (2 GiB, uncompressed .nii, written slab by slab) with 11 organ boxes of realistic
extents, plus a 512 x 512 x 600 volume (the issue's "real dimensions"), and measures in fresh processes:

  1. the floor: nibabel's proxy slicing of the 11 boxes alone (peak RSS, seconds);
  2. `medmnist-plus build organmnist3d-64 --source raw` and `organamnist-224` (peak RSS of the process tree);
  3. `regenerate.render` of the 11 boxes of both volumes, num_proc 1 and 2 (records per second);
  4. the same on the 512 x 512 x 600 volume stored as `.nii.gz` (as the Medical Segmentation Decathlon's copy of
     LiTS ships it): each process decompresses the volume once into a temporary file (nifti.UNPACK_ABOVE), then
     reads its boxes from it; each timed run starts without a decompressed copy.

Run:  python benchmarks/lits_ct_memory.py [--workdir benchmarks/work/lits] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from proc_memory import TreeMemorySampler  # noqa: E402

# organ code -> ((x0, x1), (y0, y1), (z0, z1) as fractions of the depth), within the box sizes the MedMNIST+ text
# gives for LiTS, (15-152) x (15-112) x (12-1145) voxels; the lungs' boxes are the largest, 152 x 112 x 1,146
# slices of the 4,096-slice volume (the text's maximum)
BOXES = {1: ((100, 252), (150, 262), (0.30, 0.45)), 2: ((300, 380), (230, 300), (0.45, 0.55)),
         3: ((130, 210), (230, 300), (0.45, 0.55)), 4: ((300, 400), (200, 290), (0.80, 0.92)),
         5: ((110, 210), (200, 290), (0.80, 0.92)), 6: ((200, 320), (180, 260), (0.70, 0.78)),
         7: ((190, 320), (140, 250), (0.18, 0.28)), 8: ((300, 452), (140, 252), (0.00, 0.28)),
         9: ((60, 212), (140, 252), (0.00, 0.28)), 10: ((310, 410), (200, 300), (0.38, 0.48)),
         11: ((200, 330), (230, 300), (0.42, 0.48))}


def write_volume(path: str, depth: int, seed: int = 0) -> None:
    """A LiTS-like int16 NIfTI (HU), written slab by slab so the writer never holds the volume either."""
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape((512, 512, depth))
    header.set_data_dtype(np.int16)
    affine = np.diag([-0.7, -0.7, 1.0, 1.0])
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=1)
    header["vox_offset"] = 352
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:512, 0:512]
    body = ((xx - 256) ** 2 / 230 ** 2 + (yy - 256) ** 2 / 180 ** 2 < 1)
    with open(path, "wb") as f:
        f.write(header.binaryblock)
        f.write(b"\0" * 4)  # no extensions
        for start in range(0, depth, 64):
            slab = np.where(body, 40, -1000)[:, :, None] + rng.integers(-60, 60, (512, 512, min(64, depth - start)))
            f.write(np.asfortranarray(slab.astype(np.int16)).tobytes(order="F"))


def write_collection(root: str, depth: int, number: int) -> None:
    os.makedirs(root, exist_ok=True)
    volume = os.path.join(root, f"volume-{number}.nii")
    if not os.path.exists(volume):
        write_volume(volume, depth, seed=number)
    lines = [f"{code} {x0} {x1} {y0} {y1} {int(z0 * depth)} {int(z1 * depth)}"
             for code, ((x0, x1), (y0, y1), (z0, z1)) in BOXES.items()]
    with open(os.path.join(root, f"segmentation-{number}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


FLOOR = """
import sys, time, nibabel as nib
path, depth = sys.argv[1], int(sys.argv[2])
boxes = {boxes!r}
image = nib.load(path, mmap=False)
start = time.perf_counter()
for (x0, x1), (y0, y1), (z0, z1) in boxes.values():
    crop = image.dataobj[x0:x1, y0:y1, int(z0 * depth):int(z1 * depth)]
print(time.perf_counter() - start)
"""


def measured(command):
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, HF_DATASETS_DISABLE_PROGRESS_BARS="1"))
    with TreeMemorySampler(process.pid) as memory:
        out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{command} failed:\n{out}\n{err}")
    return {"seconds": time.perf_counter() - start, "peak_rss_tree_gib": memory.peak_tree_rss / 2**30,
            "peak_rss_largest_gib": memory.peak_process_hwm / 2**30, "output": out.strip()[-300:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=os.path.join(HERE, "work", "lits"))
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    root = os.path.join(args.workdir, "lits")
    write_collection(root, 4096, 0)  # 2 GiB
    write_collection(root, 600, 1)  # the 512 x 512 x 600
    volume_bytes = os.path.getsize(os.path.join(root, "volume-0.nii"))
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "volume_gib": volume_bytes / 2**30, "boxes_per_volume": len(BOXES)}
    floor = FLOOR.format(boxes=BOXES)
    result["floor_reading_11_boxes"] = measured([sys.executable, "-c", floor, os.path.join(root, "volume-0.nii"), "4096"])
    for config in ("organmnist3d-64", "organamnist-224"):
        cache = os.path.join(args.workdir, "cache", config)
        subprocess.run(["rm", "-rf", cache])
        result[f"build_{config}"] = measured([sys.executable, "-m", "medmnist_plus_common.cli", "build", config,
                                              "--source", "raw", "--data-dir", root, "--no-checks",
                                              "--cache-dir", cache])
    from medmnist_plus_common.recipes.readers import nifti
    from medmnist_plus_common.hf.registry import recipe_for
    from medmnist_plus_common.recipes.base import plan_records
    from medmnist_plus_common.tools.regenerate import render

    for flag, size in (("organmnist3d", 64), ("organamnist", 224)):
        recipe = recipe_for(flag)
        plan = plan_records(recipe, root)
        items = plan.assigned
        variants = {size: recipe.default_variant(size)}
        for num_proc in (1, 2):
            start = time.perf_counter()
            count = sum(1 for _ in render(flag, plan.root, items, [size], variants, num_proc))
            seconds = time.perf_counter() - start
            result[f"render_{flag}_{size}_np{num_proc}"] = {"records": count, "seconds": seconds,
                                                           "records_per_second": count / seconds}
    gz_root = os.path.join(args.workdir, "lits_gz")
    gz_volume = os.path.join(gz_root, "volume-1.nii.gz")
    if not os.path.exists(gz_volume):
        import gzip
        import shutil

        os.makedirs(gz_root, exist_ok=True)
        with open(os.path.join(root, "volume-1.nii"), "rb") as src, gzip.open(gz_volume + ".partial", "wb", 6) as dst:
            shutil.copyfileobj(src, dst, 16 * 2**20)
        os.replace(gz_volume + ".partial", gz_volume)
        shutil.copy(os.path.join(root, "segmentation-1.txt"), gz_root)
    result["gz_volume_mib"] = os.path.getsize(gz_volume) / 2**20
    for flag, size in (("organmnist3d", 64), ("organamnist", 224)):
        recipe = recipe_for(flag)
        plan = plan_records(recipe, gz_root)
        variants = {size: recipe.default_variant(size)}
        for num_proc in (1, 2):
            nifti._unpacked.clear()  # each run decompresses the volume itself (no copy left by the previous run)
            start = time.perf_counter()
            count = sum(1 for _ in render(flag, plan.root, plan.assigned, [size], variants, num_proc))
            seconds = time.perf_counter() - start
            result[f"render_gz_{flag}_{size}_np{num_proc}"] = {"records": count, "seconds": seconds,
                                                              "records_per_second": count / seconds}
    print(json.dumps(result, indent=1))
    if args.write:
        with open(os.path.join(HERE, "results", "lits_ct_memory.json"), "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
