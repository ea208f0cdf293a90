"""Benchmark: how fast pyarrow decodes 64^3 volumes from Parquet, by column layout (one core, no network).

Streaming 3D configs from the Hub is bound by this: `Array3D` is stored as nested lists, and Parquet keeps a
repetition and a definition level for every voxel. Compared with the same voxels as one binary value per row.
Volumes: synthetic OrganMNIST3D-64-like (medmnist_plus_common.synthetic), 128 rows, row groups of 32 (~8 MB).

Run:  python benchmarks/parquet_decode.py [--write]   (prints a Markdown table; --write also saves
      results/parquet_decode.json, the committed numbers)
"""

from __future__ import annotations

import io
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true",
                        help="save the results to benchmarks/results/parquet_decode.json (else only print)")
    args = parser.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Array3D, Dataset, Features

    from medmnist_plus_common.catalog import load_catalog
    from medmnist_plus_common.release.synthetic import synthetic_images

    facts, size = load_catalog().parse_config_name("organmnist3d-64")
    volumes = synthetic_images(facts, size, 128, seed=3)
    nested = Dataset.from_dict({"volume": list(volumes)},
                               features=Features({"volume": Array3D((64, 64, 64), "uint8")})).data.table
    binary = pa.table({"volume": pa.array([v.tobytes() for v in volumes], pa.binary())})
    layouts = {
        "Array3D as datasets writes it (nested lists, dictionary + snappy)": (nested, {}),
        "Array3D, no dictionary": (nested, {"use_dictionary": False}),
        "one binary value per row (raw voxels)": (binary, {"use_dictionary": False}),
    }
    results = []
    for name, (table, options) in layouts.items():
        buffer = io.BytesIO()
        pq.write_table(table, buffer, row_group_size=32, **options)
        data = buffer.getvalue()
        best = min(_timed(lambda: pq.read_table(io.BytesIO(data), use_threads=False)) for _ in range(3))
        results.append({"layout": name, "file_mb": len(data) / 1e6, "voxel_mb_per_s": volumes.nbytes / best / 1e6,
                        "volumes_per_s": len(volumes) / best})
    if args.write:
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        with open(os.path.join(HERE, "results", "parquet_decode.json"), "w") as f:
            json.dump({"results": results, "pyarrow": pa.__version__}, f, indent=2)
    print("| layout | file MB | voxels decoded, MB/s | volumes/s (one core) |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['layout']} | {r['file_mb']:.1f} | {r['voxel_mb_per_s']:.0f} | {r['volumes_per_s']:.0f} |")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
