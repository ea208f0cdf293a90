"""Benchmark: training-loop input throughput, uint8 batches/s from a DataLoader (batch 64, num_workers=2).

Sources, each measured in a fresh process with its peak memory (whole process tree, sampled from /proc):
  (a) the official `medmnist` package's dataset (whole split in RAM): the anchor;
  (b) our Arrow cache, PNG images (the default) and raw uint8 images (`image_storage="raw"`), via ArrowBatches;
  (c) streaming from the local Hub-compatible test server (tests/fakes/hub_server.py), Parquet + PNG, shards shuffled
      per epoch plus stream_loader's compact shuffle buffer (--shuffle-buffer rows per worker), batches built from
      Arrow record batches.
"official-persistent" is (a) with persistent_workers=True, as our loaders use by default.
"hub-stream-binary" is a what-if, not a layout we publish: (c) for 3D with each volume stored as one binary value
(raw voxels) instead of Array3D, to measure what giving up "stock datasets returns arrays" would buy.
Each run also records the CPU time of the loader's processes ("cores busy": their CPU seconds per wall second;
this machine has 2 cores), which tells a CPU-bound loader from one that waits.
Data: synthetic releases in the official format with the official row counts of DermaMNIST-224 (224 px RGB)
and OrganMNIST3D-64 (64^3), so the official package accepts them.

Needs: torch, and the official package without its heavy extras: `pip install --no-deps medmnist==3.0.2`.
Run:  python benchmarks/loader_throughput.py [--workdir benchmarks/work] [--configs organmnist3d-64] [--write]
Prints a Markdown table; with --write it also merges the results into benchmarks/results/loader_throughput.json
(the committed numbers). --configs limits what is prepared (release files, caches, Hub publication) as well as
what is measured; --plan prints both and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from proc_memory import TreeMemorySampler  # noqa: E402

CASES = {"dermamnist-224": 4, "organmnist3d-64": 20}  # config -> epochs over the train split (runs of >= 5 s)
BATCH, WORKERS = 64, 2


# ---------------------------------------------------------------------------------- measured in a subprocess


def _time_batches(loader, epochs: int, start: float, stream=None) -> dict:
    """Batches/s after the first batch; startup = from creating the dataset to the first batch."""
    import torch

    first = None
    batches = images = 0
    shape = dtype = None
    for epoch in range(epochs):
        if stream is not None:
            stream.set_epoch(epoch)
        for batch in loader:
            pixels = batch["images"] if isinstance(batch, dict) else batch[0]
            assert pixels.dtype == torch.uint8, pixels.dtype
            shape, dtype = tuple(pixels.shape), str(pixels.dtype)
            if first is None:
                first = time.perf_counter()
            else:
                batches += 1
                images += len(pixels)
    end = time.perf_counter()
    return {"startup_seconds": first - start, "steady_batches": batches, "steady_seconds": end - first,
            "batches_per_second": batches / (end - first), "images_per_second": images / (end - first),
            "batch_shape": shape, "dtype": dtype}


class _OfficialUInt8:
    """The official package's dataset object; items as uint8 tensors (2D: its PIL path; 3D: its in-RAM array,
    since its own 3D __getitem__ returns float64 / 255)."""

    def __init__(self, dataset, dims):
        self.dataset, self.dims = dataset, dims

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        import numpy as np
        import torch

        if self.dims == 3:
            pixels = torch.from_numpy(np.ascontiguousarray(self.dataset.imgs[i]))[None]
            return pixels, int(self.dataset.labels[i][0])
        image, label = self.dataset[i]  # PIL image, label array
        pixels = torch.from_numpy(np.asarray(image))
        pixels = pixels.permute(2, 0, 1) if pixels.ndim == 3 else pixels[None]
        return pixels.contiguous(), int(label[0])


def measure(kind: str, config: str, data_dir: str, cache_dir: str, source: str, epochs: int,
            shuffle_buffer: int = 256) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from medmnist_plus_common.catalog import load_catalog
    from medmnist_plus_common.training import batch_loader, stream_loader, streaming_dataset

    facts, size = load_catalog().parse_config_name(config)
    start, cpu_at_start = time.perf_counter(), _cpu_now()
    if kind in ("official", "official-persistent"):
        import medmnist

        cls = getattr(medmnist, facts.title)
        dataset = cls(split="train", size=size, root=data_dir)
        loader = DataLoader(_OfficialUInt8(dataset, facts.dims), batch_size=BATCH, shuffle=True, num_workers=WORKERS,
                            persistent_workers=kind == "official-persistent")
    elif kind in ("arrow-png", "arrow-raw"):
        from medmnist_plus_common import builder_for
        builder = builder_for(config, data_dir=data_dir, cache_dir=cache_dir, image_storage=kind.split("-")[1])
        dataset = builder.as_dataset(split="train")
        loader = batch_loader(dataset, batch_size=BATCH, num_workers=WORKERS, shuffle=True)
    elif kind == "baseline":  # the same imports and DataLoader workers over 64 tiny rows: interpreter overhead
        from torch.utils.data import TensorDataset

        import datasets  # noqa: F401
        import medmnist_plus_common  # noqa: F401

        tiny = TensorDataset(torch.zeros((64 * 20, 1), dtype=torch.uint8), torch.zeros(64 * 20, dtype=torch.int64))
        loader = DataLoader(tiny, batch_size=BATCH, num_workers=WORKERS,
                            collate_fn=lambda rows: {"images": torch.stack([r[0] for r in rows])})
    elif kind in ("hub-stream", "hub-stream-binary"):
        import datasets

        datasets.config.USE_PARQUET_EXPORT = False  # no dataset-viewer lookup at a host that does not exist here
        if kind == "hub-stream-binary":
            source = BINARY_REPO
            _read_binary_volumes_as_raw(facts.image_shape(size))
        stream = streaming_dataset(source, config)
        loader = stream_loader(stream, batch_size=BATCH, num_workers=WORKERS, shuffle_buffer=shuffle_buffer, seed=0)
        if kind == "hub-stream-binary":
            loader.dataset.shape = facts.image_shape(size)
    else:
        raise ValueError(kind)
    result = _time_batches(loader, epochs, start, stream if kind.startswith("hub-stream") else None)
    wall = time.perf_counter() - start
    result.update(_cpu_seconds(loader, wall, cpu_at_start))
    return dict(result, shuffle_buffer=shuffle_buffer if kind.startswith("hub-stream") else None)


# What-if, not a published layout: 3D volumes as one binary value per row (raw C-order voxels) instead of Array3D.
# Stock `datasets` would then return bytes, not arrays; measured to show what that choice would buy (RESULTS.md).
BINARY_REPO = "bench/medmnist_plus_binary_volumes"


def _read_binary_volumes_as_raw(shape) -> None:
    """Make stream_loader read a binary volume column as raw voxels (a zero-copy view of the Arrow buffer)."""
    import numpy as np

    from medmnist_plus_common.training import torch_data
    class BinaryVolumeRows(torch_data._Rows):
        def __init__(self, table, column, _shape):
            chunk = table.column(column).combine_chunks()
            offsets = np.frombuffer(chunk.buffers()[1], np.int32)[chunk.offset: chunk.offset + len(chunk) + 1]
            assert (np.diff(offsets) == int(np.prod(shape))).all()
            self.pixels = np.frombuffer(chunk.buffers()[2], np.uint8)[offsets[0]: offsets[-1]].reshape((-1,) + shape)
            self.labels = torch_data.arrow_label_values(table.column("label"))
            self.index = table.column("index").to_numpy()

    torch_data._Rows = BinaryVolumeRows  # DataLoader workers are forked after this, so they see it too


def _push_binary_volumes(config: str, data_dir: str, cache_dir: str) -> None:
    """Publish ``config`` to BINARY_REPO with volumes as binary values (same rows, shards and row groups)."""
    import datasets
    import numpy as np

    from medmnist_plus_common import builder_for
    from medmnist_plus_common.publish.push import small_row_groups

    dataset = builder_for(config, data_dir=data_dir, cache_dir=cache_dir).as_dataset()
    features = dataset["train"].features.copy()
    features["volume"] = datasets.Value("binary")
    as_bytes = dataset.with_format("numpy").map(  # numpy formatting gives int64 volumes: back to uint8 bytes
        lambda batch: {"volume": [np.asarray(v, dtype=np.uint8).tobytes() for v in batch["volume"]]},
        batched=True, batch_size=64, features=features)
    with small_row_groups():
        as_bytes.push_to_hub(BINARY_REPO, config_name=config, num_shards={s: 8 for s in as_bytes})


def _cpu_now() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_seconds(loader, wall: float, cpu_at_start: float) -> dict:
    """CPU time of this process (since ``cpu_at_start``: imports excluded) and of its DataLoader workers (counted
    once they are joined), and how many cores they kept busy over the run: tells a CPU-bound loader from one
    that waits."""
    import gc
    import resource

    main_cpu = _cpu_now() - cpu_at_start
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None:
        iterator._shutdown_workers()  # persistent workers: join them, so their CPU time is counted
    del loader, iterator
    gc.collect()
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers_cpu = workers.ru_utime + workers.ru_stime
    return {"wall_seconds": wall, "cpu_main_seconds": main_cpu, "cpu_workers_seconds": workers_cpu,
            "cpu_workers_system_seconds": workers.ru_stime, "cores_busy": (main_cpu + workers_cpu) / wall}


# ------------------------------------------------------------------------------------------------ driver


def run_case(kind: str, config: str, data_dir: str, cache_dir: str, source: str, epochs: int, env: dict,
             shuffle_buffer: int) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {HERE!r}); import loader_throughput as b; "
            f"print('RESULT ' + json.dumps(b.measure({kind!r}, {config!r}, {data_dir!r}, {cache_dir!r}, "
            f"{source!r}, {epochs}, {shuffle_buffer})))")
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=REPO)
    with TreeMemorySampler(process.pid) as memory:
        out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{kind} {config} failed:\n{err[-4000:]}")
    result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    result.update(kind=kind, config=config, peak_rss=memory.peak_tree_rss, peak_pss=memory.peak_tree_pss,
                  peak_pss_anon=memory.peak_tree_pss_anon)
    print(json.dumps(result), flush=True)
    return result


def _kinds_for(config: str, kinds) -> list:
    """The requested kinds that apply to ``config``: 3D volumes are always raw arrays (no arrow-png), and the
    binary what-if is for volumes only."""
    volumes = config.startswith("organmnist3d")
    return [kind for kind in kinds if not (kind == "arrow-png" and volumes)
            and not (kind == "hub-stream-binary" and not volumes)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=os.path.join(HERE, "work", "loader"))
    parser.add_argument("--shuffle-buffer", type=int, default=256, help="rows per worker for hub-stream")
    parser.add_argument("--configs", default=",".join(CASES), help=f"some of {', '.join(CASES)}")
    parser.add_argument("--write", action="store_true",
                        help="merge the results into benchmarks/results/loader_throughput.json (else only print)")
    parser.add_argument("--plan", action="store_true", help="print what would be prepared and measured, then exit")
    parser.add_argument("--reuse", action="store_true", help="reuse the caches and the Hub repo of an earlier run")
    parser.add_argument("--kinds", default="baseline,official,official-persistent,arrow-png,arrow-raw,hub-stream,"
                        "hub-stream-binary",
                        help="which sources to measure; results replace earlier ones of the same kind and config")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.configs.split(",") if name.strip()]
    if not chosen or set(chosen) - set(CASES):
        parser.error(f"--configs {args.configs!r}: choose among {', '.join(CASES)}")
    cases = {config: epochs for config, epochs in CASES.items() if config in chosen}
    kinds = args.kinds.split(",")
    binary_what_if = "hub-stream-binary" in kinds and "organmnist3d-64" in cases
    results_path = os.path.join(HERE, "results", "loader_throughput.json")
    sys.path.insert(0, REPO)
    from medmnist_plus_common.catalog import load_catalog
    from medmnist_plus_common.release.synthetic import write_synthetic_release
    from tests.fakes.hub_server import start_hub_server

    data_dir = os.path.join(args.workdir, "release")
    cache_dir = os.path.join(args.workdir, "cache")
    if args.plan:
        for config in cases:
            facts, size = load_catalog().parse_config_name(config)
            print(f"release file: {os.path.join(data_dir, facts.files[size].file)} ({sum(facts.split_counts.values())} rows)")
        if not args.reuse:
            print(f"build (png and raw) and push to the local Hub: {', '.join(cases)}")
        if binary_what_if:
            print("push the binary-volume what-if: organmnist3d-64")
        for config in cases:
            print(f"measure {config}: {', '.join(_kinds_for(config, kinds))}")
        print(f"results: {'merged into ' + results_path if args.write else 'printed only (--write saves them)'}")
        return
    os.makedirs(data_dir, exist_ok=True)
    for config in cases:
        facts, size = load_catalog().parse_config_name(config)
        path = os.path.join(data_dir, facts.files[size].file)
        if not os.path.exists(path):
            print(f"writing synthetic {config} with the official row counts {facts.split_counts}", flush=True)
            write_synthetic_release(path, facts, size, counts=facts.split_counts, seed=5)

    hub = start_hub_server(os.path.join(args.workdir, "hub"))
    env = dict(os.environ, HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_XET="1", HF_TOKEN="hf_benchmark",
               HF_DATASETS_DISABLE_PROGRESS_BARS="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
               HF_HOME=os.path.join(args.workdir, "hf-home"), MEDMNIST_PLUS_BASE_URL="http://127.0.0.1:9/closed")
    repo = "bench/medmnist_plus"
    # Build the caches and publish to the local Hub in a subprocess that sees the Hub's endpoint from the start.
    prepare = (
        "import sys; sys.path.insert(0, %r)\n"
        "from medmnist_plus_common import builder_for\n"
        "from medmnist_plus_common.publish import push\n"
        "for config in %r:\n"
        "    for storage in ('png', 'raw'):\n"
        "        builder_for(config, data_dir=%r, cache_dir=%r, image_storage=storage).download_and_prepare(\n"
        "            num_proc=2, verification_mode='no_checks')\n"
        "push(%r, %r, num_shards=8, data_dir=%r, cache_dir=%r, no_checks=True)\n"
    ) % (REPO, list(cases), data_dir, cache_dir, repo, list(cases), data_dir, cache_dir)
    if not args.reuse:
        subprocess.run([sys.executable, "-c", prepare], env=env, check=True, cwd=REPO)
    if binary_what_if and (not args.reuse or not os.path.isdir(
            os.path.join(args.workdir, "hub", "datasets", BINARY_REPO))):
        code = (f"import sys; sys.path.insert(0, {HERE!r}); import loader_throughput as b; "
                f"b._push_binary_volumes('organmnist3d-64', {data_dir!r}, {cache_dir!r})")
        subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=REPO)

    results = []
    if args.write and os.path.exists(results_path):  # earlier results of other kinds and configs are kept
        with open(results_path) as f:
            results = json.load(f)["results"]
    for config, epochs in cases.items():
        for kind in _kinds_for(config, kinds):
            result = run_case(kind, config, data_dir, cache_dir, repo, epochs, env, args.shuffle_buffer)
            results = [r for r in results if (r["kind"], r["config"]) != (kind, config)] + [result]
    hub.stop()
    order = ["baseline", "official", "official-persistent", "arrow-png", "arrow-raw", "hub-stream",
             "hub-stream-binary"]
    results.sort(key=lambda r: (list(CASES).index(r["config"]), order.index(r["kind"])))

    from medmnist_plus_common.hf.builder import MedMNISTBuilder

    sizes = {}  # train-split Arrow bytes per config and image storage, from the cache folders of this version
    for root, _, files in os.walk(cache_dir):
        if "dataset_info.json" in files and os.path.basename(root) == str(MedMNISTBuilder.VERSION):
            with open(os.path.join(root, "dataset_info.json")) as f:
                info = json.load(f)
            column = info["features"].get("image") or info["features"]["volume"]
            storage = "png" if column.get("_type") == "Image" else "raw"
            train = sum(os.path.getsize(os.path.join(root, n)) for n in files if "-train" in n and n.endswith(".arrow"))
            sizes.setdefault(info["config_name"], {})[storage] = train
    if args.write:
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        with open(results_path, "w") as f:
            json.dump({"results": results, "train_arrow_bytes": sizes, "cpus": os.cpu_count()}, f, indent=2)
        print(f"results merged into {results_path}")

    gib = 2**30
    print("\n| config | source | batches/s | vs (a) | startup s | peak PSS, all / anonymous (GiB) | "
          "anonymous above baseline (GiB) | vs (a) | cores busy |")
    print("|---|---|---|---|---|---|---|---|---|")
    for config in sorted({r["config"] for r in results}, key=list(CASES).index):
        anchor = next((r for r in results if r["config"] == config and r["kind"] == "official"), None)
        base = next((r for r in results if r["config"] == config and r["kind"] == "baseline"), None)
        base_anon = base["peak_pss_anon"] if base else 0
        for r in (r for r in results if r["config"] == config and r["kind"] != "baseline"):
            extra = max(0, r["peak_pss_anon"] - base_anon)
            cores = f"{r['cores_busy']:.2f}" if "cores_busy" in r else ""
            speed = f"{r['batches_per_second'] / anchor['batches_per_second']:.2f} x" if anchor else "(no anchor run)"
            memory = f"{extra / max(1, anchor['peak_pss_anon'] - base_anon):.2f} x" if anchor else ""
            print(f"| {config} | {r['kind']} | {r['batches_per_second']:.1f} | {speed} | {r['startup_seconds']:.1f} | "
                  f"{r['peak_pss'] / gib:.2f} / {r['peak_pss_anon'] / gib:.2f} | {extra / gib:.2f} | "
                  f"{memory} | {cores} |")
        if base:
            print(f"| {config} | baseline (imports + 2 workers, no data) | | | | "
                  f"{base['peak_pss'] / gib:.2f} / {base_anon / gib:.2f} | | | |")
    print(f"\ntrain split Arrow sizes (bytes): {sizes}")


if __name__ == "__main__":
    main()
