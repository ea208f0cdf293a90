"""Wall time of the catalog-only commands (`medmnist-plus --help`, `list`, `info`): they must not import datasets.

Runs each command N times in fresh processes (after one warm-up run) and prints min / median / max; it writes
nothing. Usage: python benchmarks/cli_startup.py [--runs 20]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = (["--help"], ["list"], ["info", "breastmnist"], ["info", "organmnist3d-64"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    program = shutil.which("medmnist-plus", path=os.path.dirname(sys.executable)) or "medmnist-plus"
    print(f"{program}, {args.runs} runs each (after one warm-up)")
    for command in COMMANDS:
        subprocess.run([program, *command], stdout=subprocess.DEVNULL, check=True)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            subprocess.run([program, *command], stdout=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - start)
        print(f"  medmnist-plus {' '.join(command):22s} min {min(times):.3f} s  median {statistics.median(times):.3f} s"
              f"  max {max(times):.3f} s")


if __name__ == "__main__":
    main()
