"""The features of every MedMNIST+ config, declared once, the same for official and regenerated sources.

- ``index``: the row of the example in its split of the official MedMNIST arrays (0-based).
- ``image`` (2D): ``Image()``, stored as lossless PNG, mode L (gray) or RGB, pixel-exact to the release
  (the default, and what the Hub gets). For local training caches, ``image_storage="raw"`` stores the uint8
  pixels instead, channels first as PyTorch wants them: ``Array3D((C, s, s), "uint8")`` (C = 1 or 3). No
  decoding, read zero-copy from the memory-mapped Arrow file; larger on disk. (Channels last would cost an
  Arrow offset per pixel for the innermost length-3 lists: more bytes of offsets than of pixels.)
- ``volume`` (3D): ``Array3D((s, s, s), "uint8")``, D x H x W as in the release.
- ``label``: ``ClassLabel`` with the catalog names, or for ChestMNIST (multi-label) a fixed-length list of
  14 uint8 multi-hot values in the order of the catalog's label names.
"""

from __future__ import annotations

import io

import numpy as np
from datasets import Array3D, ClassLabel, Features, Image, List, Value
from PIL import Image as PILImage

from ..catalog import DatasetFacts


def sample_key(facts: DatasetFacts) -> str:
    return "volume" if facts.dims == 3 else "image"


IMAGE_STORAGES = ("png", "raw")


def features_for(facts: DatasetFacts, size: int, image_storage: str = "png") -> Features:
    if facts.dims == 3:
        sample = Array3D(shape=(size, size, size), dtype="uint8")
    elif image_storage == "raw":
        sample = Array3D(shape=(facts.channels, size, size), dtype="uint8")
    else:
        sample = Image()
    if facts.is_multilabel:
        label = List(Value("uint8"), length=facts.num_classes)
    else:
        label = ClassLabel(names=list(facts.labels))
    return Features({"index": Value("int64"), sample_key(facts): sample, "label": label})


def label_description(facts: DatasetFacts) -> str:
    if facts.is_multilabel:
        names = ", ".join(f"{i}: {name}" for i, name in enumerate(facts.labels))
        return f"label: {facts.num_classes} multi-hot uint8 values (1 = finding present), in this order: {names}."
    return f"label: ClassLabel ({facts.task}) with names {list(facts.labels)}."


def encode_png(pixels: np.ndarray) -> bytes:
    """Lossless PNG of one uint8 image (H x W gray or H x W x 3 RGB), as ``datasets.Image`` stores arrays."""
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def channels_first_image(pixels: np.ndarray) -> np.ndarray:
    """One 2D image, H x W or H x W x C, as a C x H x W view."""
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def encode_sample(facts: DatasetFacts, pixels: np.ndarray, image_storage: str = "png"):
    """The value of the ``image``/``volume`` column for one release row."""
    if facts.dims == 3:
        return pixels
    if image_storage == "raw":  # channels first: C x H x W
        return np.ascontiguousarray(channels_first_image(pixels))
    return {"bytes": encode_png(pixels), "path": None}


def encode_label(facts: DatasetFacts, row: np.ndarray):
    return row.astype(np.uint8).tolist() if facts.is_multilabel else int(row[0])
