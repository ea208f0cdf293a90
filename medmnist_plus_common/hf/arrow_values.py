"""Arrow columns of a MedMNIST+ table as numpy arrays: labels, fixed-shape pixels (zero-copy where possible), PNGs.

Shared by the training helpers (:mod:`.training`) and the PyTorch datasets (:mod:`.torch_data`): torch_data needs
nothing from training, and training imports torch_data (and torch) only when a loader is made, so imports point
one way.
"""

from __future__ import annotations

import numpy as np


def arrow_label_values(labels) -> np.ndarray:
    """A ``label`` Arrow column as int64 class ids, or N x 14 uint8 multi-hot (ChestMNIST)."""
    import pyarrow as pa

    if pa.types.is_fixed_size_list(labels.type):
        return fixed_shape_values(labels, (labels.type.list_size,)).astype(np.uint8)
    return labels.to_numpy().astype(np.int64)


def fixed_shape_values(column, shape) -> np.ndarray:
    """An ``Array2D``/``Array3D`` Arrow column as one (n, *shape) numpy array, without a per-row Python step."""
    import pyarrow as pa

    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    arrays = [chunk_values(chunk, shape, zero_copy=False) for chunk in chunks]
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def chunk_values(chunk, shape, zero_copy: bool) -> np.ndarray:
    """One Arrow chunk of nested lists (or an Array2D/3D extension chunk) as a (rows, *shape) numpy array."""
    import pyarrow as pa

    values = chunk.storage if isinstance(chunk, pa.ExtensionArray) else chunk
    for _ in shape:
        values = values.flatten()
    return values.to_numpy(zero_copy_only=zero_copy).reshape((len(chunk),) + tuple(shape))


def decode_png(data: bytes) -> np.ndarray:
    """One stored PNG as a uint8 array, H x W or H x W x C."""
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


def png_values(png_bytes) -> np.ndarray:
    """Stored PNGs as one stacked uint8 array."""
    return np.stack([decode_png(data) for data in png_bytes])
