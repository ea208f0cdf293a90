"""Realistic benchmark content made from the genuine images in ``../shared/data/raw`` (issue 17, item 3).

Synthetic sine/blob images compress several times faster than photographs, so an encoding or deflate number
measured on them is optimistic. This module makes pixels from genuine files instead:

- RGB: the twenty HAM10000 dermoscopy photos (600x450 JPEG, ``ham10000/``),
- gray: the Kermany pediatric chest X-rays (``kermany/train/*/*.jpeg``, 1972x1719 and 1494x1044) and the BUSI
  breast ultrasound PNGs (``busi/*/*.png``), converted to L,

each varied by a random square crop (a random side between 45 % and 100 % of the short edge, anywhere in the
picture), a flip or quarter turn, and a colour shift (per-channel gain and offset, and a gamma; brightness and
gamma only for gray), then resized (PIL bilinear, as the MedMNIST recipes resize) to the size asked. A size larger
than the source is made by mirroring the source into a larger canvas at its own scale (its texture is not
smoothed by upscaling). No noise is added: noise would make the content harder to compress than real images.
3D volumes have no genuine source here and stay synthetic (``medmnist_plus_common.release.synthetic``).

- :func:`realistic_pixels` has the signature of ``tests.fakes.raw_collections.smooth_pixels`` (any width x height,
  1 or 3 channels); :func:`realistic_raw_content` swaps it in, so ``write_raw_collection`` there writes raw
  collections (real formats and dimensions) with realistic pixels (the repository's root must be importable).
- :func:`realistic_images` gives ``count`` square images of a release; :func:`write_realistic_release` writes a
  release file in the official format (``.npz``, deflated) from them.

Without ``../shared/data`` (or ``MEDMNIST_PLUS_GENUINE_DIR``) every function fails with a message saying where the
genuine files are expected.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
from PIL import Image

from medmnist_plus_common.catalog import SPLITS, DatasetFacts
from medmnist_plus_common.release.reader import member_name
from medmnist_plus_common.release.synthetic import synthetic_images, synthetic_labels
from medmnist_plus_common.release.writer import OFFICIAL_MEMBER_ORDER, write_npz_members

REPO = Path(__file__).resolve().parent.parent
DEFAULT_GENUINE_DIR = REPO.parent / "shared" / "data" / "raw"
_CHUNK_BYTES = 32 * 2**20


class GenuineDataMissing(SystemExit):
    """The genuine images this content is made from are not on this machine (a SystemExit: a benchmark script ends
    with the message, not a traceback)."""


def genuine_dir() -> Path:
    """The folder of genuine raw images: ``$MEDMNIST_PLUS_GENUINE_DIR`` or ``<repo>/../shared/data/raw``."""
    folder = Path(os.environ.get("MEDMNIST_PLUS_GENUINE_DIR") or DEFAULT_GENUINE_DIR)
    if not (folder / "ham10000").is_dir():
        raise GenuineDataMissing(
            f"Realistic benchmark content needs the genuine images of ../shared/data/raw (HAM10000 photos in "
            f"ham10000/, Kermany X-rays in kermany/, BUSI ultrasound in busi/), and {folder / 'ham10000'} does not "
            "exist. Run the benchmark from a clone beside the shared folder, or point MEDMNIST_PLUS_GENUINE_DIR at "
            "a folder laid out like it; pass --synthetic (where a benchmark offers it) to measure on synthetic "
            "content instead, knowing that it compresses several times faster than real images.")
    return folder


@functools.lru_cache(maxsize=2)
def genuine_sources(channels: int) -> List[np.ndarray]:
    """The decoded genuine images: RGB (HAM10000) for ``channels=3``, gray (Kermany + BUSI) for ``channels=1``."""
    folder = genuine_dir()
    if channels == 3:
        paths = sorted((folder / "ham10000").glob("*.jpg"))
    else:
        paths = sorted((folder / "kermany").glob("*/*/*.jpeg")) + sorted((folder / "busi").glob("*/*.png"))
    if not paths:
        raise GenuineDataMissing(f"{folder}: no genuine {'RGB' if channels == 3 else 'gray'} images found.")
    mode = "RGB" if channels == 3 else "L"
    out = []
    for path in paths:
        with Image.open(path) as image:
            out.append(np.asarray(image.convert(mode)))
    return out


def _colour_shift(rng: np.random.Generator, pixels: np.ndarray) -> np.ndarray:
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    gain = rng.uniform(0.85, 1.15, channels) if channels > 1 else rng.uniform(0.9, 1.1, 1)
    offset = rng.uniform(-12, 12, channels)
    gamma = rng.uniform(0.8, 1.25)
    table = np.arange(256, dtype=np.float32)[:, None] / 255.0
    table = np.clip((table ** gamma) * 255.0 * gain + offset, 0, 255).round().astype(np.uint8)  # 256 x C
    if channels == 1:
        return table[:, 0][pixels]
    return np.stack([table[:, c][pixels[..., c]] for c in range(channels)], axis=-1)


def _mirrored(source: np.ndarray, height: int, width: int) -> np.ndarray:
    """``source`` extended by mirroring to at least height x width (its own scale kept)."""
    pad_h, pad_w = max(0, height - source.shape[0]), max(0, width - source.shape[1])
    if not (pad_h or pad_w):
        return source
    widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (source.ndim - 2)
    return np.pad(source, widths, mode="symmetric")


def realistic_pixels(rng: np.random.Generator, width: int, height: int, channels: int = 1) -> np.ndarray:
    """A uint8 array (height, width[, 3]) cut from a genuine image: crop, flip or turn, colour shift, resize."""
    sources = genuine_sources(3 if channels == 3 else 1)
    source = sources[int(rng.integers(len(sources)))]
    turn = int(rng.integers(8))  # a flip and/or quarter turns: the eight symmetries of the square
    if turn & 4:
        source = source[:, ::-1]
    source = np.rot90(source, turn & 3)
    # the crop keeps the target's aspect ratio; its scale: 45-100 % of what fits, or the source's own scale
    # (mirrored to fit) when the target is larger than the source
    fit = min(source.shape[0] / height, source.shape[1] / width)
    scale = fit * rng.uniform(0.45, 1.0) if fit >= 1 else rng.uniform(0.9, 1.0)
    crop_h, crop_w = max(1, int(round(height * scale))), max(1, int(round(width * scale)))
    canvas = _mirrored(source, crop_h, crop_w)
    top = int(rng.integers(canvas.shape[0] - crop_h + 1))
    left = int(rng.integers(canvas.shape[1] - crop_w + 1))
    crop = np.ascontiguousarray(canvas[top:top + crop_h, left:left + crop_w])
    crop = _colour_shift(rng, crop)
    if crop.shape[:2] != (height, width):
        crop = np.asarray(Image.fromarray(crop).resize((width, height), Image.BILINEAR))
    return crop if channels != 1 or crop.ndim == 2 else crop[..., 0]


def realistic_images(size: int, count: int, channels: int, seed: int = 0) -> np.ndarray:
    """``count`` realistic square images of ``size`` px: (count, size, size) gray or (count, size, size, 3) RGB."""
    rng = np.random.default_rng(seed)
    shape = (count, size, size) + ((3,) if channels == 3 else ())
    out = np.empty(shape, dtype=np.uint8)
    for i in range(count):
        out[i] = realistic_pixels(rng, size, size, channels)
    return out


def release_images(facts: DatasetFacts, size: int, count: int, seed: int) -> np.ndarray:
    """Rows of a release of ``facts`` at ``size``: realistic for 2D, synthetic for 3D (no genuine volume here)."""
    if facts.dims == 3:
        return synthetic_images(facts, size, count, seed)
    return realistic_images(size, count, facts.channels, seed)


def write_realistic_release(path: str, facts: DatasetFacts, size: int, counts: Optional[Dict[str, int]] = None,
                            seed: int = 0, member_order: Sequence[str] = OFFICIAL_MEMBER_ORDER) -> str:
    """A release file in the official format whose 2D rows are realistic (see :func:`release_images`)."""
    genuine_dir()  # fail before writing anything
    counts = counts or {"train": 8, "validation": 4, "test": 4}
    shape = facts.image_shape(size)
    rows_per_chunk = max(1, _CHUNK_BYTES // int(np.prod(shape)))

    def chunks(split: str, count: int) -> Iterator[np.ndarray]:
        for start in range(0, count, rows_per_chunk):
            seed_here = seed * 1_000_003 + SPLITS.index(split) * 100_003 + start
            yield release_images(facts, size, min(rows_per_chunk, count - start), seed_here)

    members = {}
    for split in SPLITS:
        count = counts[split]
        members[member_name(split, "images")] = ((count,) + shape, chunks(split, count))
        labels = synthetic_labels(facts, count, seed=seed * 1_000_003 + SPLITS.index(split) * 100_003)
        members[member_name(split, "labels")] = (labels.shape, [labels])
    return write_npz_members(path, {name: members[name] for name in member_order})


@contextlib.contextmanager
def realistic_raw_content():
    """Within this block, ``tests.fakes.raw_collections.write_raw_collection`` draws its pixels from
    :func:`realistic_pixels` (same layout, formats and dimensions as before; only the pixels change)."""
    genuine_dir()
    from tests.fakes import raw_collections

    original = raw_collections.smooth_pixels
    raw_collections.smooth_pixels = realistic_pixels
    try:
        yield
    finally:
        raw_collections.smooth_pixels = original
