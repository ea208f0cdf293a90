"""The shared 3D volume operations of the recipes: one resize (MedMNIST's), masks, crops, CT windows.

Every 3D recipe resizes with :func:`zoom` (``scipy.ndimage.zoom`` with cubic splines, as MedMNIST did), binary
masks with :func:`zoom_mask` (zoomed as 0/1, thresholded at 0.5, stored 0/255) and gray volumes with
:func:`resize_gray`. What is measured and what is assumed is said at each function.
"""

from typing import Sequence, Tuple, Union

import numpy as np

SizeOrShape = Union[int, Sequence[int]]


def _shape(size_or_shape: SizeOrShape, ndim: int) -> Tuple[int, ...]:
    if isinstance(size_or_shape, (int, np.integer)):
        shape = (int(size_or_shape),) * ndim
    else:
        shape = tuple(int(s) for s in size_or_shape)
    if len(shape) != ndim:
        raise ValueError(f"target shape {shape} does not have {ndim} axes like the volume")
    if any(s < 1 for s in shape):
        raise ValueError(f"target shape {shape} has an axis smaller than 1")
    return shape


def zoom(volume: np.ndarray, size_or_shape: SizeOrShape, order: int = 3) -> np.ndarray:
    """MedMNIST's resize: ``scipy.ndimage.zoom(volume.astype(float), target / source per axis, order=order)``.

    Returns float64 of the target shape (scipy rounds ``source * factor``, which gives the target back for every
    size pair used here; a mismatch would raise rather than pass silently).
    """
    from scipy import ndimage

    volume = np.asarray(volume)
    shape = _shape(size_or_shape, volume.ndim)
    factors = [t / s for t, s in zip(shape, volume.shape)]
    # output=float64 computes exactly what zoom(volume.astype(float)) does (scipy's spline prefilter works in float64
    # either way) without a float64 copy of the input: for a large CT box that copy was the peak of a build
    out = ndimage.zoom(volume, factors, order=order, output=np.float64)
    if out.shape != shape:
        raise ValueError(f"zoom of {volume.shape} by {factors} gave {out.shape}, not {shape}")
    return out


def zoom_mask(mask: np.ndarray, size: SizeOrShape) -> np.ndarray:
    """A binary mask (any dtype, nonzero = inside) at ``size``: zoomed as 0/1 floats with cubic splines (order 3),
    thresholded ``> 0.5``, stored as uint8 0/255.

    Measured exact: every genuine AdrenalMNIST3D 28^3 volume is ``zoom(v64 / 255, 28 / 64, order=3) > 0.5`` of its
    64^3 volume, and every genuine VesselMNIST3D 28^3 volume is this of its 29^3 voxel grid.
    """
    binary = (np.asarray(mask) != 0).astype(np.float64)
    return np.where(zoom(binary, size, order=3) > 0.5, 255, 0).astype(np.uint8)


def resize_gray(volume: np.ndarray, size: SizeOrShape, order: int = 3) -> np.ndarray:
    """A gray volume at ``size``: :func:`zoom`, then rounded half to even (``np.rint``) and clipped to 0..255, uint8.

    ASSUMPTION: how MedMNIST turned the float zoom of gray volumes back into uint8 (rounding vs truncation) is not
    measured here; a user with the official files checks it with ``calibrate``.
    """
    return np.clip(np.rint(zoom(volume, size, order=order)), 0, 255).astype(np.uint8)


def _window_starts(center: Sequence[float], shape: Tuple[int, ...]) -> Tuple[int, ...]:
    # center in voxel-index coordinates (voxel k at k): the window of s voxels starts at round(c - (s - 1) / 2),
    # halves to even like imageops.crop_offset; for c = (n - 1) / 2 this is exactly int(round((n - s) / 2.0)).
    return tuple(int(round(float(c) - (s - 1) / 2.0)) for c, s in zip(center, shape))


def _window_dtype(dtype, pad_value) -> np.dtype:
    # the volume's dtype when pad_value fits it exactly, else one that holds both (e.g. uint8 padded with -1)
    if dtype is None:
        return np.dtype(np.float64)
    dtype = np.dtype(dtype)
    with np.errstate(all="ignore"):
        try:
            if np.array(pad_value).astype(dtype) == pad_value:
                return dtype
        except (OverflowError, ValueError):
            pass
    return np.result_type(dtype, np.asarray(pad_value).dtype)


def crop_around(volume, center: Sequence[float], size: SizeOrShape, pad_value=0) -> np.ndarray:
    """The ``size``^3 (or per-axis shape) window centered on ``center`` (voxel indices, may be fractional).

    The window starts at ``round(center - (size - 1) / 2)`` per axis (halves to even, as imageops.crop_offset), so
    ``crop_around(v, (n - 1) / 2, s)`` is :func:`center_crop_3d`. Where the window leaves the volume it is filled
    with ``pad_value``. ``volume`` may be a numpy array, a numpy memmap, a nibabel ArrayProxy (``img.dataobj``) or
    an h5py dataset: only the window is sliced from it, the whole volume is never loaded.
    """
    full_shape = tuple(int(n) for n in volume.shape)
    shape = _shape(size, len(full_shape))
    if len(center) != len(full_shape):
        raise ValueError(f"center {tuple(center)} does not have {len(full_shape)} coordinates like the volume")
    starts = _window_starts(center, shape)
    src, dst = [], []
    for start, s, n in zip(starts, shape, full_shape):
        lo, hi = max(start, 0), min(start + s, n)
        if hi <= lo:  # the window misses the volume on this axis: all padding
            src = None
            break
        src.append(slice(lo, hi))
        dst.append(slice(lo - start, hi - start))
    out = np.full(shape, pad_value, dtype=_window_dtype(getattr(volume, "dtype", None), pad_value))
    if src is not None:
        out[tuple(dst)] = np.asarray(volume[tuple(src)])
    return out


def center_crop_3d(volume, size: SizeOrShape) -> np.ndarray:
    """The centered ``size``^3 (or per-axis shape) window: offset ``int(round((n - size) / 2.0))`` per axis."""
    full_shape = tuple(int(n) for n in volume.shape)
    shape = _shape(size, len(full_shape))
    if any(s > n for s, n in zip(shape, full_shape)):
        raise ValueError(f"cannot center-crop {shape} from a volume of {full_shape}")
    offsets = [int(round((n - s) / 2.0)) for n, s in zip(full_shape, shape)]
    return np.asarray(volume[tuple(slice(o, o + s) for o, s in zip(offsets, shape))])


def hu_window(volume_hu: np.ndarray, level: float, width: float) -> np.ndarray:
    """A CT window: clip to ``[level - width / 2, level + width / 2]``, scale linearly to 0..255, round half to
    even (``np.rint``), uint8.

    ASSUMPTION: the rounding (vs truncation) is not measured on official files; ``calibrate`` checks it.
    """
    if width <= 0:
        raise ValueError(f"window width must be positive, not {width}")
    lo = level - width / 2.0
    scaled = (np.clip(np.asarray(volume_hu, dtype=np.float64), lo, lo + width) - lo) * 255.0 / width
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def is_blank(volume: np.ndarray) -> bool:
    """True when the volume has no nonzero voxel (a recipe then returns None: the record is dropped and counted)."""
    return not np.any(volume)
