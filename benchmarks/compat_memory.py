"""Benchmark: memory of the `medmnist` drop-in (`medmnist_plus_common.compat`) on a PathMNIST-224-shaped release.

What it measures (issue 18, part 1): the memory of constructing `PathMNIST(split="train", size=224)` and reading
every item of it, through `compat` (items from the memory-mapped Arrow cache of a build) and, for comparison,
through the official `medmnist` 3.0.2 package (the whole split loaded into RAM; `mmap_mode="r"` too, which
`np.load` ignores for `.npz` files), each in a fresh process:

  build      compat, empty cache: the first construction builds the cache (every split, one pass over the file)
  items      compat, cache built: construct, then `ds[i]` for every train item (`np.asarray` of the PIL image)
  loader     compat, cache built: a plain `torch.utils.data.DataLoader` (batch 64, shuffled, num_workers=2) over
             the train split with a transform to a uint8 tensor, one epoch
  official   medmnist 3.0.2: construct, then every train item (skipped when medmnist is not installed; its
             INFO is told the synthetic file's train row count, which its len() asserts)
  official mmap_mode="r"   the same with mmap_mode="r"

Memory is sampled from /proc every 200 ms (see proc_memory.py): the peak RSS of the process (VmHWM), and the
peak PSS of the process tree, all and anonymous (anonymous excludes file pages such as the memory-mapped cache,
which the kernel can drop; PSS splits pages shared by forked workers between them).

Run:  python benchmarks/compat_memory.py [--rows 15000] [--workdir benchmarks/work] [--write]
The release file is the one `build_memory_and_speed.py` writes (same rows, seed and folder), reused if present.
It prints a Markdown table; with --write it also replaces benchmarks/results/compat_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time

import numpy as np

from medmnist_plus_common.catalog import load_catalog
from medmnist_plus_common.release.synthetic import write_synthetic_release

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from proc_memory import run_sampled  # noqa: E402

# What each run does in its own process; it prints one JSON line of timings.
CHILD = r"""
import json, sys, time
import numpy as np
mode, root, cache = sys.argv[1:4]
start = time.perf_counter()
if mode.startswith("official"):
    import medmnist
    imported = time.perf_counter()
    # medmnist asserts the official row count in len(): tell it the synthetic file's
    medmnist.INFO["pathmnist"]["n_samples"]["train"] = int(sys.argv[4])
    ds = medmnist.PathMNIST(split="train", size=224, root=root, mmap_mode="r" if mode == "official-mmap" else None)
else:
    from medmnist_plus_common import compat
    imported = time.perf_counter()
    ds = compat.PathMNIST(split="train", size=224, root=root, cache_dir=cache, verification_mode="no_checks")
constructed = time.perf_counter()
total = 0
if mode in ("items", "official", "official-mmap"):
    for i in range(len(ds)):
        image, target = ds[i]
        total += int(np.asarray(image)[0, 0, 0]) + int(target[0])
elif mode == "loader":
    import torch
    from torch.utils.data import DataLoader

    def to_tensor(image):
        return torch.from_numpy(np.asarray(image).transpose(2, 0, 1).copy())

    ds.transform = to_tensor
    for images, targets in DataLoader(ds, batch_size=64, shuffle=True, num_workers=2):
        total += int(images[:, 0, 0, 0].sum()) + int(targets.sum())
print(json.dumps({"rows": len(ds), "import_seconds": imported - start, "construct_seconds": constructed - imported,
                  "read_seconds": time.perf_counter() - constructed, "checksum": total}))
"""


def run(mode: str, root: str, cache: str, train_rows: int) -> dict:
    env = dict(os.environ, HF_DATASETS_DISABLE_PROGRESS_BARS="1")
    start = time.perf_counter()
    command = [sys.executable, "-c", CHILD, mode, root, cache, str(train_rows)]
    returncode, out, err, memory = run_sampled(command, env=env, interval=0.2)
    if returncode != 0:
        raise SystemExit(f"{mode} failed:\n{out}\n{err}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(mode=mode, seconds=time.perf_counter() - start, peak_rss_process=memory.peak_process_hwm,
                  peak_pss_tree=memory.peak_tree_pss, peak_pss_anon_tree=memory.peak_tree_pss_anon)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=15000, help="total rows (default 15000 = 2.1 GiB of pixels)")
    parser.add_argument("--workdir", default=os.path.join(HERE, "work"))
    parser.add_argument("--write", action="store_true",
                        help="save the results to benchmarks/results/compat_memory.json (else only print)")
    args = parser.parse_args()

    facts = load_catalog()["pathmnist"]
    counts = {"train": int(args.rows * 0.8), "validation": int(args.rows * 0.1)}
    counts["test"] = args.rows - counts["train"] - counts["validation"]
    root = os.path.join(args.workdir, "release")
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, facts.files[224].file)
    pixel_bytes = args.rows * int(np.prod(facts.image_shape(224)))
    marker = path + f".rows{args.rows}"
    if not (os.path.exists(path) and os.path.exists(marker)):
        print(f"writing a synthetic PathMNIST-224 release: {args.rows} rows, {pixel_bytes / 2**30:.2f} GiB pixels")
        write_synthetic_release(path, facts, 224, counts, seed=224)
        open(marker, "w").close()

    cache = os.path.join(args.workdir, "compat-cache")
    shutil.rmtree(cache, ignore_errors=True)
    modes = ["build", "items", "loader"]
    try:
        import medmnist  # noqa: F401
        modes += ["official", "official-mmap"]
    except ImportError:
        print("medmnist is not installed: the official package's runs are skipped")
    runs = {}
    for mode in modes:
        runs[mode] = run(mode, root, cache, counts["train"])
        print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in runs[mode].items()}, flush=True)
    cache_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(cache) for f in fs
                      if f.endswith(".arrow") and "train" in f)
    train_pixel_bytes = counts["train"] * int(np.prod(facts.image_shape(224)))
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "release": {"rows": args.rows, "counts": counts, "pixel_bytes": pixel_bytes, "train_pixel_bytes":
                    train_pixel_bytes, "file_bytes": os.path.getsize(path), "train_arrow_cache_bytes": cache_bytes},
        "runs": runs,
    }
    if args.write:
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        with open(os.path.join(HERE, "results", "compat_memory.json"), "w") as f:
            json.dump(result, f, indent=2)
    gib = 2**30
    names = {"build": "compat, first construction (builds the cache)", "items": "compat, construct + every item",
             "loader": "compat, DataLoader num_workers=2, one epoch",
             "official": "medmnist 3.0.2, construct + every item",
             "official-mmap": "medmnist 3.0.2 with mmap_mode=\"r\", construct + every item"}
    print(f"\nrelease: {args.rows:,} rows ({counts['train']:,} train: {train_pixel_bytes / gib:.2f} GiB of pixels), "
          f"file {os.path.getsize(path) / gib:.2f} GiB; train Arrow cache (PNG) {cache_bytes / gib:.2f} GiB\n")
    print("| run | import s | construct s | read s | peak RSS (process) GiB | peak PSS tree, all / anonymous GiB |")
    print("|---|---|---|---|---|---|")
    for mode, r in runs.items():
        read = f"{r['read_seconds']:.1f}" if mode != "build" else ""
        print(f"| {names[mode]} | {r['import_seconds']:.1f} | {r['construct_seconds']:.1f} | {read} | "
              f"{r['peak_rss_process'] / gib:.2f} | "
              f"{r['peak_pss_tree'] / gib:.2f} / {r['peak_pss_anon_tree'] / gib:.2f} |")


if __name__ == "__main__":
    main()
