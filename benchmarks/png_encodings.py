"""Benchmark: PNG encoders for the Arrow cache and the Hub, and deflate for release rows, on realistic content.

Issue 17, items 1 and 2. For realistic 224 px images (crops of genuine photos, ``benchmarks/realistic.py``), RGB
(HAM10000) and gray (Kermany, BUSI), each encoder below encodes the same images, and PIL decodes what it wrote
(what a loader pays every epoch). The encoders run interleaved, round after round (``--rounds``), so that the
load of this shared machine falls on all of them alike; per image times are the median over rounds, with the
spread (min-max). Every decoded image is compared with the original (pixels exact).

Deflate: release rows (uint8 pixels, as ``regenerate`` deflates them into ``.npz`` members) deflated with zlib at
level 6 (numpy's ``savez_compressed`` and zipfile's default), zlib level 1 and ISA-L (``isal.isal_zlib``) levels
0-3, all standard raw deflate, with MB/s of pixels and bytes.

Run:  python benchmarks/png_encodings.py [--images 200] [--rounds 5] [--write]
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import platform
import statistics
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from realistic import realistic_images  # noqa: E402

from medmnist_plus_common.hf import features  # noqa: E402
from medmnist_plus_common.hf.arrow_values import decode_png  # noqa: E402


def pil_encoder(level=None, strategy=None):
    def encode(pixels):
        buffer = io.BytesIO()
        options = {} if level is None else {"compress_level": level}
        if strategy is not None:
            options["compress_type"] = strategy  # zlib's strategy (3: Z_RLE)
        Image.fromarray(pixels).save(buffer, format="PNG", **options)
        return buffer.getvalue()
    return encode


def imagecodecs_encoder(level, **options):
    import imagecodecs

    def encode(pixels):
        return imagecodecs.png_encode(pixels, level=level, **options)
    return encode


def encoders():
    out = {"PIL default (level 6)": pil_encoder(), "PIL level 1": pil_encoder(1), "PIL level 0": pil_encoder(0),
           "PIL level 1, RLE": pil_encoder(1, strategy=3), "PIL level 9, RLE": pil_encoder(9, strategy=3)}
    try:
        import imagecodecs  # noqa: F401
        for level in (0, 1, 2, 3):
            out[f"imagecodecs level {level}"] = imagecodecs_encoder(level)
        out["imagecodecs level 1, RLE, SUB (OpenCV's fast)"] = imagecodecs_encoder(1, strategy=3, filter=16)
    except ImportError:
        print("imagecodecs not installed: its encoders are not measured", file=sys.stderr)
    for level, window_bits in ((1, 1), (0, 1), (1, 15), (3, 15)):
        chosen = (level, window_bits) == (features.FAST_PNG_LEVEL, features.FAST_PNG_WINDOW_BITS)
        out[f"SUB filter + ISA-L level {level}, window 2^{window_bits}" + (" (the cache)" if chosen else "")] = \
            functools.partial(features.encode_png_fast, level=level, window_bits=window_bits)
    return out


def decode(data):
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)


def measure_png(images: np.ndarray, rounds: int) -> dict:
    table = encoders()
    times = {name: {"encode": [], "decode": [], "loader": []} for name in table}
    sizes = {}
    for _ in range(rounds):
        for name, encode in table.items():
            start = time.perf_counter()
            encoded = [encode(pixels) for pixels in images]
            middle = time.perf_counter()
            decoded = [decode(data) for data in encoded]
            end = time.perf_counter()
            for data in encoded:
                decode_png(data)
            times[name]["loader"].append((time.perf_counter() - end) / len(images))
            times[name]["encode"].append((middle - start) / len(images))
            times[name]["decode"].append((end - middle) / len(images))
            if name not in sizes:
                if not all(np.array_equal(a, b) for a, b in zip(images, decoded)):
                    raise SystemExit(f"{name}: decoded pixels differ")
                sizes[name] = sum(len(data) for data in encoded) / len(images)
    anchor = "PIL default (level 6)"
    result = {}
    for name in table:
        enc, dec = times[name]["encode"], times[name]["decode"]
        result[name] = {
            "encode_ms": 1000 * statistics.median(enc), "encode_ms_spread": [1000 * min(enc), 1000 * max(enc)],
            "decode_ms": 1000 * statistics.median(dec), "decode_ms_spread": [1000 * min(dec), 1000 * max(dec)],
            "loader_decode_ms": 1000 * statistics.median(times[name]["loader"]),
            "bytes_per_image": sizes[name], "raw_bytes_per_image": int(images[0].nbytes),
            # ratios within each round, then their median: the load of the machine cancels
            "encode_vs_default": statistics.median(a / b for a, b in zip(enc, times[anchor]["encode"])),
            "decode_vs_default": statistics.median(a / b for a, b in zip(dec, times[anchor]["decode"])),
            "bytes_vs_default": sizes[name] / sizes[anchor],
        }
    return result


def deflaters():
    def zlib_raw(level):
        def run(data):
            compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
            return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)
        return run

    out = {"zlib level 6 (default)": zlib_raw(6), "zlib level 1": zlib_raw(1)}
    try:
        from isal import isal_zlib

        def isal_raw(level):
            def run(data):
                compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
                return compressor.compress(data) + compressor.flush(isal_zlib.Z_FULL_FLUSH)
            return run

        for level in (0, 1, 2, 3):
            out[f"isal level {level}"] = isal_raw(level)
    except ImportError:
        print("isal not installed: ISA-L is not measured", file=sys.stderr)
    return out


def measure_deflate(rows: list, rounds: int) -> dict:
    table = deflaters()
    times = {name: [] for name in table}
    sizes = {}
    total = sum(len(row) for row in rows)
    for _ in range(rounds):
        for name, run in table.items():
            start = time.perf_counter()
            pieces = [run(row) for row in rows]
            times[name].append(time.perf_counter() - start)
            if name not in sizes:
                inflated = zlib.decompressobj(-15).decompress(b"".join(pieces))
                if inflated != b"".join(rows):
                    raise SystemExit(f"{name}: inflated rows differ")
                sizes[name] = sum(len(p) for p in pieces)
    anchor = "zlib level 6 (default)"
    return {name: {"mb_per_s": total / statistics.median(t) / 1e6,
                   "mb_per_s_spread": [total / max(t) / 1e6, total / min(t) / 1e6],
                   "bytes_vs_raw": sizes[name] / total, "bytes_vs_zlib6": sizes[name] / sizes[anchor],
                   "time_vs_zlib6": statistics.median(a / b for a, b in zip(t, times[anchor]))}
            for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="save results/png_encodings.json (else only print)")
    args = parser.parse_args()
    load = [os.getloadavg()[0]]
    result = {"date": time.strftime("%Y-%m-%d"), "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
              "images": args.images, "rounds": args.rounds, "png": {}, "deflate": {}}
    for label, channels in (("224 px RGB (HAM10000 crops)", 3), ("224 px gray (Kermany + BUSI crops)", 1)):
        images = realistic_images(224, args.images, channels, seed=17)
        result["png"][label] = measure_png(images, args.rounds)
        print(f"\n{label}, {args.images} images, {args.rounds} rounds (median ms per image [min-max])")
        print("| encoder | encode ms | decode ms (PIL) | decode ms (the loaders' decode_png) | bytes / image | "
              "vs default: encode time, decode time (PIL), bytes |")
        print("|---|---|---|---|---|---|")
        for name, r in result["png"][label].items():
            print(f"| {name} | {r['encode_ms']:.2f} [{r['encode_ms_spread'][0]:.2f}-{r['encode_ms_spread'][1]:.2f}] | "
                  f"{r['decode_ms']:.2f} [{r['decode_ms_spread'][0]:.2f}-{r['decode_ms_spread'][1]:.2f}] | "
                  f"{r['loader_decode_ms']:.2f} | {r['bytes_per_image']:,.0f} | {r['encode_vs_default']:.3f} x, {r['decode_vs_default']:.2f} x, "
                  f"{r['bytes_vs_default']:.2f} x |")
        rows = [np.ascontiguousarray(pixels).tobytes() for pixels in images]
        # the rows of one release at all sizes: 224 plus the 28/64/128 versions of the same images
        for size in (128, 64, 28):
            rows += [np.asarray(Image.fromarray(p).resize((size, size), Image.BILINEAR)).tobytes() for p in images]
        result["deflate"][label] = measure_deflate(rows, args.rounds)
        print(f"\ndeflate of release rows, 28+64+128+224 px ({sum(map(len, rows)) / 1e6:.1f} MB)")
        print("| deflater | MB/s [min-max] | bytes / raw | bytes / zlib 6 | time / zlib 6 |")
        print("|---|---|---|---|---|")
        for name, r in result["deflate"][label].items():
            print(f"| {name} | {r['mb_per_s']:.0f} [{r['mb_per_s_spread'][0]:.0f}-{r['mb_per_s_spread'][1]:.0f}] | "
                  f"{r['bytes_vs_raw']:.3f} | {r['bytes_vs_zlib6']:.3f} | {r['time_vs_zlib6']:.3f} |")
    load.append(os.getloadavg()[0])
    result["load_average_1min"] = load
    print(f"\nload average (1 min) before / after: {load[0]:.2f} / {load[1]:.2f}")
    if args.write:
        out = HERE / "results" / "png_encodings.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
