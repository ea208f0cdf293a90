"""Benchmark: building a PathMNIST-224-shaped release of >= 2 GiB pixels, memory and speed.

What it measures (issues 2, 11 and 17):
  1. peak RSS of a single-process build (budget: 1 GiB; the official package holds a whole split in RAM),
  2. single-process build time vs. its parts measured alone on the same file, in the same round: decompressing
     the members with np.load, plus encoding every image with PIL's default PNG (the anchor of issue 17: what a
     build cost before the cache got its fast encoder, goal <= 0.5 x), and the cache's fast encoder alone,
  3. the speed-up of --num-proc 2 over --num-proc 1 (issue 11: >= 1.8 x), for a file used the first time (its MD5
     is computed, it has no deflate index) and for a known file (MD5 remembered, deflate index recorded: a file
     medmnist-plus downloaded, or built once before),
  4. the same builds with --image-storage raw (uint8 pixels, no encoding).

Content: realistic 224 px RGB rows (crops of the genuine HAM10000 photos, benchmarks/realistic.py); --synthetic
uses the smooth synthetic rows of earlier sessions, which encode several times faster than photographs.
Rounds: every round measures the parts and then each build once (the load of this shared machine falls on all
alike); ratios are taken within a round, then their median (and min-max) over --repeat rounds.

Run:  python benchmarks/build_memory_and_speed.py [--rows 15000] [--workdir benchmarks/work] [--write]
It prints a Markdown table; with --write it also replaces benchmarks/results/build_memory_and_speed.json (the
committed numbers).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import os
import platform
import shutil
import subprocess
import sys
import time

import numpy as np

from medmnist_plus_common.catalog import SPLITS, load_catalog
from medmnist_plus_common.hf.features import encode_png, encode_png_fast
from medmnist_plus_common.release.reader import member_name
from medmnist_plus_common.release.synthetic import write_synthetic_release
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from proc_memory import TreeMemorySampler  # noqa: E402
from realistic import write_realistic_release  # noqa: E402


def run_build(data_dir: str, cache_dir: str, num_proc: int, known: bool = False, storage: str = "png") -> dict:
    """Run `medmnist-plus build` in a fresh process: wall time and peak memory (see proc_memory.py).

    ``known``: keep the cache's downloads folder from the previous build (the file's remembered MD5 and deflate
    index, as for a file medmnist-plus downloaded, or used before); else start from an empty cache."""
    if known:
        shutil.rmtree(os.path.join(cache_dir, "medmnist_plus"), ignore_errors=True)  # the built dataset only
    else:
        shutil.rmtree(cache_dir, ignore_errors=True)
    command = [sys.executable, "-m", "medmnist_plus_common.cli", "build", "pathmnist-224", "--data-dir", data_dir,
               "--cache-dir", cache_dir, "--no-checks", "--num-proc", str(num_proc), "--image-storage", storage]
    env = dict(os.environ, HF_DATASETS_DISABLE_PROGRESS_BARS="1")
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeMemorySampler(process.pid, interval=0.2, pss=False) as memory:  # light: VmRSS/VmHWM only
        out, err = process.communicate()
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"build failed:\n{out}\n{err}")
    cache_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in
                      os.walk(os.path.join(cache_dir, "medmnist_plus")) for f in files if f.endswith(".arrow"))
    return {"num_proc": num_proc, "known_file": known, "image_storage": storage, "seconds": seconds,
            "peak_rss_largest_process": memory.peak_process_hwm, "peak_rss_process_tree": memory.peak_tree_rss,
            "arrow_bytes": cache_bytes, "output": out.strip()}


def pil_default_png(pixels: np.ndarray) -> bytes:
    """PNG as PIL writes it by default (level 6): what datasets.Image stored, and the cache, before issue 17."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


ENCODERS = {"pil_default": pil_default_png, "fast": encode_png_fast, "compact": encode_png}


def parts(path: str) -> dict:
    """Decompress every member with np.load, then encode every image with each encoder: each timed alone."""
    decompress = 0.0
    encode = {name: 0.0 for name in ENCODERS}
    nbytes = {name: 0 for name in ENCODERS}
    images = 0
    for split in SPLITS:
        for kind in ("images", "labels"):
            start = time.perf_counter()
            with np.load(path) as arrays:
                array = arrays[member_name(split, kind)]
            decompress += time.perf_counter() - start
            if kind == "images":
                for name, encoder in ENCODERS.items():
                    start = time.perf_counter()
                    nbytes[name] += sum(len(encoder(pixels)) for pixels in array)
                    encode[name] += time.perf_counter() - start
                images += len(array)
            del array
    return {"np_load_seconds": decompress, "encode_seconds": encode, "encoded_bytes": nbytes, "images": images,
            "anchor_seconds": decompress + encode["pil_default"]}


SETTINGS = {  # name: (num_proc, known file, image storage)
    "png_np1": (1, False, "png"), "png_np2": (2, False, "png"),
    "png_np1_known": (1, True, "png"), "png_np2_known": (2, True, "png"),
    "raw_np1": (1, False, "raw"), "raw_np2": (2, False, "raw"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=15000, help="total rows (default 15000 = 2.1 GiB of pixels)")
    parser.add_argument("--workdir", default=os.path.join(HERE, "work"))
    parser.add_argument("--repeat", type=int, default=2, help="rounds (parts + every build once per round)")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"builds to run, of {list(SETTINGS)}")
    parser.add_argument("--synthetic", action="store_true", help="synthetic rows instead of realistic ones")
    parser.add_argument("--write", action="store_true",
                        help="save the results to benchmarks/results/build_memory_and_speed.json (else only print)")
    args = parser.parse_args()

    facts = load_catalog()["pathmnist"]
    counts = {"train": int(args.rows * 0.8), "validation": int(args.rows * 0.1)}
    counts["test"] = args.rows - counts["train"] - counts["validation"]
    content = "synthetic" if args.synthetic else "realistic"
    data_dir = os.path.join(args.workdir, f"release-{content}-{args.rows}")
    os.makedirs(data_dir, exist_ok=True)
    path = os.path.join(data_dir, facts.files[224].file)
    pixel_bytes = args.rows * int(np.prod(facts.image_shape(224)))
    marker = path + ".complete"
    if not (os.path.exists(path) and os.path.exists(marker)):
        print(f"writing a {content} PathMNIST-224 release: {args.rows} rows, {pixel_bytes / 2**30:.2f} GiB pixels")
        writer = write_synthetic_release if args.synthetic else write_realistic_release
        writer(path, facts, 224, counts, seed=224)
        open(marker, "w").close()

    settings = [name for name in args.settings.split(",") if name]
    load = [os.getloadavg()[0]]
    rounds = []
    for _ in range(args.repeat):
        this = {"parts": parts(path)}
        print(f"parts: {this['parts']}", flush=True)
        for name in settings:
            num_proc, known, storage = SETTINGS[name]
            this[name] = run_build(data_dir, os.path.join(args.workdir, f"cache-{storage}{num_proc}"), num_proc,
                                   known, storage)
            print(name, {k: v for k, v in this[name].items() if k != "output"}, flush=True)
        rounds.append(this)
    load.append(os.getloadavg()[0])

    def ratio(top, bottom):
        values = [top(r) / bottom(r) for r in rounds]
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    anchor = lambda r: r["parts"]["anchor_seconds"]  # noqa: E731
    summary = {}
    for name in settings:
        runs = [r[name] for r in rounds]
        summary[name] = {"seconds_median": statistics.median(r["seconds"] for r in runs),
                         "all_seconds": [round(r["seconds"], 1) for r in runs],
                         "vs_anchor": ratio(lambda r, n=name: r[n]["seconds"], anchor),
                         "peak_rss_largest_process": max(r["peak_rss_largest_process"] for r in runs),
                         "peak_rss_process_tree": max(r["peak_rss_process_tree"] for r in runs),
                         "arrow_bytes": runs[-1]["arrow_bytes"]}
    for one, two in (("png_np1", "png_np2"), ("png_np1_known", "png_np2_known"), ("raw_np1", "raw_np2")):
        if one in settings and two in settings:
            summary[two]["speedup_over_np1"] = ratio(lambda r, a=one: r[a]["seconds"], lambda r, b=two: r[b]["seconds"])
    result = {
        "date": time.strftime("%Y-%m-%d"), "content": content,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "load_average_1min": load,
        "release": {"rows": args.rows, "counts": counts, "pixel_bytes": pixel_bytes,
                    "file_bytes": os.path.getsize(path)},
        "parts_rounds": [r["parts"] for r in rounds], "summary": summary,
        "builds": {name: [{k: v for k, v in r[name].items() if k != "output"} for r in rounds] for name in settings},
    }
    if args.write:
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        with open(os.path.join(HERE, "results", "build_memory_and_speed.json"), "w") as f:
            json.dump(result, f, indent=2)
    gib = 2**30
    p = rounds[-1]["parts"]
    print(f"""
{content} release: {args.rows} rows of 224 x 224 x 3, {pixel_bytes / gib:.2f} GiB of pixels, file {os.path.getsize(path) / gib:.2f} GiB;
{args.repeat} rounds, load average (1 min) {load[0]:.1f} -> {load[1]:.1f}

| part (last round, one process) | seconds | bytes per image |
|---|---|---|
| np.load of all members | {p['np_load_seconds']:.1f} | |
| PIL default PNG (anchor encoder) | {p['encode_seconds']['pil_default']:.1f} | {p['encoded_bytes']['pil_default'] / p['images']:,.0f} |
| fast PNG (the cache's encoder) | {p['encode_seconds']['fast']:.1f} | {p['encoded_bytes']['fast'] / p['images']:,.0f} |
| compact PNG (export, push) | {p['encode_seconds']['compact']:.1f} | {p['encoded_bytes']['compact'] / p['images']:,.0f} |

| build | seconds (each round) | x anchor (np.load + PIL default PNG), median [min-max] | speed-up over np1 | peak RSS largest / tree GiB | Arrow cache GiB |
|---|---|---|---|---|---|""")
    for name in settings:
        s = summary[name]
        v = s["vs_anchor"]
        speed = s.get("speedup_over_np1")
        speed_text = "" if speed is None else f"{speed['median']:.2f} x"
        print(f"| {name} | {s['all_seconds']} | {v['median']:.2f} x [{v['min']:.2f}-{v['max']:.2f}] | "
              f"{speed_text} | "
              f"{s['peak_rss_largest_process'] / gib:.2f} / {s['peak_rss_process_tree'] / gib:.2f} | "
              f"{s['arrow_bytes'] / gib:.2f} |")


if __name__ == "__main__":
    main()
