"""Wall time of the catalog-only commands (`medmnist-plus --help`, `list`, `info`), cold and warm.

- cold: the first run after the operating system's file cache was dropped (`echo 3 > /proc/sys/vm/drop_caches`,
  root only) and this package's bytecode (``__pycache__``) removed: what a newcomer's very first command costs
  (Python, the venv's site-packages and the package read from disk, the package's .pyc files written);
- warm: N runs in fresh processes after that, min / median / max.

The commands must import neither datasets nor numpy (tests/integration/test_cli.py checks it). Usage:
python benchmarks/cli_startup.py [--runs 20] [--cold-rounds 3] [--write] (results to results/cli_startup.json).
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMMANDS = (["--help"], ["list"], ["info", "breastmnist"], ["info", "organmnist3d-64"])


def timed(program, command) -> float:
    start = time.perf_counter()
    subprocess.run([program, *command], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def make_cold(package: Path) -> bool:
    """Drop the file cache (if allowed) and the package's bytecode; True if the file cache was dropped."""
    for cache in package.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cold-rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="write results/cli_startup.json")
    args = parser.parse_args()
    import medmnist_plus_common

    package = Path(medmnist_plus_common.__file__).parent
    program = shutil.which("medmnist-plus", path=os.path.dirname(sys.executable)) or "medmnist-plus"
    print(f"{program}: cold = first run after dropping the file cache and the package's bytecode "
          f"({args.cold_rounds} rounds); warm = {args.runs} runs")
    results = {}
    for command in COMMANDS:
        cold, dropped = [], True
        for _ in range(args.cold_rounds):
            dropped = make_cold(package) and dropped
            cold.append(timed(program, command))
        warm = [timed(program, command) for _ in range(args.runs)]
        name = " ".join(command)
        results[name] = {"cold_s": cold, "cold_file_cache_dropped": dropped, "warm_min_s": min(warm),
                         "warm_median_s": statistics.median(warm), "warm_max_s": max(warm)}
        print(f"  medmnist-plus {name:22s} cold {statistics.median(cold):.2f} s (of {', '.join(f'{c:.2f}' for c in cold)})"
              f"{'' if dropped else ' [file cache NOT dropped: bytecode only]'}   warm min {min(warm):.3f} s  "
              f"median {statistics.median(warm):.3f} s  max {max(warm):.3f} s")
    if args.write:
        out = HERE / "results" / "cli_startup.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores",
                                   "python": platform.python_version(), "results": results}, indent=1) + "\n")
        print(f"written to {out}")


if __name__ == "__main__":
    main()
