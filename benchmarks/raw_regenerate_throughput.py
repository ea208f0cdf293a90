"""Benchmark: regenerating the 2D datasets from raw collections of real dimensions (issue 8).

For each of the nine 2D datasets, on a raw collection in the dataset's true on-disk format and real image
dimensions (``tests.fakes.raw_collections``; ChestMNIST 1024 px PNG, RetinaMNIST 1824x1736 JPEG, ...) whose
pixels are realistic (cut from the genuine images in ../shared/data/raw by ``benchmarks/realistic.py``;
``--synthetic``: smooth synthetic pixels), it measures, each run in a fresh process whose memory is read from
/proc every 50 ms:

  1. the floor: decoding the same files alone (PIL open + load; ``np.load`` for .npy stacks), single process,
  2. ``regenerate(flag, data_dir, sizes=[224], out_dir, num_proc=1, no_checks=True)``: images per second,
  3. the same with ``num_proc=2`` (the speed-up),
  4. ``sizes=[28, 64, 128, 224]`` in one pass against 224 alone (each record is decoded once for all sizes),

with the peak RSS of each run (largest process, and the whole process tree at one instant).

Run:  python benchmarks/raw_regenerate_throughput.py [--images 200] [--flags pathmnist,chestmnist] [--write]
Without --write it only prints; with it, results go to benchmarks/results/raw_regenerate_throughput.json
(``raw_regenerate_throughput_synthetic.json`` with --synthetic; the RESULTS.md section is written by hand from them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # tests.fakes: the raw collections in their true formats
from proc_memory import TreeMemorySampler  # noqa: E402

FLAGS = ("pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist", "breastmnist",
         "bloodmnist", "tissuemnist")
ALL_SIZES = (28, 64, 128, 224)


def counts_for(flag: str, images: int):
    """``counts_per_class_or_part`` giving about ``images`` records (test/validation parts about a fifth)."""
    if flag == "pathmnist":
        return {"train": max(1, images * 4 // 5 // 9), "test": max(1, images // 5 // 9)}
    if flag == "chestmnist":
        return images
    if flag == "octmnist":
        return {"train": max(1, images * 4 // 5 // 4), "test": max(1, images // 5 // 4)}
    if flag == "pneumoniamnist":
        return {"train": max(1, images * 4 // 5 // 2), "test": max(1, images // 5 // 2)}
    if flag == "retinamnist":
        return {"train": max(1, images * 4 // 5), "validation": max(1, images // 5)}
    return max(1, images // {"dermamnist": 7, "breastmnist": 3, "bloodmnist": 8, "tissuemnist": 8}[flag])


def prepare(flag: str, images: int, workdir: Path, synthetic: bool = False) -> dict:
    """Write (or reuse) the raw collection of ``flag`` (realistic pixels unless ``synthetic``); its record count,
    files and bytes."""
    from tests.fakes.raw_collections import collection_root, write_raw_collection

    data_dir = workdir / "raw" / f"{flag}-{images}{'' if synthetic else '-realistic'}"
    stamp = data_dir / ".records.json"
    if not stamp.is_file():
        shutil.rmtree(data_dir, ignore_errors=True)
        start = time.perf_counter()
        if synthetic:
            content = contextlib.nullcontext()
        else:
            from realistic import realistic_raw_content  # needs ../shared/data/raw (says so when absent)

            content = realistic_raw_content()
        with content:
            records = write_raw_collection(flag, data_dir, counts_for(flag, images), seed=0)
        seconds = time.perf_counter() - start
        stamp.write_text(json.dumps({"records": [r[0] for r in records], "write_seconds": seconds}))
    info = json.loads(stamp.read_text())
    root = collection_root(flag, data_dir)
    files = [root / r for r in info["records"]]
    return {"data_dir": str(data_dir), "records": len(files), "bytes": sum(f.stat().st_size for f in files),
            "write_seconds": info["write_seconds"]}


# -- what a fresh process runs --------------------------------------------------------------------------------


def child_decode(flag: str, data_dir: str) -> dict:
    """PIL open + load of every record file (np.load for .npy), nothing else."""
    import numpy as np
    from PIL import Image, ImageSequence

    from medmnist_plus_common.hf.registry import recipe_for

    recipe = recipe_for(flag)
    root = recipe.find_root(data_dir)
    paths = [root / r.path for r in recipe.records(root)]
    start = time.perf_counter()
    for path in paths:
        if path.suffix == ".npy":
            np.load(path)
            continue
        with Image.open(path) as image:
            for page in ImageSequence.Iterator(image):
                page.load()
    return {"seconds": time.perf_counter() - start, "images": len(paths)}


def child_regenerate(flag: str, data_dir: str, sizes, num_proc: int, out_dir: str, deflate: str = "default") -> dict:
    import zlib

    from medmnist_plus_common.hf.registry import recipe_for
    from medmnist_plus_common.release import writer
    from medmnist_plus_common.tools.regenerate import regenerate

    if deflate == "zlib":  # the deflate of earlier sessions (zlib level 6), for a comparison within one run
        writer._DEFLATE[:] = [(zlib, zlib.Z_DEFAULT_COMPRESSION)]

    recipe_for(flag)  # imports the builders (and datasets) before the clock starts: a one-off, not throughput
    shutil.rmtree(out_dir, ignore_errors=True)
    start = time.perf_counter()
    report = regenerate(flag, data_dir, sizes=list(sizes), out_dir=out_dir, num_proc=num_proc, no_checks=True)
    seconds = time.perf_counter() - start
    out_bytes = sum(os.path.getsize(p) for p in report.files.values())
    shutil.rmtree(out_dir, ignore_errors=True)
    return {"seconds": seconds, "images": sum(report.counts.values()), "output_bytes": out_bytes,
            "deflate": writer.deflate_library()[0].__name__}


def child_render(flag: str, data_dir: str, sizes, num_proc: int) -> dict:
    """regenerate's rendering alone (decode, crop, resize, JPEG round trip), without writing the release file."""
    from medmnist_plus_common.hf.registry import recipe_for
    from medmnist_plus_common.recipes.base import plan_records
    from medmnist_plus_common.tools.regenerate import render

    recipe = recipe_for(flag)
    plan = plan_records(recipe, data_dir)
    variants = {size: recipe.default_variant(size) for size in sizes}
    start = time.perf_counter()
    count = sum(1 for _ in render(flag, plan.root, plan.assigned, list(sizes), variants, num_proc))
    return {"seconds": time.perf_counter() - start, "images": count}


def run_child(args) -> dict:
    """Run one measurement in a fresh process: its own timing plus peak memory of its process tree."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(args)]
    env = dict(os.environ, HF_DATASETS_DISABLE_PROGRESS_BARS="1", PYTHONWARNINGS="ignore")
    wall = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=str(HERE.parent))
    with TreeMemorySampler(process.pid) as memory:
        out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{args} failed:\n{out}\n{err}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(wall_seconds=time.perf_counter() - wall, peak_rss_largest_process=memory.peak_process_hwm,
                  peak_rss_process_tree=memory.peak_tree_rss, peak_pss_process_tree=memory.peak_tree_pss)
    result["images_per_second"] = result["images"] / result["seconds"]
    return result


def measure(flag: str, prepared: dict, workdir: Path, repeat: int) -> dict:
    data_dir, out = prepared["data_dir"], str(workdir / "out" / flag)

    def best(args):
        runs = [run_child(args) for _ in range(repeat)]
        return min(runs, key=lambda r: r["seconds"])

    result = {"decode_floor": best({"mode": "decode", "flag": flag, "data_dir": data_dir})}
    for name, sizes, num_proc in (("regenerate_224_np1", [224], 1), ("regenerate_224_np2", [224], 2),
                                  ("regenerate_all_sizes_np1", list(ALL_SIZES), 1)):
        result[name] = best({"mode": "regenerate", "flag": flag, "data_dir": data_dir, "sizes": sizes,
                             "num_proc": num_proc, "out_dir": out})
    for num_proc in (1, 2):
        result[f"render_224_np{num_proc}"] = best({"mode": "render", "flag": flag, "data_dir": data_dir,
                                                   "sizes": [224], "num_proc": num_proc})
    one, two = result["regenerate_224_np1"]["seconds"], result["regenerate_224_np2"]["seconds"]
    result["summary"] = {
        "images": prepared["records"],
        "decode_floor_ips": result["decode_floor"]["images_per_second"],
        "np1_ips": result["regenerate_224_np1"]["images_per_second"],
        "np1_over_floor": one / result["decode_floor"]["seconds"],
        "np2_ips": result["regenerate_224_np2"]["images_per_second"],
        "np2_speedup": one / two,
        "render_np1_ips": result["render_224_np1"]["images_per_second"],
        "render_np2_speedup": result["render_224_np1"]["seconds"] / result["render_224_np2"]["seconds"],
        "write_share_np1": 1 - result["render_224_np1"]["seconds"] / one,
        "all_sizes_over_224": result["regenerate_all_sizes_np1"]["seconds"] / one,
        "peak_rss_np1_mib": result["regenerate_224_np1"]["peak_rss_largest_process"] / 2**20,
        "peak_rss_np2_tree_mib": result["regenerate_224_np2"]["peak_rss_process_tree"] / 2**20,
        "peak_rss_all_sizes_mib": result["regenerate_all_sizes_np1"]["peak_rss_largest_process"] / 2**20,
    }
    return result


def measure_all_sizes(flag: str, prepared: dict, workdir: Path, repeat: int) -> dict:
    """224 alone and 28+64+128+224, one process, each with ISA-L (the default) and with zlib level 6 (the deflate
    of earlier sessions), interleaved round after round (the machine's load falls on all alike): per round the
    ratio all sizes / 224 alone for each deflater, then the median and spread over rounds."""
    data_dir, out = prepared["data_dir"], str(workdir / "out" / flag)
    rounds = []
    for _ in range(repeat):
        this = {}
        for deflate in ("default", "zlib"):
            for label, sizes in (("224", [224]), ("all", list(ALL_SIZES))):
                run = run_child({"mode": "regenerate", "flag": flag, "data_dir": data_dir, "sizes": sizes,
                                 "num_proc": 1, "out_dir": out, "deflate": deflate})
                this[f"{deflate}_{label}"] = {"seconds": run["seconds"], "output_bytes": run["output_bytes"],
                                              "deflate": run["deflate"]}
        for deflate in ("default", "zlib"):
            this[f"{deflate}_ratio"] = this[f"{deflate}_all"]["seconds"] / this[f"{deflate}_224"]["seconds"]
        this["all_sizes_zlib_over_default"] = this["zlib_all"]["seconds"] / this["default_all"]["seconds"]
        rounds.append(this)
        print(f"  {flag}: {this['default_all']['deflate']}: 224 {this['default_224']['seconds']:.2f} s, all "
              f"{this['default_all']['seconds']:.2f} s ({this['default_ratio']:.3f} x); zlib: 224 "
              f"{this['zlib_224']['seconds']:.2f} s, all {this['zlib_all']['seconds']:.2f} s "
              f"({this['zlib_ratio']:.3f} x)", file=sys.stderr)

    def summary(key):
        values = [r[key] for r in rounds]
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    return {"images": prepared["records"], "rounds": rounds, "deflate": rounds[0]["default_all"]["deflate"],
            "ratio": summary("default_ratio"), "ratio_zlib": summary("zlib_ratio"),
            "all_sizes_zlib_over_default": summary("all_sizes_zlib_over_default"),
            "bytes_all_sizes_vs_zlib": rounds[0]["default_all"]["output_bytes"] / rounds[0]["zlib_all"]["output_bytes"],
            "images_per_second_224": prepared["records"] / statistics.median(r["default_224"]["seconds"] for r in rounds),
            "images_per_second_224_zlib": prepared["records"] / statistics.median(r["zlib_224"]["seconds"] for r in rounds)}


def table(results: dict) -> str:
    lines = ["| dataset | images (source) | decode floor img/s | regenerate 224 img/s (x floor time) | "
             "num_proc 2 img/s (speed-up) | rendering alone img/s, np2 speed-up | share of np1 time not rendering | "
             "28+64+128+224 / 224 alone | peak RSS np1 / np2 tree / all sizes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for flag, result in results.items():
        s = result["summary"]
        lines.append(
            f"| {flag} | {s['images']} ({result['source']}) | {s['decode_floor_ips']:.0f} | "
            f"{s['np1_ips']:.0f} ({s['np1_over_floor']:.2f} x) | {s['np2_ips']:.0f} ({s['np2_speedup']:.2f} x) | "
            f"{s['render_np1_ips']:.0f}, {s['render_np2_speedup']:.2f} x | {100 * s['write_share_np1']:.0f} % | "
            f"{s['all_sizes_over_224']:.2f} x | {s['peak_rss_np1_mib']:.0f} / {s['peak_rss_np2_tree_mib']:.0f} / "
            f"{s['peak_rss_all_sizes_mib']:.0f} MiB |")
    return "\n".join(lines)


SOURCES = {"pathmnist": "224x224 RGB TIFF", "chestmnist": "1024x1024 gray PNG", "dermamnist": "600x450 RGB JPEG",
           "octmnist": "384-1536 x 277-512 gray JPEG", "pneumoniamnist": "127-1200 px gray JPEG",
           "retinamnist": "1824x1736 RGB JPEG", "breastmnist": "449-701 px PNG", "bloodmnist": "360x363 RGB JPEG",
           "tissuemnist": "7x32x32 TIFF/.npy stacks"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200, help="records per dataset (about; default 200)")
    parser.add_argument("--flags", default=",".join(FLAGS))
    parser.add_argument("--repeat", type=int, default=1, help="runs per setting; the fastest counts")
    parser.add_argument("--workdir", default=str(HERE / "work"))
    parser.add_argument("--write", action="store_true", help="write results/raw_regenerate_throughput.json")
    parser.add_argument("--synthetic", action="store_true",
                        help="synthetic smooth pixels instead of realistic ones cut from ../shared/data/raw")
    parser.add_argument("--all-sizes-only", action="store_true",
                        help="only 224 alone vs 28+64+128+224 (one process), interleaved over --repeat rounds; "
                             "with --write: results/raw_regenerate_all_sizes.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job = json.loads(args.child)
        if job["mode"] == "decode":
            print(json.dumps(child_decode(job["flag"], job["data_dir"])))
        elif job["mode"] == "render":
            print(json.dumps(child_render(job["flag"], job["data_dir"], job["sizes"], job["num_proc"])))
        else:
            print(json.dumps(child_regenerate(job["flag"], job["data_dir"], job["sizes"], job["num_proc"],
                                              job["out_dir"], job.get("deflate", "default"))))
        return
    workdir = Path(args.workdir)
    results = {}
    if args.all_sizes_only:
        load = [os.getloadavg()[0]]
        for flag in args.flags.split(","):
            prepared = prepare(flag, args.images, workdir, args.synthetic)
            results[flag] = measure_all_sizes(flag, prepared, workdir, args.repeat)
        load.append(os.getloadavg()[0])
        print("| dataset | images | 224 alone img/s, ISA-L / zlib | 28+64+128+224 / 224 alone, ISA-L | same, zlib 6 | "
              "all sizes: zlib time / ISA-L time | bytes ISA-L / zlib |\n|---|---|---|---|---|---|---|")
        for flag, r in results.items():
            a, z, g = r["ratio"], r["ratio_zlib"], r["all_sizes_zlib_over_default"]
            print(f"| {flag} | {r['images']} | {r['images_per_second_224']:.0f} / {r['images_per_second_224_zlib']:.0f} | "
                  f"**{a['median']:.3f} x** [{a['min']:.3f}-{a['max']:.3f}] | {z['median']:.3f} x [{z['min']:.3f}-"
                  f"{z['max']:.3f}] | {g['median']:.2f} x | {r['bytes_all_sizes_vs_zlib']:.3f} |")
        print(f"load average (1 min) before / after: {load[0]:.2f} / {load[1]:.2f}")
        if args.write:
            out = HERE / "results" / "raw_regenerate_all_sizes.json"
            payload = {"date": time.strftime("%Y-%m-%d"), "content": "synthetic" if args.synthetic else "realistic",
                       "images_per_dataset": args.images, "rounds": args.repeat, "load_average_1min": load,
                       "results": results}
            out.write_text(json.dumps(payload, indent=2) + "\n")
            print(f"wrote {out}", file=sys.stderr)
        return
    for flag in args.flags.split(","):
        prepared = prepare(flag, args.images, workdir, args.synthetic)
        print(f"{flag}: {prepared['records']} records, {prepared['bytes'] / 2**20:.1f} MiB", file=sys.stderr)
        load_before = os.getloadavg()[0]
        results[flag] = dict(measure(flag, prepared, workdir, args.repeat), source=SOURCES[flag],
                             source_bytes=prepared["bytes"])
        # other users of this machine's cores show here: a 1-minute load above the core count skews num_proc 2
        results[flag]["load_average_1min"] = [load_before, os.getloadavg()[0]]
        results[flag]["date"], results[flag]["images_requested"] = time.strftime("%Y-%m-%d"), args.images
        print(table({flag: results[flag]}).splitlines()[-1], file=sys.stderr)
    print(table(results))
    if args.write:
        out = HERE / "results" / f"raw_regenerate_throughput{'_synthetic' if args.synthetic else ''}.json"
        out.parent.mkdir(exist_ok=True)
        # a run of some --flags replaces their entries and keeps the others' (each entry has its date and size)
        kept = json.loads(out.read_text())["results"] if out.is_file() else {}
        payload = {"date": time.strftime("%Y-%m-%d"), "content": "synthetic" if args.synthetic else "realistic",
                   "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                   "repeat": args.repeat, "results": {**kept, **results}}
        out.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
