"""Benchmark: first use, from an official 224 px release file to the end of the first training epoch (issue 17).

What a researcher feels the first time. On a release in the official format with DermaMNIST-224's official split
sizes (7,007 / 1,003 / 2,005 rows, 224 px RGB) whose rows are realistic (crops of the genuine HAM10000 photos,
benchmarks/realistic.py; --rows scales the splits down), each measured in a fresh process with an empty cache:

  (a) the anchor: the official ``medmnist`` package, ``medmnist.DermaMNIST(split="train", size=224, root=...)``
      (np.load of the split) + a ``DataLoader`` (batch 64, 2 workers, shuffled), one epoch of uint8 tensors;
  (b) ours: ``load_dataset("medmnist_plus", "dermamnist-224", data_dir=..., num_proc=2)`` in a fresh cache (builds
      all three splits) + ``batch_loader`` (batch 64, 2 workers), one epoch, with PNG storage (the default) and
      with ``image_storage="raw"``.

The clock starts after the imports (torch, datasets, medmnist, ours: the same for all) and stops after the last
batch. Rounds interleave (a) and (b) (``--repeat``); ratios are taken within a round, then their median and
spread. Memory: the peak RSS summed over the process tree, and the peak of its anonymous PSS (memory that is not
file pages: our Arrow cache is memory-mapped file pages the kernel can drop), sampled from /proc; and that peak
above the main process's anonymous PSS after the imports (torch, datasets, medmnist: the same in every mode),
i.e. what the data and the work on it add.

Needs torch and ``pip install --no-deps medmnist==3.0.2``.
Run:  python benchmarks/first_use.py [--rows 10015] [--repeat 2] [--workdir benchmarks/work] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from proc_memory import memory_kib, run_sampled  # noqa: E402

CONFIG, BATCH, WORKERS = "dermamnist-224", 64, 2
MODES = ("official", "ours-png", "ours-raw")


def child(mode: str, data_dir: str, cache_dir: str, train_rows: int) -> dict:
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    import datasets
    import medmnist
    import medmnist_plus_common  # noqa: F401  (registers "medmnist_plus")
    from medmnist_plus_common.training import batch_loader

    datasets.disable_progress_bars()
    medmnist.INFO["dermamnist"]["n_samples"]["train"] = train_rows  # its len() asserts the official count
    imports_pss_anon = anonymous_pss(os.getpid())  # the same imports in every mode: what the data adds is above it
    start = time.perf_counter()
    if mode == "official":
        dataset = medmnist.DermaMNIST(split="train", size=224, root=data_dir)

        class UInt8:  # the official dataset's images as C x H x W uint8 tensors
            def __len__(self):
                return len(dataset)

            def __getitem__(self, i):
                image, label = dataset[i]
                return torch.from_numpy(np.asarray(image).transpose(2, 0, 1).copy()), int(label[0])

        loader = DataLoader(UInt8(), batch_size=BATCH, shuffle=True, num_workers=WORKERS)
        ready = time.perf_counter()
        rows = sum(len(images) for images, _ in loader)
    else:
        dataset = datasets.load_dataset("medmnist_plus", CONFIG, split="train", data_dir=data_dir,
                                        cache_dir=cache_dir, num_proc=2, verification_mode="no_checks",
                                        image_storage=mode.split("-")[1])
        ready = time.perf_counter()
        loader = batch_loader(dataset, batch_size=BATCH, num_workers=WORKERS, shuffle=True)
        rows = 0
        for batch in loader:
            assert batch["images"].dtype == torch.uint8
            rows += len(batch["images"])
    end = time.perf_counter()
    return {"seconds": end - start, "prepare_seconds": ready - start, "epoch_seconds": end - ready, "rows": rows,
            "imports_pss_anon": imports_pss_anon}


def anonymous_pss(pid: int) -> int:
    return memory_kib(pid)["Pss_Anon"] * 1024


def run(mode: str, data_dir: str, cache_dir: str, train_rows: int) -> dict:
    shutil.rmtree(cache_dir, ignore_errors=True)
    command = [sys.executable, os.path.abspath(__file__), "--child", json.dumps([mode, data_dir, cache_dir, train_rows])]
    env = dict(os.environ, HF_DATASETS_DISABLE_PROGRESS_BARS="1", PYTHONWARNINGS="ignore")
    returncode, out, err, memory = run_sampled(command, env=env, interval=0.25)
    if returncode != 0:
        raise SystemExit(f"{mode} failed:\n{out}\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    cache_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(cache_dir) for f in files
                      if f.endswith(".arrow"))
    result.update(peak_rss_tree=memory.peak_tree_rss, peak_pss_anon_tree=memory.peak_tree_pss_anon,
                  above_imports=memory.peak_tree_pss_anon - result["imports_pss_anon"],
                  arrow_bytes=cache_bytes)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10015, help="rows in all (default: DermaMNIST's 10,015)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--workdir", default=os.path.join(HERE, "work"))
    parser.add_argument("--write", action="store_true", help="save results/first_use.json (else only print)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*json.loads(args.child))))
        return

    from medmnist_plus_common.catalog import load_catalog
    from realistic import write_realistic_release

    facts = load_catalog()["dermamnist"]
    official = facts.split_counts
    scale = args.rows / sum(official.values())
    counts = {split: max(1, round(n * scale)) for split, n in official.items()}
    data_dir = os.path.join(args.workdir, f"first-use-{sum(counts.values())}")
    path = os.path.join(data_dir, facts.files[224].file)
    if not os.path.exists(path + ".complete"):
        os.makedirs(data_dir, exist_ok=True)
        print(f"writing a realistic DermaMNIST-224 release: {counts}", file=sys.stderr)
        write_realistic_release(path, facts, 224, counts, seed=17)
        open(path + ".complete", "w").close()
    modes = args.modes.split(",")
    load = [os.getloadavg()[0]]
    rounds = []
    for _ in range(args.repeat):
        this = {mode: run(mode, data_dir, os.path.join(args.workdir, "first-use-cache"), counts["train"])
                for mode in modes}
        for mode, result in this.items():
            print(mode, result, file=sys.stderr, flush=True)
        rounds.append(this)
    load.append(os.getloadavg()[0])

    summary = {}
    for mode in modes:
        runs = [r[mode] for r in rounds]
        summary[mode] = {key: statistics.median(r[key] for r in runs)
                         for key in ("seconds", "prepare_seconds", "epoch_seconds")}
        summary[mode].update(all_seconds=[round(r["seconds"], 1) for r in runs],
                             peak_rss_tree=max(r["peak_rss_tree"] for r in runs),
                             peak_pss_anon_tree=max(r["peak_pss_anon_tree"] for r in runs),
                             above_imports=max(r["above_imports"] for r in runs),
                             arrow_bytes=runs[-1]["arrow_bytes"])
        if "official" in modes:
            ratios = [r[mode]["seconds"] / r["official"]["seconds"] for r in rounds]
            summary[mode]["vs_official"] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
            summary[mode]["memory_vs_official"] = (summary[mode]["peak_pss_anon_tree"]
                                                   / max(1, max(r["official"]["peak_pss_anon_tree"] for r in rounds)))
            summary[mode]["above_imports_vs_official"] = (summary[mode]["above_imports"]
                                                          / max(1, max(r["official"]["above_imports"] for r in rounds)))
    gib = 2**30
    print(f"\nrealistic DermaMNIST-224-shaped release, {counts}; {args.repeat} rounds; load average (1 min) "
          f"{load[0]:.1f} -> {load[1]:.1f}\n")
    print("| source | seconds to the end of epoch 1 (rounds) | of which build/load, epoch | x anchor, median [min-max] | "
          "peak RSS tree / anonymous PSS GiB | anonymous vs anchor | anonymous above the imports GiB (vs anchor) | "
          "Arrow cache GiB |\n|---|---|---|---|---|---|---|---|")
    for mode in modes:
        s = summary[mode]
        v = s.get("vs_official", {"median": float("nan"), "min": float("nan"), "max": float("nan")})
        print(f"| {mode} | {s['seconds']:.1f} ({s['all_seconds']}) | {s['prepare_seconds']:.1f} + {s['epoch_seconds']:.1f} | "
              f"{v['median']:.2f} x [{v['min']:.2f}-{v['max']:.2f}] | {s['peak_rss_tree'] / gib:.2f} / "
              f"{s['peak_pss_anon_tree'] / gib:.2f} | {s.get('memory_vs_official', float('nan')):.2f} x | "
              f"{s['above_imports'] / gib:.2f} ({s.get('above_imports_vs_official', float('nan')):.2f} x) | "
              f"{s['arrow_bytes'] / gib:.2f} |")
    if args.write:
        out = os.path.join(HERE, "results", "first_use.json")
        with open(out, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d"), "content": "realistic (HAM10000 crops)",
                       "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                       "counts": counts, "load_average_1min": load, "summary": summary, "rounds": rounds}, f, indent=2)
        print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
