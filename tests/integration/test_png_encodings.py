"""The two PNG encodings (fast in the local cache, compact where bytes travel) keep every pixel exact, and
``decode_png`` (its own fast path for the PNGs the cache holds, PIL for the rest) gives PIL's pixels and errors.

Speed is measured by benchmarks/png_encodings.py, never asserted here.
"""

import io
import re
import struct
import zlib

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, UnidentifiedImageError

from medmnist_plus_common import builder_for
from medmnist_plus_common.catalog import load_catalog
from medmnist_plus_common.hf import features
from medmnist_plus_common.hf.arrow_values import _decode_plain_png
from medmnist_plus_common.hf.features import compact_png, decode_png, encode_png, encode_png_fast
from medmnist_plus_common.publish.push import export
from tests.fakes.releases import assert_matches_release, write_fake_releases


def _images():
    rng = np.random.default_rng(17)
    smooth = np.linspace(0, 255, 28 * 28, dtype=np.float32).reshape(28, 28).astype(np.uint8)
    yield rng.integers(0, 256, (28, 28), dtype=np.uint8)  # gray noise
    yield rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)  # RGB noise
    yield smooth  # gray ramp
    yield np.stack([smooth, smooth.T, 255 - smooth], axis=-1)  # RGB ramps
    yield np.zeros((224, 224, 3), np.uint8)  # flat, extremes
    yield np.full((8, 8), 255, np.uint8)


def test_fast_and_compact_png_are_pixel_exact_and_decode_to_the_same_mode():
    for pixels in _images():
        for data in (encode_png_fast(pixels), encode_png(pixels), compact_png(encode_png_fast(pixels))):
            with Image.open(io.BytesIO(data)) as image:
                assert image.format == "PNG"
                assert image.mode == ("L" if pixels.ndim == 2 else "RGB")
                decoded = np.asarray(image)
            assert decoded.dtype == np.uint8 and np.array_equal(decoded, pixels)
        assert compact_png(encode_png_fast(pixels)) == encode_png(pixels)  # compact bytes depend on pixels only


def test_the_fast_png_is_a_standard_png_with_the_sub_filter_on_every_row():
    rng = np.random.default_rng(3)
    for shape in [(1, 1), (1, 9), (9, 1), (1, 1, 3), (3, 5, 3), (28, 28), (224, 224, 3)]:
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        data = encode_png_fast(pixels)
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # PIL checks each chunk's CRC-32 and the zlib stream's Adler-32
            assert np.array_equal(np.asarray(image), pixels)
        height, width = shape[:2]
        rows = zlib.decompress(data[data.index(b"IDAT") + 4:data.index(b"IEND") - 8])
        assert len(rows) == height * (1 + width * (1 if len(shape) == 2 else 3))
        assert rows[:: len(rows) // height] == b"\x01" * height  # every row's filter byte: SUB
    for bad in (np.zeros((4, 4), np.uint16), np.zeros((4, 4, 4), np.uint8), np.zeros(4, np.uint8)):
        with pytest.raises(ValueError, match="uint8 H x W or H x W x 3"):
            encode_png_fast(bad)


def test_the_cache_holds_fast_pngs_and_export_writes_compact_ones(tmp_path):
    configs = {"dermamnist-28": {"train": 20, "validation": 3, "test": 4},
               "pneumoniamnist-28": {"train": 9, "validation": 2, "test": 3}}
    arrays = write_fake_releases(tmp_path / "release", configs)
    kwargs = dict(data_dir=str(tmp_path / "release"), cache_dir=str(tmp_path / "cache"))
    out = tmp_path / "export"
    export(str(out), list(configs), no_checks=True, **kwargs)
    for config in configs:
        facts = load_catalog()[config.split("-")[0]]
        builder = builder_for(config, **kwargs)
        builder.download_and_prepare(verification_mode="no_checks")
        cached = builder.as_dataset()
        assert_matches_release(cached, arrays[config], facts)
        train = arrays[config]["train_images"]
        stored = cached["train"].cast_column("image", cached["train"].features["image"].__class__(decode=False))
        assert [row["image"]["bytes"] for row in stored] == [encode_png_fast(p) for p in train]
        table = pq.read_table(next((out / config).glob("train-*.parquet")))
        published = [value["bytes"] for value in table.column("image").to_pylist()]
        assert published == [encode_png(p) for p in train]
        assert all(np.array_equal(decode_png(data), p) for data, p in zip(published, train))


# decode_png: the fast path for plain PNGs (8-bit gray/RGB, rows filtered None or SUB) and PIL for the rest


def _decoder_images():
    """Gray and RGB noise and smooth gradients, from 1 x 1 to 224 x 224, odd shapes included."""
    rng = np.random.default_rng(23)
    for height, width in ((1, 1), (1, 37), (41, 1), (2, 3), (28, 28), (31, 57), (224, 224)):
        y, x = np.mgrid[0:height, 0:width]
        ramp = (3 * x + 2 * y + rng.integers(0, 256)) % 256  # wraps around 255: SUB's differences too
        smooth = np.clip(ramp + rng.normal(0, 4, ramp.shape), 0, 255).astype(np.uint8)  # gradient with a little noise
        yield rng.integers(0, 256, (height, width), dtype=np.uint8)
        yield smooth
        yield rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        yield np.stack([smooth, smooth[::-1, ::-1], 255 - smooth], axis=-1)


def _pil_pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _handmade_png(pixels: np.ndarray, filters, idat_size: int = 1000, extra: bytes = b"", interlace: int = 0,
                  declared_height=None) -> bytes:
    """An 8-bit gray or RGB PNG written here: row ``y`` filtered with ``filters[y]`` (0 None, 1 Sub, 2 Up), the zlib
    stream cut into IDAT chunks of ``idat_size`` bytes (an empty one too), ``extra`` chunks after IHDR; IHDR says
    ``declared_height`` rows if given."""
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else 3
    rows = pixels.reshape(height, width * channels).astype(np.int16)
    lines = []
    for y, kind in enumerate(filters):
        row = rows[y]
        if kind == 1:
            row = row - np.concatenate([np.zeros(channels, np.int16), row[:-channels]])
        elif kind == 2 and y:
            row = row - rows[y - 1]
        lines.append(bytes([kind]) + (row % 256).astype(np.uint8).tobytes())
    stream = zlib.compress(b"".join(lines))
    idat = [stream[i:i + idat_size] for i in range(0, len(stream), idat_size)]
    header = struct.pack(">IIBBBBB", width, declared_height or height, 8, 0 if channels == 1 else 2, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + extra + _chunk(b"IDAT", b"")
            + b"".join(_chunk(b"IDAT", part) for part in idat) + _chunk(b"IEND", b""))


def _row_filters(data: bytes) -> list:
    """The filter type of each row of an 8-bit, non-interlaced PNG (read independently of the decoder)."""
    position, stream = 8, b""
    while position < len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        if kind == b"IHDR":
            width, height, _, colour = struct.unpack_from(">IIBB", data, position + 8)
        elif kind == b"IDAT":
            stream += data[position + 8:position + 8 + length]
        position += 12 + length
    row_bytes = 1 + width * (3 if colour == 2 else 1)
    return list(zlib.decompress(stream)[::row_bytes][:height])


def _assert_decodes_like_pil(data: bytes, fast: bool):
    """decode_png gives PIL's pixels, through its fast path or not as ``fast`` says."""
    expected = _pil_pixels(data)
    decoded = decode_png(data)
    assert decoded.dtype == expected.dtype and decoded.shape == expected.shape and decoded.flags.c_contiguous
    assert np.array_equal(decoded, expected)
    assert (_decode_plain_png(data, None) is not None) == fast


def test_decode_png_takes_its_fast_path_for_the_cache_pngs_and_gives_pils_pixels():
    for pixels in _decoder_images():
        data = encode_png_fast(pixels)
        assert set(_row_filters(data)) == {1}
        _assert_decodes_like_pil(data, fast=True)
        assert np.array_equal(decode_png(data), pixels)


def test_decode_png_of_pil_written_pngs_falls_back_unless_every_row_is_none_or_sub():
    took = set()
    for pixels in _decoder_images():
        data = encode_png(pixels)  # PIL's adaptive filters: what export writes
        fast = max(_row_filters(data)) <= 1
        _assert_decodes_like_pil(data, fast=fast)
        assert np.array_equal(decode_png(data), pixels)
        took.add(fast)
    assert took == {True, False}  # both paths were exercised


def test_decode_png_of_none_and_mixed_none_sub_rows_is_exact():
    rng = np.random.default_rng(5)
    for pixels in _decoder_images():
        height = len(pixels)
        for filters in ([0] * height, [1] * height, list(rng.integers(0, 2, height)), [0] + [1] * (height - 1)):
            _assert_decodes_like_pil(_handmade_png(pixels, filters, idat_size=int(rng.integers(1, 5000))), fast=True)
        if height > 1:  # one Up row among Sub rows: PIL's to decode
            _assert_decodes_like_pil(_handmade_png(pixels, [1] * (height - 1) + [2]), fast=False)


def test_decode_png_leaves_other_pngs_to_pil():
    rng = np.random.default_rng(9)
    rgb = rng.integers(0, 256, (30, 20, 3), dtype=np.uint8)
    gray = rgb[..., 0]
    images = [Image.fromarray(np.dstack([rgb, gray])),  # RGBA
              Image.fromarray(np.dstack([gray, gray])),  # LA
              Image.fromarray(rgb).quantize(16),  # palette
              Image.fromarray(gray.astype(np.uint16) * 257),  # 16-bit gray
              Image.fromarray(gray > 127)]  # 1 bit
    for image in images:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        _assert_decodes_like_pil(buffer.getvalue(), fast=False)
    sub = [1] * len(gray)
    transparent = _chunk(b"tRNS", b"\0\x07\0\x07\0\x07")  # a chunk other than IHDR, IDAT, IEND
    _assert_decodes_like_pil(_handmade_png(rgb, sub, extra=transparent), fast=False)
    _assert_decodes_like_pil(_handmade_png(gray[:1, :1], [1], interlace=1), fast=False)  # Adam7 (1 x 1: one pass)
    _assert_decodes_like_pil(_handmade_png(gray, sub), fast=True)
    _assert_decodes_like_pil(_handmade_png(gray, sub, declared_height=4), fast=False)  # more rows than IHDR says
    flat = np.zeros((2000, 8), np.uint8)  # 16 KiB in a 50-byte stream: all inflated in the first KiB, and too long
    _assert_decodes_like_pil(_handmade_png(flat, [1] * 2000, declared_height=3), fast=False)
    # fewer rows than IHDR says in a complete stream: PIL's pixels (it leaves the missing rows black)
    _assert_decodes_like_pil(_handmade_png(gray, sub, declared_height=31), fast=False)
    Image.MAX_IMAGE_PIXELS, limit = 599, Image.MAX_IMAGE_PIXELS  # beyond it PIL warns: PIL's to decode
    try:
        with pytest.warns(Image.DecompressionBombWarning):
            assert np.array_equal(decode_png(_handmade_png(gray, sub)), gray)
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def test_decode_png_into_a_slot_of_a_channels_first_batch():
    rng = np.random.default_rng(11)
    for pixels in (rng.integers(0, 256, (31, 57), dtype=np.uint8), rng.integers(0, 256, (31, 57, 3), dtype=np.uint8)):
        pngs = {"fast": encode_png_fast(pixels), "PIL's filters": encode_png(pixels),
                "None and SUB rows": _handmade_png(pixels, rng.integers(0, 2, 31)),
                "None rows": _handmade_png(pixels, [0] * 31)}
        for name, data in pngs.items():
            batch = np.zeros((2,) + features.channels_first_image(pixels).shape, np.uint8)
            decoded = decode_png(data, out=features.channels_last_image(batch[1]))
            assert np.shares_memory(decoded, batch[1]) and np.array_equal(decoded, pixels), name
            assert np.array_equal(batch[1], features.channels_first_image(pixels)) and not batch[0].any(), name
            for wrong in (np.empty(pixels.shape[:1] + (56,) + pixels.shape[2:], np.uint8),
                          np.empty(pixels.shape, np.uint16)):
                with pytest.raises(ValueError, match="cannot be decoded into a"):
                    decode_png(data, out=wrong)


def _outcome(decode, data: bytes):
    """The pixels, or the error type and message (without object addresses)."""
    try:
        return decode(data).tobytes()
    except Exception as error:  # noqa: BLE001 -- every error PIL raises is compared
        return type(error), re.sub(r"0x[0-9a-f]+", "", str(error))


@pytest.mark.parametrize("encode", ["fast", "handmade"])
def test_damaged_pngs_decode_or_fail_exactly_like_pil(encode):
    """Every byte of a PNG altered in turn, and every truncation: decode_png's pixels or error are PIL's.
    (The zlib stream is longer than the 1 KiB that decode_png inflates first to see the filters.)"""
    pixels = np.random.default_rng(3).integers(0, 256, (24, 17, 3), dtype=np.uint8)
    if encode == "fast":
        data = encode_png_fast(pixels)
    else:
        data = _handmade_png(pixels, [0, 1] * 12, idat_size=300)
    assert len(data) > 1200
    damaged = [data[:size] for size in range(len(data))]
    for position in range(len(data)):
        altered = bytearray(data)
        altered[position] ^= 1 << position % 8
        damaged.append(bytes(altered))
    errors = set()
    for bad in damaged:
        expected = _outcome(_pil_pixels, bad)
        assert _outcome(decode_png, bad) == expected
        errors.add(expected[0] if isinstance(expected, tuple) else None)
    # among them: broken streams, unreadable headers, and damage PIL ignores (a CRC of an IDAT or IEND)
    assert {OSError, UnidentifiedImageError, None} <= errors
