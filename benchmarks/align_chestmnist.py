"""Benchmark: `align` on ChestMNIST-sized work: 1024 px PNG sources, matched against a 112,120-row 28 px release.

What it measures (issue 8, "align on 112,120 synthetic 1024 px images: state the time and what bounds it"):
  1. the decoding floor: PIL open + load of the N source PNGs alone (per image);
  2. `align` end to end on the N records (read + crop + resize + hash + lookup), num_proc 1 and 2;
  3. the matching side alone at full scale: hashing all 112,120 rows of the release and looking up N digests.
The N records' official rows are placed at shuffled positions among 112,120 rows of a synthetic 28 px release,
so the matching works against a release of the real size. Writing 112,120 PNGs of 1024 px takes tens of GB and
hours here; N defaults to 600 and the full-collection time is extrapolated from the measured per-image rate
(the matching side is measured at full size, not extrapolated).

The source PNGs are realistic (issue 17): 1024 px gray crops of the genuine Kermany X-rays and BUSI ultrasound
images in ../shared/data/raw (``benchmarks/realistic.py``), which decode slower than smooth synthetic content;
``--synthetic`` writes smooth X-ray-like synthetic images instead (what issue 8 measured).

Run:  python benchmarks/align_chestmnist.py [--images 600] [--workdir benchmarks/work/align] [--synthetic] [--write]
With --write it stores benchmarks/results/align_chestmnist.json (``align_chestmnist_synthetic.json`` with
--synthetic; the committed results are only replaced then).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time

import numpy as np
from PIL import Image

from medmnist_plus_common.catalog import load_catalog
from medmnist_plus_common.hf.registry import recipe_for
from medmnist_plus_common.recipes.base import Assigned
from medmnist_plus_common.tools.align import _release_rows, align, pixel_digest
from medmnist_plus_common.tools.regenerate import render

HERE = os.path.dirname(os.path.abspath(__file__))
FULL = 112_120


def write_sources(root: str, count: int, seed: int = 0, synthetic: bool = False):
    """ChestX-ray14 layout: images/*.png (1024 px gray: realistic crops, or smooth X-ray-like synthetic content)
    and Data_Entry_2017.csv."""
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    rng = np.random.default_rng(seed)
    if not synthetic:
        from realistic import realistic_pixels  # needs ../shared/data/raw (says so when absent)
    yy, xx = np.mgrid[0:1024, 0:1024].astype(np.float32) / 1024
    findings = ["No Finding", "Effusion", "Atelectasis|Mass", "Nodule", "Cardiomegaly|Edema"]
    with open(os.path.join(root, "Data_Entry_2017.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Image Index", "Finding Labels", "Follow-up #", "Patient ID"])
        for i in range(count):
            name = f"{i:08d}_000.png"
            path = os.path.join(root, "images", name)
            if os.path.exists(path):
                pass  # written by an earlier run of the same workdir
            elif not synthetic:
                Image.fromarray(realistic_pixels(rng, 1024, 1024, 1)).save(path)
            else:
                cx, cy, w = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.3)
                body = 160 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * w * w)) + 40 * yy
                noise = rng.normal(0, 6, (1024, 1024)).astype(np.float32)
                Image.fromarray(np.clip(body + noise, 0, 255).astype(np.uint8)).save(path)
            writer.writerow([name, findings[i % len(findings)], 0, i])


def write_release(path: str, rendered, seed: int = 1) -> None:
    """A 28 px ChestMNIST release of 112,120 rows with the rendered records at shuffled positions."""
    facts = load_catalog()["chestmnist"]
    rng = np.random.default_rng(seed)
    counts = facts.split_counts
    arrays = {}
    positions = rng.permutation(counts["train"])[: len(rendered)]
    for split, prefix in (("train", "train"), ("validation", "val"), ("test", "test")):
        images = rng.integers(0, 256, (counts[split], 28, 28), dtype=np.uint8)
        labels = (rng.random((counts[split], 14)) < 0.1).astype(np.uint8)
        if split == "train":
            for position, (pixels, label) in zip(positions, rendered):
                images[position], labels[position] = pixels, label
        arrays[f"{prefix}_images"], arrays[f"{prefix}_labels"] = images, labels
    np.savez_compressed(path, **arrays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--workdir", default=os.path.join(HERE, "work", "align"))
    parser.add_argument("--synthetic", action="store_true",
                        help="smooth synthetic sources instead of realistic crops of ../shared/data/raw")
    parser.add_argument("--write", action="store_true", help="store the results in benchmarks/results/")
    args = parser.parse_args()
    content = "synthetic" if args.synthetic else "realistic"
    root = os.path.join(args.workdir, f"chestxray14-{content}")
    release = os.path.join(args.workdir, f"chestmnist-{content}.npz")
    write_sources(root, args.images, synthetic=args.synthetic)
    recipe = recipe_for("chestmnist")
    records = sorted(recipe.records(recipe.find_root(root)), key=lambda r: r.record)
    variants = {28: recipe.default_variant(28)}
    items = [Assigned("train", i, r) for i, r in enumerate(records)]
    rendered = [(r.pixels[28], np.asarray(r.item.record.label, np.uint8))
                for r in render("chestmnist", recipe.find_root(root), items, [28], variants)]
    write_release(release, rendered)

    start = time.perf_counter()
    for record in records:
        with Image.open(os.path.join(root, record.path)) as image:
            image.load()
    decode = (time.perf_counter() - start) / len(records)

    start = time.perf_counter()
    digests = {pixel_digest(pixels) for _, _, pixels, _ in _release_rows(release, load_catalog()["chestmnist"])}
    hashing = time.perf_counter() - start
    found = sum(pixel_digest(p) in digests for p, _ in rendered)

    runs = []
    for num_proc in (1, 2):
        start = time.perf_counter()
        report = align("chestmnist", root, release, out=os.path.join(args.workdir, f"m{num_proc}.csv"),
                       num_proc=num_proc)
        seconds = time.perf_counter() - start
        runs.append({"num_proc": num_proc, "seconds": seconds, "per_image_ms": 1000 * (seconds - hashing) / len(records),
                     "exact": report.count("exact"), "unmatched": len(report.unmatched)})
        assert report.count("exact") == len(records), report.summary()
    result = {
        "date": time.strftime("%Y-%m-%d"), "content": content, "load_average_1min": os.getloadavg()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "images": len(records), "release_rows": FULL,
        "decode_floor_ms_per_image": 1000 * decode,
        "release_hashing_seconds_112120_rows": hashing, "digests_found": found,
        "runs": runs,
        "extrapolated_112120_images_seconds": {
            str(r["num_proc"]): hashing + r["per_image_ms"] / 1000 * FULL for r in runs},
        "decode_floor_112120_images_seconds_one_core": decode * FULL,
    }
    print(json.dumps(result, indent=1))
    if args.write:
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        name = "align_chestmnist.json" if not args.synthetic else "align_chestmnist_synthetic.json"
        with open(os.path.join(HERE, "results", name), "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
