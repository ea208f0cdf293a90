"""The two PNG encodings (fast in the local cache, compact where bytes travel) keep every pixel exact.

Speed is measured by benchmarks/png_encodings.py, never asserted here.
"""

import io

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from medmnist_plus_common import builder_for
from medmnist_plus_common.catalog import load_catalog
from medmnist_plus_common.hf import features
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


@pytest.fixture(params=["imagecodecs", "PIL fallback"])
def fast_encoder(request, monkeypatch):
    """Run a test with each fast encoder: imagecodecs' and the fallback used without it."""
    if request.param == "imagecodecs":
        pytest.importorskip("imagecodecs")
        monkeypatch.setattr(features, "_FAST_PNG", [features._imagecodecs_png])
    else:
        monkeypatch.setattr(features, "_FAST_PNG", [features.encode_png])
    return request.param


def test_fast_and_compact_png_are_pixel_exact_and_decode_to_the_same_mode(fast_encoder):
    for pixels in _images():
        for data in (encode_png_fast(pixels), encode_png(pixels), compact_png(encode_png_fast(pixels))):
            with Image.open(io.BytesIO(data)) as image:
                assert image.format == "PNG"
                assert image.mode == ("L" if pixels.ndim == 2 else "RGB")
                decoded = np.asarray(image)
            assert decoded.dtype == np.uint8 and np.array_equal(decoded, pixels)
        assert compact_png(encode_png_fast(pixels)) == encode_png(pixels)  # compact bytes depend on pixels only


def test_a_missing_imagecodecs_falls_back_to_pil_and_says_so_once(monkeypatch, caplog):
    import builtins

    real_import = builtins.__import__

    def no_imagecodecs(name, *args, **kwargs):
        if name == "imagecodecs":
            raise ImportError("no imagecodecs here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_imagecodecs)
    monkeypatch.setattr(features, "_FAST_PNG", [])
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8)
    with caplog.at_level("WARNING", logger=features.__name__):
        assert encode_png_fast(pixels) == encode_png(pixels)
        encode_png_fast(pixels)
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "imagecodecs is not installed" in caplog.records[0].message


def test_the_cache_holds_fast_pngs_and_export_writes_compact_ones(tmp_path, fast_encoder):
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
