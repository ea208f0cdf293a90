"""Arrow columns of a MedMNIST+ table as numpy arrays: labels, fixed-shape pixels (zero-copy where possible), PNGs.

Shared by the training helpers (:mod:`.training`) and the PyTorch datasets (:mod:`.torch_data`): torch_data needs
nothing from training, and training imports torch_data (and torch) only when a loader is made, so imports point
one way.
"""

from __future__ import annotations

import struct
from typing import Optional

import numpy as np

try:  # ISA-L's inflate and CRC-32: about 2x and 5x zlib's speed; isal is a dependency
    from isal.isal_zlib import crc32, decompressobj, error as inflate_error
except ImportError:  # pragma: no cover
    from zlib import crc32, decompressobj, error as inflate_error


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


def decode_png(data: bytes, out: Optional[np.ndarray] = None) -> np.ndarray:
    """One stored PNG as a uint8 array, H x W or H x W x C: exactly PIL's pixels (not necessarily writeable).

    The loaders decode every image every epoch, and PIL's generic path takes about 3x the time of
    :func:`_decode_plain_png` on the PNGs this package writes (``features.encode_png_fast``). Any other PNG, or
    anything unexpected in one (a damaged file included), is PIL's to decode, with PIL's errors.

    ``out``: an array of the image's shape and dtype to decode into (and return), such as the channels-last view
    of a slot of a batch (``features.channels_last_image``): no copy into the batch afterwards."""
    from PIL import Image

    pixels = _decode_plain_png(data, Image.MAX_IMAGE_PIXELS, out)
    if pixels is None:
        import io

        pixels = np.asarray(Image.open(io.BytesIO(data)))
        if out is not None:
            if out.shape != pixels.shape or out.dtype != pixels.dtype:
                raise ValueError(f"a {pixels.dtype} image of shape {pixels.shape} cannot be decoded into a "
                                 f"{out.dtype} array of shape {out.shape}")
            out[...] = pixels
            pixels = out
    return pixels


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3}  # colour type: gray, RGB
_HEAD_BYTES = 1024  # of the zlib stream, inflated first to see the filters of the first rows


def _decode_plain_png(data: bytes, max_pixels, out: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
    """The pixels of an 8-bit gray or RGB, non-interlaced PNG made of IHDR, IDAT... and IEND chunks only, whose
    rows are all filtered with None or SUB (as ``encode_png_fast`` writes), into ``out`` if given; None for any
    other PNG or bytes (or an ``out`` of another shape or dtype).

    PNG's SUB filter stores each byte minus the byte one pixel to its left, modulo 256: a uint8 cumulative sum
    along the row undoes it. As strict as PIL or stricter: the IHDR's CRC, the zlib stream's end, length and
    Adler-32 are checked; like PIL, not the CRCs of IDAT chunks (the Adler-32 covers their content)."""
    if len(data) < 45 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR" or data[8:12] != b"\0\0\0\r":
        return None
    if crc32(data[12:29]) != int.from_bytes(data[29:33], "big"):
        return None
    width, height, depth, colour, compression, filtering, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    channels = _PNG_CHANNELS.get(colour)
    most = 2**31 if max_pixels is None else max_pixels  # beyond PIL's limit, PIL warns or refuses
    if depth != 8 or channels is None or compression or filtering or interlace or not 0 < width * height <= most:
        return None
    idat, position = [], 33
    while position + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        if kind == b"IEND":
            break
        if kind != b"IDAT" or position + 12 + length > len(data):
            return None
        idat.append(data[position + 8:position + 8 + length])
        position += 12 + length
    else:
        return None  # no IEND
    row_bytes = 1 + width * channels
    zlib_stream, size = b"".join(idat), height * row_bytes
    stream = decompressobj()
    try:
        # PIL's adaptive filters choose Up, Average or Paeth within the first rows (realistic images: by the third):
        # the first KiB of the stream is inflated alone, so that such a PNG goes to PIL without inflating the rest
        raw = stream.decompress(zlib_stream[:_HEAD_BYTES], size + 1)
        if len(raw) > size or max(raw[::row_bytes], default=0) > 1:
            return None
        # all the head was taken (the output stayed below its limit); at most one byte beyond the image is inflated
        raw += stream.decompress(zlib_stream[_HEAD_BYTES:], size + 1 - len(raw))
    except inflate_error:
        return None
    if not stream.eof or len(raw) != size:
        return None
    rows = np.frombuffer(raw, np.uint8).reshape(height, row_bytes)
    filters = rows[:, 0]
    if filters.max() > 1:  # Up, Average or Paeth (or not a filter)
        return None
    shape = (height, width, channels)[:2 if channels == 1 else 3]
    if out is not None and (out.shape != shape or out.dtype != np.uint8):
        return None
    pixels = rows[:, 1:].reshape(shape)
    sub = filters == 1
    if out is None:
        out = np.empty(shape, np.uint8)
    if sub.all() and channels == 1:  # numpy sums whole rows at a time faster: down the columns of the transpose
        columns = pixels.T.copy()
        out[...] = np.add.accumulate(columns, axis=0, out=columns).T
    elif sub.all():
        np.cumsum(pixels, axis=1, dtype=np.uint8, out=out)
    else:
        out[...] = pixels
        out[sub] = np.cumsum(pixels[sub], axis=1, dtype=np.uint8)
    return out

