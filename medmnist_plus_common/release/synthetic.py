"""Synthetic release files in the true official format, for the offline demo, the tests and the benchmarks.

A synthetic file has the official members (``train_images`` ... ``test_labels``, uint8, official shapes and
channel layout, deflate-compressed as ``np.savez_compressed`` writes them) but made-up pixels: smooth blobs
with texture, so PNG sizes and encode times resemble real images rather than white noise. It is written
member by member, so a file of many GiB never needs its arrays in memory.
"""

from __future__ import annotations

from typing import Dict, Iterator, Optional, Sequence

import numpy as np

from ..catalog import SPLITS, DatasetFacts
from .reader import member_name
from .writer import OFFICIAL_MEMBER_ORDER, write_npz_members

_CHUNK_BYTES = 32 * 2**20


def synthetic_images(facts: DatasetFacts, size: int, count: int, seed: int) -> np.ndarray:
    """``count`` image-like uint8 samples of ``facts`` at ``size``: a few soft blobs per sample plus texture."""
    rng = np.random.default_rng(seed)
    shape = facts.image_shape(size)
    spatial = shape if facts.dims == 3 else shape[:2]
    channels = 1 if facts.dims == 3 or facts.channels == 1 else facts.channels
    axes = np.meshgrid(*[np.linspace(0.0, 1.0, size, dtype=np.float32)] * len(spatial), indexing="ij")
    out = np.empty((count,) + shape, dtype=np.uint8)
    for i in range(count):
        canvas = np.full(spatial + (channels,), 40.0, dtype=np.float32)
        for _ in range(3):
            center = rng.uniform(0.2, 0.8, len(spatial)).astype(np.float32)
            width = np.float32(rng.uniform(0.08, 0.3))
            dist2 = sum((axis - c) ** 2 for axis, c in zip(axes, center))
            blob = np.exp(-dist2 / (2 * width * width))
            canvas += blob[..., None] * rng.uniform(60, 180, channels).astype(np.float32)
        canvas += rng.normal(0, 10, canvas.shape).astype(np.float32)
        sample = np.clip(canvas, 0, 255).astype(np.uint8)
        out[i] = sample.reshape(shape)
    return out


def synthetic_labels(facts: DatasetFacts, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 7919)
    if facts.is_multilabel:
        return (rng.random((count, facts.num_classes)) < 0.15).astype(np.uint8)
    return rng.integers(0, facts.num_classes, size=(count, 1), dtype=np.uint8)


def write_synthetic_release(path: str, facts: DatasetFacts, size: int, counts: Optional[Dict[str, int]] = None,
                            seed: int = 0, compress: bool = True,
                            member_order: Sequence[str] = OFFICIAL_MEMBER_ORDER) -> str:
    """Write a synthetic release of ``facts`` at ``size`` with ``counts`` rows per split (default: 8/4/4)."""
    counts = counts or {"train": 8, "validation": 4, "test": 4}
    shape = facts.image_shape(size)
    rows_per_chunk = max(1, _CHUNK_BYTES // int(np.prod(shape)))

    def image_chunks(split: str, count: int) -> Iterator[np.ndarray]:
        for start in range(0, count, rows_per_chunk):
            yield synthetic_images(facts, size, min(rows_per_chunk, count - start), seed=_seed(seed, split, start))

    members = {}
    for split in SPLITS:
        count = counts[split]
        members[member_name(split, "images")] = ((count,) + shape, image_chunks(split, count))
        labels = synthetic_labels(facts, count, seed=_seed(seed, split, 0))
        members[member_name(split, "labels")] = (labels.shape, [labels])
    return write_npz_members(path, {name: members[name] for name in member_order}, compress=compress)


def read_synthetic_arrays(path: str) -> Dict[str, np.ndarray]:
    """All arrays of a (small) release file, as numpy reads them: the reference the tests compare against."""
    with np.load(path) as arrays:
        return {name: arrays[name] for name in arrays.files}


def _seed(seed: int, split: str, start: int) -> int:
    return seed * 1_000_003 + SPLITS.index(split) * 100_003 + start
