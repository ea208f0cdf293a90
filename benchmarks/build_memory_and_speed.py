"""Benchmark: building a PathMNIST-224-shaped release of >= 2 GiB pixels, memory and speed.

What it measures (issue 2):
  1. peak RSS of a single-process build (budget: 1 GiB; the official package holds a whole split in RAM),
  2. single-process build time vs. the sum of its unavoidable parts measured alone on the same file:
     decompressing the members with np.load + encoding every image as the Image feature stores it (PNG),
  3. the speed-up of --num-proc 2 over --num-proc 1.

Run:  python benchmarks/build_memory_and_speed.py [--rows 15000] [--workdir benchmarks/work] [--write]
It prints a Markdown table; with --write it also replaces benchmarks/results/build_memory_and_speed.json (the
committed numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

import numpy as np

from medmnist_plus_common.catalog import SPLITS, load_catalog
from medmnist_plus_common.features import encode_png
from medmnist_plus_common.release import member_name
from medmnist_plus_common.synthetic import write_synthetic_release

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from proc_memory import TreeMemorySampler  # noqa: E402


def run_build(data_dir: str, cache_dir: str, num_proc: int) -> dict:
    """Run `medmnist-plus build` in a fresh process: wall time and peak memory (see proc_memory.py)."""
    shutil.rmtree(cache_dir, ignore_errors=True)
    command = [sys.executable, "-m", "medmnist_plus_common.cli", "build", "pathmnist-224", "--data-dir", data_dir,
               "--cache-dir", cache_dir, "--no-checks", "--num-proc", str(num_proc)]
    env = dict(os.environ, HF_DATASETS_DISABLE_PROGRESS_BARS="1")
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeMemorySampler(process.pid) as memory:
        out, err = process.communicate()
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"build failed:\n{out}\n{err}")
    return {"num_proc": num_proc, "seconds": seconds, "peak_rss_largest_process": memory.peak_process_hwm,
            "peak_rss_process_tree": memory.peak_tree_rss, "output": out.strip()}


def unavoidable_parts(path: str) -> dict:
    """Decompress every member with np.load, then PNG-encode every image: each timed alone."""
    decompress = 0.0
    encode = 0.0
    images = 0
    for split in SPLITS:
        for kind in ("images", "labels"):
            start = time.perf_counter()
            with np.load(path) as arrays:
                array = arrays[member_name(split, kind)]
            decompress += time.perf_counter() - start
            if kind == "images":
                start = time.perf_counter()
                for pixels in array:
                    encode_png(pixels)
                encode += time.perf_counter() - start
                images += len(array)
            del array
    return {"np_load_seconds": decompress, "png_encode_seconds": encode, "images": images,
            "sum_seconds": decompress + encode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=15000, help="total rows (default 15000 = 2.1 GiB of pixels)")
    parser.add_argument("--workdir", default=os.path.join(HERE, "work"))
    parser.add_argument("--repeat", type=int, default=2,
                        help="builds per setting; the fastest counts (this VM's run-to-run noise is ~15%%)")
    parser.add_argument("--write", action="store_true",
                        help="save the results to benchmarks/results/build_memory_and_speed.json (else only print)")
    args = parser.parse_args()

    facts = load_catalog()["pathmnist"]
    counts = {"train": int(args.rows * 0.8), "validation": int(args.rows * 0.1)}
    counts["test"] = args.rows - counts["train"] - counts["validation"]
    data_dir = os.path.join(args.workdir, "release")
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(data_dir, facts.files[224].file)
    pixel_bytes = args.rows * int(np.prod(facts.image_shape(224)))
    marker = path + f".rows{args.rows}"
    if not (os.path.exists(path) and os.path.exists(marker)):
        print(f"writing a synthetic PathMNIST-224 release: {args.rows} rows, {pixel_bytes / 2**30:.2f} GiB pixels")
        write_synthetic_release(path, facts, 224, counts, seed=224)
        open(marker, "w").close()

    parts = unavoidable_parts(path)
    print(f"unavoidable parts: {parts}")
    runs = {1: [], 2: []}
    for _ in range(args.repeat):
        for num_proc in (1, 2):
            runs[num_proc].append(run_build(data_dir, os.path.join(args.workdir, f"cache{num_proc}"), num_proc))
            print({k: v for k, v in runs[num_proc][-1].items() if k != "output"}, flush=True)
    single, double = (min(runs[n], key=lambda r: r["seconds"]) for n in (1, 2))
    for n in (1, 2):  # memory: the worst run
        best = single if n == 1 else double
        best["peak_rss_largest_process"] = max(r["peak_rss_largest_process"] for r in runs[n])
        best["peak_rss_process_tree"] = max(r["peak_rss_process_tree"] for r in runs[n])
        best["all_seconds"] = [round(r["seconds"], 1) for r in runs[n]]

    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "release": {"rows": args.rows, "counts": counts, "pixel_bytes": pixel_bytes,
                    "file_bytes": os.path.getsize(path)},
        "unavoidable_parts": parts,
        "build_num_proc_1": single,
        "build_num_proc_2": double,
        "ratio_build_to_parts": single["seconds"] / parts["sum_seconds"],
        "speedup_num_proc_2": single["seconds"] / double["seconds"],
    }
    if args.write:
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        with open(os.path.join(HERE, "results", "build_memory_and_speed.json"), "w") as f:
            json.dump(result, f, indent=2)
    gib = 2**30
    print(f"""
| measure | value | goal |
|---|---|---|
| pixels in the synthetic release | {pixel_bytes / gib:.2f} GiB ({args.rows} rows, file {os.path.getsize(path) / gib:.2f} GiB) | >= 2 GiB |
| peak RSS, build --num-proc 1 | {single['peak_rss_largest_process'] / gib:.2f} GiB | <= 1 GiB |
| peak RSS, build --num-proc 2 (largest process / all processes at once) | {double['peak_rss_largest_process'] / gib:.2f} / {double['peak_rss_process_tree'] / gib:.2f} GiB | |
| np.load of all members alone | {parts['np_load_seconds']:.1f} s | |
| PNG encoding of all images alone | {parts['png_encode_seconds']:.1f} s | |
| build --num-proc 1 (fastest of {single['all_seconds']} s) | {single['seconds']:.1f} s = {result['ratio_build_to_parts']:.2f} x the parts | <= 1.5 x |
| build --num-proc 2 (fastest of {double['all_seconds']} s) | {double['seconds']:.1f} s = {result['speedup_num_proc_2']:.2f} x faster | >= 1.6 x |
""")


if __name__ == "__main__":
    main()
