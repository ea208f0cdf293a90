"""The features of every MedMNIST+ config, declared once, the same for official and regenerated sources.

- ``index``: the row of the example in its split of the official MedMNIST arrays (0-based).
- ``image`` (2D): ``Image()``, stored as lossless PNG, mode L (gray) or RGB, pixel-exact to the release
  (the default, and what the Hub gets). Two encodings of the same pixels: :func:`encode_png_fast` in the local
  Arrow cache (its bytes never leave the machine: encoded about 30x faster than PIL's default PNG, decoded about
  3x faster by :func:`.arrow_values.decode_png`, some 10 % larger) and :func:`encode_png` where the bytes travel
  (``export``, ``push``: as small as PIL's default level or smaller, 4-5x faster to encode). Measured in
  ``benchmarks/png_encodings.py`` and ``benchmarks/png_decode.py``.
  For local training caches, ``image_storage="raw"`` stores the uint8 pixels instead, channels first as PyTorch
  wants them: ``Array3D((C, s, s), "uint8")`` (C = 1 or 3). No
  decoding, read zero-copy from the memory-mapped Arrow file; larger on disk. (Channels last would cost an
  Arrow offset per pixel for the innermost length-3 lists: more bytes of offsets than of pixels.)
- ``volume`` (3D): ``Array3D((s, s, s), "uint8")``, D x H x W as in the release.
- ``label``: ``ClassLabel`` with the catalog names, or for ChestMNIST (multi-label) a fixed-length list of
  14 uint8 multi-hot values in the order of the catalog's label names.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
try:  # ISA-L, a dependency
    from isal import igzip_lib
    from isal.isal_zlib import crc32
except ImportError:  # pragma: no cover
    igzip_lib = None
    from zlib import crc32
from datasets import Array3D, ClassLabel, Features, Image, List, Value
from PIL import Image as PILImage

from ..catalog import DatasetFacts
from .arrow_values import decode_png


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


Z_RLE = 3  # zlib's run-length strategy


def encode_png(pixels: np.ndarray) -> bytes:
    """Compact lossless PNG of one uint8 image (H x W gray or H x W x 3 RGB), for bytes that travel (export, push).

    PIL with its adaptive row filters and zlib's run-length strategy (``Z_RLE``; its level changes nothing):
    on crops of genuine photos, X-rays and ultrasound at 28-224 px, 0.98-1.00x the bytes of PIL's default
    (level 6, what ``datasets.Image`` writes for arrays) in 0.18-0.27x its time at 224 px."""
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="PNG", compress_level=1, compress_type=Z_RLE)
    return buffer.getvalue()


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# ISA-L's deflate for the cache's PNGs: level 1 with a 2-byte window, i.e. run lengths of the filtered bytes and
# Huffman codes, as zlib's Z_RLE strategy makes them (as many bytes) in a fifth of its time; its streams inflate
# faster than those of ISA-L's full 32 KiB window (benchmarks/png_encodings.py).
FAST_PNG_LEVEL, FAST_PNG_WINDOW_BITS = 1, 1


def _zlib_stream(data, level: int, window_bits: int) -> bytes:
    if igzip_lib is not None:
        return igzip_lib.compress(data, level, igzip_lib.COMP_ZLIB, 0, window_bits)
    compressor = zlib.compressobj(1, zlib.DEFLATED, 15, 9, Z_RLE)  # pragma: no cover (isal is a dependency)
    return compressor.compress(data) + compressor.flush()  # pragma: no cover


def _png_chunk(kind: bytes, data) -> bytes:
    return struct.pack(">I", len(data)) + kind + bytes(data) + struct.pack(">I", crc32(data, crc32(kind)))


def encode_png_fast(pixels: np.ndarray, level: int = FAST_PNG_LEVEL, window_bits: int = FAST_PNG_WINDOW_BITS) -> bytes:
    """Lossless PNG of one uint8 image (H x W gray or H x W x 3 RGB) for the local Arrow cache: fast to encode and
    to decode, its bytes never leave the machine.

    Every row has the SUB filter (each byte minus the byte of the pixel to its left: one numpy subtraction) and the
    rows are deflated by ISA-L, one IDAT chunk. On realistic 224 px RGB: 0.37 ms, a quarter of imagecodecs' fast
    settings and 1/50 of PIL's default, 9 % more bytes than PIL's default; the loaders
    decode these rows without PIL (``arrow_values.decode_png``). Export and push re-encode with :func:`encode_png`
    (:func:`compact_png`). Measured in ``benchmarks/png_encodings.py``."""
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or (pixels.ndim == 3 and pixels.shape[2] != 3):
        raise ValueError(f"a PNG row of the cache is uint8 H x W or H x W x 3, not {pixels.dtype} {pixels.shape}")
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else 3
    samples = pixels.reshape(height, width * channels)
    rows = np.empty((height, 1 + width * channels), dtype=np.uint8)
    rows[:, 0] = 1  # the SUB filter
    rows[:, 1:1 + channels] = samples[:, :channels]
    np.subtract(samples[:, channels:], samples[:, :-channels], out=rows[:, 1 + channels:])  # wraps modulo 256
    header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
    return (PNG_SIGNATURE + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", _zlib_stream(rows, level, window_bits)) + _png_chunk(b"IEND", b""))


def compact_png(data: bytes) -> bytes:
    """A stored PNG (e.g. the cache's fast one) re-encoded compactly with :func:`encode_png`: the same pixels."""
    return encode_png(decode_png(data))


def channels_first_image(pixels: np.ndarray) -> np.ndarray:
    """One 2D image, H x W or H x W x C, as a C x H x W view."""
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def channels_last_image(slot: np.ndarray) -> np.ndarray:
    """A C x H x W array (one image of a batch) as the H x W (C = 1) or H x W x C view a PNG decodes into."""
    return slot[0] if len(slot) == 1 else slot.transpose(1, 2, 0)


def encode_sample(facts: DatasetFacts, pixels: np.ndarray, image_storage: str = "png"):
    """The value of the ``image``/``volume`` column for one release row."""
    if facts.dims == 3:
        return pixels
    if image_storage == "raw":  # channels first: C x H x W
        return np.ascontiguousarray(channels_first_image(pixels))
    return {"bytes": encode_png_fast(pixels), "path": None}


def encode_label(facts: DatasetFacts, row: np.ndarray):
    return row.astype(np.uint8).tolist() if facts.is_multilabel else int(row[0])
