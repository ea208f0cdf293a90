"""Near duplicates for ``audit``: a small signature per row, an exact grid search for close pairs, and groups.

**Signature.** Each row is reduced to a thumbnail of fixed size whatever its resolution: the area mean of every
block of a ``GRID`` x ``GRID`` grid (2D, per channel) or ``GRID``^3 grid (3D), with fractional pixel weights when
the size is not a multiple of the grid (28 / 8 = 3.5 px per block), so a 28 px and a 224 px copy of one image get
(nearly) the same thumbnail. The thumbnail is then normalized to zero mean and unit standard deviation (``sigma``,
in gray levels, floored at ``FLAT_SIGMA``): the signature ``z`` (float16, 64 values in 2D gray, 192 in RGB, 512 in
3D) is what is kept of a row. The rows are never kept.

**Distance.** ``d(a, b) = mean |z_a - z_b|``: the mean absolute difference of the normalized thumbnails, in units
of the images' own contrast (0 for the same thumbnail, about 1.1 for unrelated images). It does not depend on the
image size nor on brightness and contrast (a re-windowed copy is a near duplicate), and it is cheap. Two rows are
near duplicates when ``d <= threshold``; groups are the connected components of that relation (single linkage).
Flat rows (thumbnail ``sigma`` below ``FLAT_SIGMA`` gray levels: blank images, empty volumes) have no structure to
compare and are left out of the near search (identical flat rows are still exact duplicates).

**Search.** Never all pairs. Three linear features of ``z`` with weights +-1/K (top/bottom, left/right and their
product, over the K signature values) change by at most ``d`` between two rows, so two rows within ``threshold``
lie in the same or in neighbouring cells of a grid of cell size ``threshold`` over those features. Only rows of
neighbouring cells are compared, in vectorized batches; the search is exact (it finds every pair within the
threshold). A set of rows that crowd one cell (many near-identical rows) costs the square of its size: the number
of comparisons is capped (``MAX_COMPARISONS``) and the report then says the search was not complete.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

from . import DEFAULT_NEAR_THRESHOLD as DEFAULT_THRESHOLD  # noqa: F401 (README `audit`: how it was chosen)

GRID = 8
FLAT_SIGMA = 1.0  # gray levels: a thumbnail flatter than this is not compared
MAX_COMPARISONS = 50_000_000  # candidate pairs compared at most
_PAIR_BATCH = 1 << 18  # candidate pairs expanded at a time
_ELEMENTS = 1 << 22  # signature values compared at a time (bounds the temporary arrays)
_SUB_BATCH_BYTES = 4 * 2**20  # pixels converted to float at a time


def block_weights(size: int, grid: int = GRID) -> np.ndarray:
    """``grid x size`` weights: row ``b`` averages pixels ``[b * size / grid, (b + 1) * size / grid)``, a pixel cut
    by a block boundary counting with the fraction of it inside (the area mean, as PIL's BOX filter)."""
    edges = np.arange(grid + 1) * (size / grid)
    pixels = np.arange(size)
    lo = np.maximum(edges[:-1, None], pixels[None, :])
    hi = np.minimum(edges[1:, None], pixels[None, :] + 1)
    return (np.clip(hi - lo, 0, None) / (size / grid)).astype(np.float32)


class Signer:
    """Signatures of the rows of one config: ``shape`` the row shape (H x W [x 3] or D x H x W), ``dims`` 2 or 3."""

    def __init__(self, shape: Sequence[int], dims: int, grid: int = GRID):
        self.shape, self.dims, self.grid = tuple(shape), dims, grid
        self.weights = [block_weights(s, grid) for s in self.shape[:dims]]
        thumb = (grid,) * dims + tuple(self.shape[dims:])  # 2D RGB keeps its 3 channels
        self.size = int(np.prod(thumb))
        # +-1 patterns over the thumbnail: top/bottom halves, left/right halves, and their product
        first = np.where(np.arange(grid) < grid // 2, 1.0, -1.0)
        axes = np.meshgrid(*[np.arange(n) for n in thumb], indexing="ij")
        top = first[axes[0]]
        left = first[axes[1]]
        self.patterns = np.stack([top.ravel(), left.ravel(), (top * left).ravel()], 1).astype(np.float32) / self.size

    def thumbnails(self, rows: np.ndarray) -> np.ndarray:
        """``(n, K)`` float32 block means (gray levels) of ``rows`` (n x row shape, uint8)."""
        out = np.empty((len(rows), self.size), dtype=np.float32)
        step = max(1, _SUB_BATCH_BYTES // max(int(np.prod(self.shape)), 1))
        for start in range(0, len(rows), step):
            x, scale = rows[start:start + step], 1
            for axis, (size, weights) in enumerate(zip(self.shape, self.weights), start=1):  # one axis at a time
                if size % self.grid == 0 and x.dtype != np.float32:
                    # whole pixels per block (every official size but 28): integer sums, no float copy of the rows
                    block = size // self.grid
                    x = x.reshape(x.shape[:axis] + (self.grid, block) + x.shape[axis + 1:])
                    x = x.sum(axis + 1, dtype=np.uint32)
                    scale *= block
                else:  # fractional blocks: weighted means
                    x = np.moveaxis(np.tensordot(x.astype(np.float32), weights, axes=([axis], [1])), -1, axis)
            out[start:start + step] = x.reshape(len(x), -1).astype(np.float32) / scale
        return out

    def sign(self, rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``(z, sigma)``: normalized thumbnails (float16) and their standard deviation in gray levels."""
        thumbs = self.thumbnails(rows)
        mean = thumbs.mean(1, keepdims=True)
        sigma = thumbs.std(1)
        z = (thumbs - mean) / np.maximum(sigma, FLAT_SIGMA)[:, None]
        return z.astype(np.float16), sigma.astype(np.float32)

    def features(self, z: np.ndarray) -> np.ndarray:
        """Three features per row that differ by at most ``d`` between two rows (weights +-1/K)."""
        out = np.empty((len(z), 3), dtype=np.float32)
        for start in range(0, len(z), 65536):
            out[start:start + 65536] = z[start:start + 65536].astype(np.float32) @ self.patterns
        return out


def distances(z: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """``d`` between rows ``i[k]`` and ``j[k]`` of ``z``, in pieces of bounded size."""
    out = np.empty(len(i), dtype=np.float32)
    step = max(1, _ELEMENTS // max(z.shape[1], 1))
    for start in range(0, len(i), step):
        a = z[i[start:start + step]].astype(np.float32)
        a -= z[j[start:start + step]]
        np.abs(a, out=a)
        out[start:start + step] = a.mean(1)
    return out


@dataclass
class NearSearch:
    pairs_i: np.ndarray  # rows of z (ascending pairs i < j) within the threshold
    pairs_j: np.ndarray
    distance: np.ndarray
    compared: int  # candidate pairs compared
    complete: bool  # False when MAX_COMPARISONS stopped the search


def _cell_tasks(features: np.ndarray, threshold: float):
    """Row ranges of neighbouring cells, in the order of ``order``: ``(order, tasks)``, a task being
    ``(start_a, count_a, start_b, count_b, same)`` of rows to compare (``same``: one cell with itself)."""
    cells = np.floor(features / threshold).astype(np.int64)
    cells -= cells.min(0) - 1  # >= 1, so every neighbour offset stays >= 0
    span = cells.max(0) + 2
    strides = np.array([span[1] * span[2], span[2], 1], dtype=np.int64)
    keys = cells @ strides
    order = np.argsort(keys, kind="stable")
    unique, starts, counts = np.unique(keys[order], return_index=True, return_counts=True)
    offsets = [np.array(o) for o in np.ndindex(3, 3, 3)]
    offsets = [o - 1 for o in offsets if tuple(o - 1) > (0, 0, 0)]  # each neighbour pair once
    tasks = [(starts[counts > 1], counts[counts > 1], starts[counts > 1], counts[counts > 1], True)]
    for offset in offsets:
        target = unique + int(offset @ strides)
        position = np.searchsorted(unique, target)
        found = position < len(unique)
        found[found] = unique[position[found]] == target[found]
        a, b = np.flatnonzero(found), position[found]
        tasks.append((starts[a], counts[a], starts[b], counts[b], False))
    return order, tasks


def _split_tasks(tasks) -> List[Tuple[np.ndarray, ...]]:
    """Tasks as arrays ``(sa, na, sb, nb, same)``, each of at most ``_PAIR_BATCH`` pairs (large cells cut by rows)."""
    out = []
    for sa, na, sb, nb, same in tasks:
        small = na * nb <= _PAIR_BATCH
        out.append((sa[small], na[small], sb[small], nb[small], np.full(small.sum(), same)))
        for a0, ca, b0, cb in zip(sa[~small], na[~small], sb[~small], nb[~small]):
            rows = max(1, _PAIR_BATCH // cb)
            for first in range(0, ca, rows):
                take = min(rows, ca - first)
                if same:  # rows [first, first + take) against the rest of the cell from `first` on
                    out.append((np.array([a0 + first]), np.array([take]), np.array([a0 + first]),
                                np.array([ca - first]), np.array([True])))
                else:
                    out.append((np.array([a0 + first]), np.array([take]), np.array([b0]), np.array([cb]),
                                np.array([False])))
    return out


def _expand(sa, na, sb, nb, same) -> Tuple[np.ndarray, np.ndarray]:
    """Every pair of rows of the tasks (positions in sorted order); within one cell only ``i < j``."""
    sizes = na * nb
    task = np.repeat(np.arange(len(sa)), sizes)
    local = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    i = sa[task] + local // nb[task]
    j = sb[task] + local % nb[task]
    keep = ~same[task] | (i < j)
    return i[keep], j[keep]


def search(signer: Signer, z: np.ndarray, threshold: float, max_comparisons: int = MAX_COMPARISONS) -> NearSearch:
    """All pairs of rows of ``z`` with ``d <= threshold`` (see the module docstring)."""
    empty = np.empty(0, dtype=np.int64)
    if len(z) < 2 or threshold <= 0:
        return NearSearch(empty, empty, np.empty(0, np.float32), 0, True)
    order, tasks = _cell_tasks(signer.features(z), threshold)
    found_i, found_j, found_d = [], [], []
    compared, complete = 0, True
    batch: List[Tuple[np.ndarray, ...]] = []
    pending = 0

    def run(batch):
        nonlocal compared
        parts = [np.concatenate(column) for column in zip(*batch)]
        i, j = _expand(*parts)
        i, j = order[i], order[j]
        d = distances(z, i, j)
        close = d <= threshold
        found_i.append(np.minimum(i[close], j[close]))
        found_j.append(np.maximum(i[close], j[close]))
        found_d.append(d[close])
        compared += len(i)

    for task in _split_tasks(tasks):
        if not len(task[0]):
            continue
        if compared >= max_comparisons:
            complete = False
            break
        batch.append(task)
        pending += int((task[1] * task[3]).sum())
        if pending >= min(_PAIR_BATCH, max_comparisons - compared):
            run(batch)
            batch, pending = [], 0
    if batch:
        run(batch)
    if not found_i:
        return NearSearch(empty, empty, np.empty(0, np.float32), compared, complete)
    return NearSearch(np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d), compared, complete)


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected components of ``n`` nodes joined by edges ``(i, j)``: the smallest node of each node's component."""
    label = np.arange(n)
    if not len(i):
        return label
    while True:
        low = np.minimum(label[i], label[j])
        before = label.copy()
        np.minimum.at(label, i, low)
        np.minimum.at(label, j, low)
        while True:  # pointer jumping: every node straight to its root
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped
        if np.array_equal(label, before):
            return label


def distances_to(z: np.ndarray, rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``d`` between rows ``rows`` of ``z`` and one signature."""
    return np.abs(z[rows].astype(np.float32) - reference.astype(np.float32)[None]).mean(1)
