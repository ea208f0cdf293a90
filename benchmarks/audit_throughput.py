"""Benchmark: `medmnist-plus audit` speed and memory on a 224 px RGB release, against plain decoding of the same data.

The release: DermaMNIST-224 in the official format (members, dtypes, deflate), its rows crops of the genuine
HAM10000 photographs in ../shared/data/raw/ham10000 (random square crops of 40-100 % of the short edge, flipped at
random, PIL bilinear to 224 px), with planted duplicates: every 50th test row a copy of a train row (exact, across
splits) and every 50th validation row a JPEG (quality 95) round trip of a train row (near, across splits).

Measured, each in a fresh process (rows/s over all three splits, peak RSS of the process):
  1. inflate: the image members read from the file in chunks, nothing else (the fastest any reader can go);
  2. audit of the release file (default near threshold), and with --near 0 (exact duplicates only);
  3. PNG decode of the local Arrow build (`build --no-checks`, PNG storage), nothing else, and audit --build;
  4. the near search at scale: a 28 px release of --rows-28 rows (default 120,000) of the same kind of crops,
     audited: rows/s, seconds of the near search, candidate pairs compared.

Run:  python benchmarks/audit_throughput.py [--rows 4000] [--rows-28 120000] [--workdir benchmarks/work] [--write]
It prints a Markdown table; with --write it also replaces benchmarks/results/audit_throughput.json.
"""

from __future__ import annotations

import argparse
import glob
import io
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

PHOTOS = os.path.join(HERE, "..", "..", "shared", "data", "raw", "ham10000", "*.jpg")
SPLIT_SHARES = {"train": 0.7, "validation": 0.1, "test": 0.2}


def crops(photos, size: int, count: int, seed: int):
    """``count`` rows: random square crops of the photos, flipped at random, resized to ``size`` (bilinear)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for _ in range(count):
        photo = photos[rng.integers(len(photos))]
        width, height = photo.size
        side = int(min(width, height) * rng.uniform(0.4, 1.0))
        left, top = rng.integers(0, width - side + 1), rng.integers(0, height - side + 1)
        image = photo.crop((left, top, left + side, top + side))
        if rng.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        if rng.random() < 0.5:
            image = image.transpose(Image.FLIP_TOP_BOTTOM)
        yield np.asarray(image.resize((size, size), Image.BILINEAR), dtype=np.uint8)


def jpeg_round_trip(row: np.ndarray) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(row).save(buffer, format="JPEG", quality=95)
    return np.asarray(Image.open(buffer), dtype=np.uint8)


def write_release(path: str, size: int, rows: int, photo_side: int) -> dict:
    """The release file described in the module docstring; returns its split counts and planted pairs."""
    from PIL import Image

    from medmnist_plus_common.catalog import SPLITS
    from medmnist_plus_common.release.reader import member_name
    from medmnist_plus_common.release.writer import write_npz_members

    photos = []
    for name in sorted(glob.glob(PHOTOS)):
        photo = Image.open(name).convert("RGB")
        scale = photo_side / min(photo.size)  # smaller photos for small sizes: crops are then cheap
        photos.append(photo.resize((round(photo.size[0] * scale), round(photo.size[1] * scale)), Image.BOX)
                      if scale < 1 else photo)
    if not photos:
        raise SystemExit(f"no photographs found at {PHOTOS}")
    counts = {split: int(rows * share) for split, share in SPLIT_SHARES.items()}
    counts["train"] = rows - counts["validation"] - counts["test"]
    train_kept = {}  # the train rows that are planted again elsewhere
    planted = {"exact": [], "near": []}

    def images(split, seed):
        for k, row in enumerate(crops(photos, size, counts[split], seed)):
            if split == "train" and k < max(counts["test"], counts["validation"]) and k % 50 == 7:
                train_kept[k] = row
            if split == "test" and k % 50 == 7 and k in train_kept:
                planted["exact"].append([("train", k), ("test", k)])
                row = train_kept[k]
            elif split == "validation" and k % 50 == 7 and k in train_kept:
                planted["near"].append([("train", k), ("validation", k)])
                row = jpeg_round_trip(train_kept[k])
            yield row[None]

    rng = np.random.default_rng(7)
    members = {member_name(split, "images"): ((counts[split], size, size, 3), images(split, number))
               for number, split in enumerate(SPLITS)}
    for split in SPLITS:
        members[member_name(split, "labels")] = ((counts[split], 1), [rng.integers(0, 7, (counts[split], 1))])
    write_npz_members(path, members)
    return {"counts": counts, "planted": planted}


def worker(mode: str, config: str, data_dir: str, cache_dir: str) -> dict:
    """One measurement, in this (fresh) process. Modules are imported before the clock starts; each mode then
    counts the same setup: finding the release file (MD5 remembered, headers checked) or opening the build."""
    from medmnist_plus_common.catalog import SPLITS
    from medmnist_plus_common.release.reader import ReleaseArchive, member_name
    from medmnist_plus_common.tools import near_duplicates
    from medmnist_plus_common.tools.audit import _release_file, audit
    from medmnist_plus_common.tools.rows import open_split

    timing = {}
    search = near_duplicates.search

    def timed_search(*args, **kwargs):
        begin = time.perf_counter()
        found = search(*args, **kwargs)
        timing["near_search_seconds"] = time.perf_counter() - begin
        return found

    near_duplicates.search = timed_search
    start = time.perf_counter()
    extra, rows = {}, 0
    if mode == "inflate":
        path, index_dir, _ = _release_file(config, data_dir, cache_dir, no_checks=True)
        with ReleaseArchive(path, index_dir) as archive:
            for split in SPLITS:
                for chunk in archive.iter_chunks(member_name(split, "images"), [(0, None)]):
                    rows += len(chunk)
    elif mode == "png_decode":
        for split in SPLITS:
            opened = open_split(config, split, data_dir=data_dir, cache_dir=cache_dir, no_checks=True)
            for batch in opened.batches(batch_size=64):
                rows += len(batch)
    else:
        near = 0.0 if mode.endswith("near0") else near_duplicates.DEFAULT_THRESHOLD
        report = audit(config, data_dir=data_dir, cache_dir=cache_dir, no_checks=True, build=mode == "audit_build",
                       threshold=near)
        rows = sum(report.rows.values())
        extra = dict(report.counts(), compared_pairs=report.compared_pairs, near_complete=report.near_complete,
                     exact_members=sorted(sorted((m["split"], m["index"]) for m in g.members) for g in report.exact),
                     near_members=sorted(sorted((m["split"], m["index"]) for m in g.members) for g in report.near),
                     **timing)
    seconds = time.perf_counter() - start
    return dict(extra, mode=mode, rows=rows, seconds=seconds, rows_per_second=rows / seconds)


def measure(mode: str, config: str, data_dir: str, cache_dir: str) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--worker", mode, "--config", config, "--data-dir", data_dir,
               "--cache-dir", cache_dir]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, HF_DATASETS_DISABLE_PROGRESS_BARS="1"))
    with TreeMemorySampler(process.pid, interval=0.1, pss=False) as memory:
        out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{out}\n{err}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss"] = memory.peak_process_hwm
    print({k: v for k, v in result.items() if not k.endswith("_members")}, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4000, help="rows of the 224 px release (default 4000)")
    parser.add_argument("--rows-28", type=int, default=120_000, help="rows of the 28 px release (default 120000)")
    parser.add_argument("--workdir", default=os.path.join(HERE, "work", "audit"))
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the fastest counts")
    parser.add_argument("--write", action="store_true", help="save benchmarks/results/audit_throughput.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.config, args.data_dir, args.cache_dir)))
        return

    from medmnist_plus_common.catalog import load_catalog

    releases = {}
    for size, rows, photo_side in ((224, args.rows, 600), (28, args.rows_28, 112)):
        data_dir = os.path.join(args.workdir, f"release{size}-{rows}")
        os.makedirs(data_dir, exist_ok=True)
        path = os.path.join(data_dir, load_catalog()["dermamnist"].files[size].file)
        facts_file = path + ".json"
        if not (os.path.exists(path) and os.path.exists(facts_file)):
            begin = time.perf_counter()
            print(f"writing DermaMNIST-{size}-shaped release of {rows:,} rows from the HAM10000 photos", flush=True)
            with open(facts_file + ".partial", "w") as f:
                json.dump(write_release(path, size, rows, photo_side), f)
            os.replace(facts_file + ".partial", facts_file)
            print(f"  {time.perf_counter() - begin:.0f} s", flush=True)
        with open(facts_file) as f:
            releases[size] = dict(json.load(f), data_dir=data_dir, file_bytes=os.path.getsize(path))

    cache = os.path.join(args.workdir, "cache")
    big = releases[224]
    measure("png_decode", "dermamnist-224", big["data_dir"], cache)  # builds the Arrow cache (PNG) first: not counted
    runs = {}
    for _ in range(args.repeat):
        for mode in ("inflate", "audit", "audit_near0", "png_decode", "audit_build"):
            runs.setdefault(mode, []).append(measure(mode, "dermamnist-224", big["data_dir"], cache))
        runs.setdefault("audit_28", []).append(measure("audit", "dermamnist-28", releases[28]["data_dir"], cache))
    best = {mode: dict(min(results, key=lambda r: r["seconds"]), peak_rss=max(r["peak_rss"] for r in results),
                       all_seconds=[round(r["seconds"], 2) for r in results]) for mode, results in runs.items()}
    planted = {kind: [list(map(tuple, pair)) for pair in pairs] for kind, pairs in big["planted"].items()}
    found = {kind: [[tuple(m) for m in g] for g in best["audit"][f"{kind}_members"]] for kind in ("exact", "near")}
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "release_224": {k: v for k, v in big.items() if k != "data_dir"},
        "release_28": {k: v for k, v in releases[28].items() if k not in ("data_dir", "planted")},
        # every planted pair lies in one group (a near group also holds the exact copies of its images)
        "planted_found": {kind: all(any(set(pair) <= set(group) for group in found[kind]) for pair in planted[kind])
                          for kind in planted},
        "runs": {mode: {k: v for k, v in r.items() if not k.endswith("_members")} for mode, r in best.items()},
        "audit_vs_inflate": best["audit"]["rows_per_second"] / best["inflate"]["rows_per_second"],
        "audit_build_vs_png_decode": best["audit_build"]["rows_per_second"] / best["png_decode"]["rows_per_second"],
    }
    if args.write:
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        with open(os.path.join(HERE, "results", "audit_throughput.json"), "w") as f:
            json.dump(result, f, indent=2)
    mib = 2**20
    r = best
    print(f"""
| measure (DermaMNIST-224-shaped, {sum(big['counts'].values()):,} rows, HAM10000 crops) | rows/s | peak RSS |
|---|---|---|
| inflate the release file only | {r['inflate']['rows_per_second']:,.0f} | {r['inflate']['peak_rss'] / mib:,.0f} MiB |
| audit the release file (near d <= default) | {r['audit']['rows_per_second']:,.0f} | {r['audit']['peak_rss'] / mib:,.0f} MiB |
| audit the release file, --near 0 | {r['audit_near0']['rows_per_second']:,.0f} | {r['audit_near0']['peak_rss'] / mib:,.0f} MiB |
| PNG-decode the Arrow build only | {r['png_decode']['rows_per_second']:,.0f} | {r['png_decode']['peak_rss'] / mib:,.0f} MiB |
| audit --build | {r['audit_build']['rows_per_second']:,.0f} | {r['audit_build']['peak_rss'] / mib:,.0f} MiB |
| audit DermaMNIST-28-shaped, {sum(releases[28]['counts'].values()):,} rows | {r['audit_28']['rows_per_second']:,.0f} | {r['audit_28']['peak_rss'] / mib:,.0f} MiB |

audit / inflate: {result['audit_vs_inflate']:.2f}; audit --build / PNG decode: {result['audit_build_vs_png_decode']:.2f};
near search at {sum(releases[28]['counts'].values()):,} rows: {r['audit_28'].get('near_search_seconds', 0):.2f} s, \
{r['audit_28']['compared_pairs']:,} pairs compared; planted pairs found: {result['planted_found']}""")


if __name__ == "__main__":
    main()
