"""The two PNG encodings (fast in the local cache, compact where bytes travel) keep every pixel exact.

Speed is measured by benchmarks/png_encodings.py, never asserted here.
"""

import io
import zlib

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from medmnist_plus_common import builder_for
from medmnist_plus_common.catalog import load_catalog
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
