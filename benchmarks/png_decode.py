"""Benchmark: decoding the Arrow cache's PNGs (``encode_png_fast``), PIL vs ``decode_png``, on realistic content.

The loaders decode every image every epoch. For realistic 224 px images (``benchmarks/realistic.py``), RGB and
gray, encoded as the cache stores them (``encode_png_fast``: SUB filter, ISA-L level 1), each way below decodes the
same images, interleaved round after round (``--rounds``) so that the load of this shared machine falls on all
alike; per image times are the median over rounds, ratios to PIL (for the same task) are taken within each round.
"Into a batch" puts each image into a C x H x W slot of a uint8 batch, as the streaming loader does: decoded then
copied (transposed), or decoded straight into the slot (``out=``). The last rows decode compact PNGs
(``encode_png``, what export and push write: PIL's adaptive filters, which ``decode_png`` leaves to PIL), with PIL
and with ``decode_png``. Every result is compared with the original pixels.

Run:  python benchmarks/png_decode.py [--images 100] [--rounds 7]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realistic import realistic_images  # noqa: E402

from medmnist_plus_common.hf.arrow_values import decode_png  # noqa: E402
from medmnist_plus_common.hf.features import (channels_first_image, channels_last_image, encode_png,  # noqa: E402
                                              encode_png_fast)


def pil(data):
    return np.asarray(Image.open(io.BytesIO(data)))


def ways(batch):
    def into(decode):
        def run(i, data):
            batch[i] = channels_first_image(decode(data))
        return run
    return {"PIL (before)": lambda i, data: pil(data), "decode_png": lambda i, data: decode_png(data),
            "into a batch: PIL, copied (before)": into(pil), "into a batch: decode_png, copied": into(decode_png),
            "into a batch: decode_png(out=slot)": lambda i, data: decode_png(data, out=channels_last_image(batch[i]))}


def measure(images: np.ndarray, rounds: int) -> dict:
    encoded = [encode_png_fast(pixels) for pixels in images]
    compact = [encode_png(pixels) for pixels in images]
    batch = np.empty((len(images),) + channels_first_image(images[0]).shape, np.uint8)
    table = ways(batch)
    table["compact PNGs (encode_png's, export and push): PIL"] = lambda i, data: pil(compact[i])
    table["compact PNGs (encode_png's, export and push): decode_png (falls back to PIL)"] = \
        lambda i, data: decode_png(compact[i])
    times = {name: [] for name in table}
    for _ in range(rounds):
        for name, run in table.items():
            start = time.perf_counter()
            for i, data in enumerate(encoded):
                run(i, data)
            times[name].append((time.perf_counter() - start) / len(images))
            if name.startswith("into"):
                assert all(np.array_equal(channels_first_image(p), b) for p, b in zip(images, batch)), name
                batch[:] = 0
    assert all(np.array_equal(decode_png(data), p) for data, p in zip(encoded, images))
    def anchor(name):  # PIL's time for the same task
        return times["into a batch: PIL, copied (before)" if name.startswith("into") else "PIL (before)"]
    return {name: (1000 * statistics.median(t), 1000 * min(t), 1000 * max(t),
                   statistics.median(a / b for a, b in zip(t, anchor(name)))) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    for label, channels in (("224 px RGB (HAM10000 crops)", 3), ("224 px gray (Kermany + BUSI crops)", 1)):
        result = measure(realistic_images(224, args.images, channels, seed=17), args.rounds)
        print(f"\n{label}, {args.images} images, {args.rounds} rounds (median ms per image [min-max])")
        print("| decoding | ms per image | vs PIL |")
        print("|---|---|---|")
        for name, (median, low, high, ratio) in result.items():
            print(f"| {name} | {median:.3f} [{low:.3f}-{high:.3f}] | {ratio:.2f} x |")
    print(f"\nload average (1 min) before / after: {load:.2f} / {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
