"""The 2D image operations of the MedMNIST+ recipes, each in one place.

MedMNIST never published its preprocessing. The rule measured on genuine source images (PneumoniaMNIST-28 and
BreastMNIST-28/64 reproduce their official rows bit for bit; see the README beside each sample in
``../shared/data/raw``) is: convert to the dataset's mode, center-crop (the square of the short edge, or a fixed
window), resize with PIL's bilinear filter straight to the target size, then store the result in the source's own
format with PIL's defaults, which for JPEG sources is a quality-75 round trip. Every step here is that rule's
step, with the measured details (offset rounding, PIL's default arguments) kept exactly.
"""

from __future__ import annotations

import io
from typing import Optional

import numpy as np
from PIL import Image

# PIL resampling filters by name: the kernel is a recipe parameter (``calibrate`` compares them).
RESAMPLE = {
    "nearest": Image.NEAREST,
    "box": Image.BOX,
    "bilinear": Image.BILINEAR,
    "hamming": Image.HAMMING,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
}


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    """The image in PIL mode ``mode`` ("L" gray, "RGB"): RGB, RGBA, palette and 16-bit sources alike."""
    if image.mode == mode:
        return image
    if image.mode.startswith("I;16") and mode == "L":
        # 16-bit gray: PIL's convert("L") clips at 255; keep the high byte of the full range instead.
        return Image.fromarray((np.asarray(image, dtype=np.uint16) >> 8).astype(np.uint8), "L")
    # RGBA (some ChestX-ray14 PNGs), palette and RGB-stored gray files: PIL's convert, as MedMNIST's PIL
    # pipeline did (the alpha channel of these scans is opaque and is dropped).
    return image.convert(mode)


def crop_offset(long: int, short: int) -> int:
    """Offset of a centered window: ``int(round((long - short) / 2.0))``, halves to even (torchvision's rule).

    Measured on genuine BreastMNIST sources: floor alone and ceil alone each fail on some odd differences.
    """
    return int(round((long - short) / 2.0))


def center_crop(image: Image.Image, width: int, height: int) -> Image.Image:
    """The centered ``width`` x ``height`` window (offsets rounded as :func:`crop_offset`)."""
    if width > image.width or height > image.height:
        raise ValueError(f"cannot crop {width}x{height} from an image of {image.width}x{image.height}")
    left, top = crop_offset(image.width, width), crop_offset(image.height, height)
    return image.crop((left, top, left + width, top + height))


def center_crop_square(image: Image.Image) -> Image.Image:
    """The centered square whose side is the short edge."""
    side = min(image.width, image.height)
    return center_crop(image, side, side)


def resize(image: Image.Image, size: int, kernel: str = "bilinear") -> Image.Image:
    """``size`` x ``size`` with PIL's filter ``kernel`` and PIL's default arguments (no ``reducing_gap``)."""
    return image.resize((size, size), RESAMPLE[kernel])


def jpeg_round_trip(image: Image.Image, quality: Optional[int] = 75) -> Image.Image:
    """Encode as JPEG with PIL (``quality``, PIL's default 75, other settings default) and decode again.

    MedMNIST stored each processed image in its source's format with PIL's defaults: for JPEG sources the
    official pixels are those of the decoded JPEG. ``quality=None`` skips the round trip.
    """
    if quality is None:
        return image
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    decoded = Image.open(buffer)
    decoded.load()
    return decoded


def max_projection(stack: np.ndarray, axis: int = 0) -> np.ndarray:
    """The maximum over ``axis`` of a slice stack (TissueMNIST: 7 slices of 32 x 32 -> one 32 x 32 image)."""
    return np.asarray(stack).max(axis=axis)


def as_release_pixels(image: Image.Image, channels: int) -> np.ndarray:
    """A processed image as one row of the release arrays: uint8 H x W (gray) or H x W x 3 (RGB)."""
    array = np.asarray(image, dtype=np.uint8)
    if channels == 1 and array.ndim == 3:
        raise ValueError(f"expected a gray image, got {array.shape}")
    return array
