"""Benchmark: building a PathMNIST-224-shaped release of >= 2 GiB pixels, memory and speed.

What it measures (issue 2):
  1. peak RSS of a single-process build (budget: 1 GiB; the official package holds a whole split in RAM),
  2. single-process build time vs. the sum of its unavoidable parts measured alone on the same file:
     decompressing the members with np.load + encoding every image as the Image feature stores it (PNG),
  3. the speed-up of --num-proc 2 over --num-proc 1 (issue 11: >= 1.8 x), for a file used the first time (its MD5
     is computed, it has no deflate index) and for a known file (MD5 remembered, deflate index recorded: a file
     medmnist-plus downloaded, or built once before).

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
from medmnist_plus_common.hf.features import encode_png
from medmnist_plus_common.release.reader import member_name
from medmnist_plus_common.release.synthetic import write_synthetic_release

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from proc_memory import TreeMemorySampler  # noqa: E402


def run_build(data_dir: str, cache_dir: str, num_proc: int, known: bool = False) -> dict:
    """Run `medmnist-plus build` in a fresh process: wall time and peak memory (see proc_memory.py).

    ``known``: keep the cache's downloads folder from the previous build (the file's remembered MD5 and deflate
    index, as for a file medmnist-plus downloaded, or used before); else start from an empty cache."""
    if known:
        shutil.rmtree(os.path.join(cache_dir, "medmnist_plus"), ignore_errors=True)  # the built dataset only
    else:
        shutil.rmtree(cache_dir, ignore_errors=True)
    command = [sys.executable, "-m", "medmnist_plus_common.cli", "build", "pathmnist-224", "--data-dir", data_dir,
               "--cache-dir", cache_dir, "--no-checks", "--num-proc", str(num_proc)]
    env = dict(os.environ, HF_DATASETS_DISABLE_PROGRESS_BARS="1")
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeMemorySampler(process.pid, interval=0.2, pss=False) as memory:  # light: VmRSS/VmHWM only
        out, err = process.communicate()
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"build failed:\n{out}\n{err}")
    return {"num_proc": num_proc, "known_file": known, "seconds": seconds, "peak_rss_largest_process": memory.peak_process_hwm,
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
    settings = [(1, False), (2, False), (1, True), (2, True)]
    runs = {setting: [] for setting in settings}
    for _ in range(args.repeat):
        for num_proc, known in settings:
            runs[num_proc, known].append(
                run_build(data_dir, os.path.join(args.workdir, f"cache{num_proc}"), num_proc, known))
            print({k: v for k, v in runs[num_proc, known][-1].items() if k != "output"}, flush=True)
    best = {}
    for setting, results in runs.items():  # time: the fastest run; memory: the worst run
        best[setting] = dict(min(results, key=lambda r: r["seconds"]))
        best[setting]["peak_rss_largest_process"] = max(r["peak_rss_largest_process"] for r in results)
        best[setting]["peak_rss_process_tree"] = max(r["peak_rss_process_tree"] for r in results)
        best[setting]["all_seconds"] = [round(r["seconds"], 1) for r in results]
    single, double = best[1, False], best[2, False]
    single_known, double_known = best[1, True], best[2, True]

    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "release": {"rows": args.rows, "counts": counts, "pixel_bytes": pixel_bytes,
                    "file_bytes": os.path.getsize(path)},
        "unavoidable_parts": parts,
        "build_num_proc_1": single,
        "build_num_proc_2": double,
        "build_num_proc_1_known_file": single_known,
        "build_num_proc_2_known_file": double_known,
        "ratio_build_to_parts": single["seconds"] / parts["sum_seconds"],
        "speedup_num_proc_2": single["seconds"] / double["seconds"],
        "speedup_num_proc_2_known_file": single_known["seconds"] / double_known["seconds"],
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
| known file: build --num-proc 1 (fastest of {single_known['all_seconds']} s) | {single_known['seconds']:.1f} s | |
| known file: build --num-proc 2 (fastest of {double_known['all_seconds']} s) | {double_known['seconds']:.1f} s = {result['speedup_num_proc_2_known_file']:.2f} x faster | >= 1.8 x |
""")


if __name__ == "__main__":
    main()
