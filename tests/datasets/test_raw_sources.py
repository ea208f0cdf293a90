"""Raw sources: exact geometry, manifests, bad input and genuine data (issue 8).

Geometry is checked on coordinate-coded images (each pixel says where it came from), so an offset that is off
by one shows. Manifest and bad-input errors must name the file (and the manifest line), say what is wrong and
what to do, and leave no cache folder that looks complete. That genuine sources regenerate their official rows bit
for bit through the real builder is proved in ``tests/genuine/test_raw_2d_exact.py``.
"""

import logging
import os

import numpy as np
import pytest
from PIL import Image

import builders
from medmnist_plus_common.recipes import imageops
from medmnist_plus_common.errors import RawRecordError, RawSourceError, UnknownConfigError
from medmnist_plus_common.hf.registry import recipe_for
from medmnist_plus_common.recipes.base import RawRecord

from .test_raw_2d import (all_rows, assert_no_complete_cache, build_raw, check_rows, copy_collection,
                          expected_image, write_manifest)


def coordinate_image(width, height):
    """RGB image whose pixel (x, y) holds (x % 256, y % 256, 16 * (x // 256) + y // 256)."""
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    return Image.fromarray(np.stack([x % 256, y % 256, 16 * (x // 256) + y // 256], -1).astype(np.uint8), "RGB")


def origin(image):
    """The (x, y) source coordinate of the top-left pixel of a coordinate-coded (cropped) image."""
    r, g, b = np.asarray(image)[0, 0].tolist()
    return r + 256 * (b // 16), g + 256 * (b % 16)


# -- exact geometry ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("difference, offset", [(0, 0), (1, 0), (2, 1), (3, 2), (5, 2), (7, 4), (163, 82),
                                                (160, 80), (257, 128), (255, 128), (88, 44)])
def test_crop_offset_rounds_halves_to_even(difference, offset):
    assert imageops.crop_offset(500 + difference, 500) == offset


@pytest.mark.parametrize("width, height", [(450, 449), (452, 449), (449, 454), (562, 471), (1003, 764),
                                           (384, 127), (1824, 1736), (600, 450)])
def test_square_crop_takes_the_centered_short_edge_window(width, height):
    side = min(width, height)
    crop = imageops.center_crop_square(coordinate_image(width, height))
    assert crop.size == (side, side)
    assert origin(crop) == (int(round((width - side) / 2.0)), int(round((height - side) / 2.0)))


def test_blood_crop_is_the_fixed_200x200_window_of_a_360x363_image(tmp_path):
    path = tmp_path / "basophil" / "BA_1.png"  # lossless, so the recipe's crop is seen exactly
    path.parent.mkdir()
    coordinate_image(360, 363).save(path)
    crop = recipe_for("bloodmnist").load(tmp_path, RawRecord("basophil/BA_1.png", 0))
    assert crop.size == (200, 200)
    assert origin(crop) == (80, 82)  # (360-200)/2 = 80; (363-200)/2 = 81.5 -> 82 (halves to even)
    assert np.asarray(crop)[199, 199].tolist()[:2] == [279 % 256, 281 % 256]


@pytest.mark.parametrize("flag, width, height", [("breastmnist", 500, 449), ("breastmnist", 449, 452),
                                                 ("pneumoniamnist", 384, 127), ("octmnist", 513, 512),
                                                 ("retinamnist", 1824, 1736), ("dermamnist", 600, 450)])
def test_each_recipe_crops_the_centered_square_with_the_measured_rounding(flag, width, height, tmp_path):
    """The recipes' load step, in each dataset's mode, on odd (1 and 3 mod 4) and even differences."""
    coordinate_image(width, height).save(tmp_path / "x.png")
    recipe = recipe_for(flag)
    crop = recipe.load(tmp_path, RawRecord("x.png", 0))
    side = min(width, height)
    assert crop.size == (side, side)
    expected = coordinate_image(width, height).convert(recipe.mode)
    left, top = int(round((width - side) / 2.0)), int(round((height - side) / 2.0))
    assert np.array_equal(np.asarray(crop), np.asarray(expected.crop((left, top, left + side, top + side))))


@pytest.mark.parametrize("size", [128, 224])
def test_a_127_px_short_edge_is_upsampled(size, tmp_path):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (127, 384), dtype=np.uint8)
    Image.fromarray(pixels, "L").save(tmp_path / "x.jpeg", quality=95)
    recipe = recipe_for("pneumoniamnist")
    loaded = recipe.load(tmp_path, RawRecord("x.jpeg", 0))
    assert loaded.size == (127, 127)
    out = recipe.render(loaded, size, recipe.default_variant(size))
    assert out.shape == (size, size) and out.dtype == np.uint8
    assert np.array_equal(out, expected_image(tmp_path / "x.jpeg", "pneumoniamnist", size))
    # the crop is the window from column 128 (257 / 2 = 128.5 -> 128)
    decoded = np.asarray(Image.open(tmp_path / "x.jpeg"))
    assert np.array_equal(np.asarray(loaded), decoded[:, 128:255])


def test_max_projection_takes_the_maximum_of_the_seven_slices(tmp_path):
    stack = np.zeros((7, 32, 32), np.uint8)
    for k in range(7):
        stack[k, k, :] = 10 + k  # each slice alone holds row k
        stack[k, :, 31 - k] = 100 + k  # and column 31 - k
    stack[3, 20, 5] = 250
    projection = imageops.max_projection(stack)
    assert projection.shape == (32, 32)
    assert projection[20, 5] == 250 and projection[2, 0] == 12 and projection[9, 31 - 4] == 104
    assert np.array_equal(projection, stack.max(axis=0))
    # through the TissueMNIST recipe: a 7-page TIFF, a .npy, and a 16-bit .npy (high byte kept)
    pages = [Image.fromarray(page, "L") for page in stack]
    (tmp_path / "0").mkdir()
    pages[0].save(tmp_path / "0" / "a.tif", save_all=True, append_images=pages[1:])
    np.save(tmp_path / "0" / "b.npy", stack)
    np.save(tmp_path / "0" / "c.npy", stack.astype(np.uint16) * 256 + 255)
    recipe = recipe_for("tissuemnist")
    for name in ("a.tif", "b.npy", "c.npy"):
        assert np.array_equal(np.asarray(recipe.load(tmp_path, RawRecord(f"0/{name}", 0))), projection), name
    np.save(tmp_path / "0" / "e.npy", (stack.astype(np.uint16) * 256 + 255).astype(">u2"))  # big-endian 16-bit
    assert np.array_equal(np.asarray(recipe.load(tmp_path, RawRecord("0/e.npy", 0))), projection)
    np.save(tmp_path / "0" / "f.npy", stack.astype(np.float32) / 255)  # would be cast to black
    with pytest.raises(RawRecordError, match=r"f\.npy: has pixels of type float32.*8- or 16-bit unsigned"):
        recipe.load(tmp_path, RawRecord("0/f.npy", 0))
    np.save(tmp_path / "0" / "d.npy", stack[:5])
    with pytest.raises(RawRecordError, match=r"d\.npy: has shape \(5, 32, 32\).*7 slices of 32x32"):
        recipe.load(tmp_path, RawRecord("0/d.npy", 0))


# -- manifests -----------------------------------------------------------------------------------------------


@pytest.fixture
def pneumonia(tmp_path):
    """A private synthetic Kermany chest X-ray collection: (data_dir, root, records by source part and label)."""
    data_dir, root, records = copy_collection("pneumoniamnist", tmp_path, {"train": 2, "test": 1})
    by = {}
    for rec, label, part in records:
        by.setdefault((part, label), []).append(rec)
    return data_dir, root, records, by


def test_a_manifest_fixes_split_and_sparse_official_indices(pneumonia, tmp_path, cache_dir):
    data_dir, root, records, by = pneumonia
    rows = [("train", 860, by["train", 1][0], 1), ("train", 32, by["train", 0][0], 0),
            ("val", 3, by["train", 0][1], 0), ("test", 600, by["test", 1][0], 1)]
    manifest = write_manifest(tmp_path / "manifest.csv", rows)
    builder = build_raw("pneumoniamnist", data_dir, cache_dir, manifest=str(manifest))
    built = all_rows(builder.as_dataset())
    assert {split: [r["index"] for r in rows] for split, rows in built.items()} == \
        {"train": [32, 860], "validation": [3], "test": [600]}
    split_name = {"train": "train", "val": "validation", "test": "test"}
    for split, index, record, label in rows:
        row = next(r for r in built[split_name[split]] if r["index"] == index)
        assert row["label"] == label
        assert np.array_equal(np.asarray(row["image"]), expected_image(root / record, "pneumoniamnist", 28))
    assert builder.provenance()["official_indices"] is True
    assert "REGENERATED" in builder.info.description and "NOT the official indices" not in builder.info.description


def test_a_manifest_of_every_record_at_another_size_through_the_umbrella(pneumonia, tmp_path, cache_dir):
    data_dir, root, records, by = pneumonia
    rows = [("test" if part == "test" else "train", i, rec, label) for i, (rec, label, part) in enumerate(records)]
    manifest = write_manifest(tmp_path / "m.csv", rows, header=("split", "index", "record"))  # no label column
    builder = builders.MedMNISTPlus(config_name="pneumoniamnist-48", source="raw", data_dir=str(data_dir),
                                    manifest=str(manifest), cache_dir=cache_dir)
    builder.download_and_prepare(verification_mode="no_checks")
    for split, rows_ in all_rows(builder.as_dataset()).items():
        for row in rows_:
            record, label = records[row["index"]][:2]
            assert row["label"] == label
            assert np.array_equal(np.asarray(row["image"]), expected_image(root / record, "pneumoniamnist", 48))


def test_a_manifest_saved_by_a_spreadsheet_with_a_bom_and_crlf(pneumonia, tmp_path, cache_dir):
    data_dir, root, records, by = pneumonia
    manifest = tmp_path / "excel.csv"
    manifest.write_bytes(b"\xef\xbb\xbfsplit,index,record,label\r\n"
                         + f"train,32,{by['train', 0][0]},0\r\ntest,5,{by['test', 1][0]},1\r\n".encode())
    builder = build_raw("pneumoniamnist", data_dir, cache_dir, manifest=str(manifest))
    built = all_rows(builder.as_dataset())
    assert {s: [r["index"] for r in rows] for s, rows in built.items()} == {"train": [32], "test": [5]}
    assert np.array_equal(np.asarray(built["test"][0]["image"]),
                          expected_image(root / by["test", 1][0], "pneumoniamnist", 28))


def manifest_error(pneumonia, tmp_path, cache_dir, rows, match, **kwargs):
    data_dir = pneumonia[0]
    manifest = write_manifest(tmp_path / "manifest.csv", rows)
    with pytest.raises(RawSourceError, match=match) as error:
        build_raw("pneumoniamnist", data_dir, cache_dir, manifest=str(manifest), **kwargs)
    assert str(manifest) in str(error.value)
    return error.value


def test_manifest_index_out_of_range(pneumonia, tmp_path, cache_dir):
    by = pneumonia[3]
    manifest_error(pneumonia, tmp_path, cache_dir, [("train", 0, by["train", 0][0], 0),
                                                    ("train", 4708, by["train", 0][1], 0)],
                   r"manifest\.csv, line 3: index 4708 is out of range.*train split has rows 0\.\.4707")
    manifest_error(pneumonia, tmp_path, cache_dir, [("test", -1, by["test", 0][0], 0)],
                   r"line 2: index -1 is out of range")


def test_manifest_duplicated_index(pneumonia, tmp_path, cache_dir):
    by = pneumonia[3]
    manifest_error(pneumonia, tmp_path, cache_dir, [("train", 7, by["train", 0][0], 0),
                                                    ("test", 7, by["test", 0][0], 0),
                                                    ("train", 7, by["train", 0][1], 0)],
                   r"line 4: train index 7 is listed twice \(also on line 2\)")


def test_manifest_duplicated_record(pneumonia, tmp_path, cache_dir):
    by = pneumonia[3]
    manifest_error(pneumonia, tmp_path, cache_dir, [("train", 1, by["train", 0][0], 0),
                                                    ("val", 2, by["train", 0][0], 0)],
                   r"line 3: record '.*' is listed twice \(also on line 2\)")


@pytest.mark.parametrize("record, match", [("../x.jpeg", "points outside the raw folder"),
                                           ("train/../../x.jpeg", "points outside the raw folder"),
                                           ("/etc/hostname", "is not a path relative to the raw folder")])
def test_manifest_record_outside_the_raw_folder(record, match, pneumonia, tmp_path, cache_dir):
    (pneumonia[1].parent / "x.jpeg").write_bytes((pneumonia[1] / pneumonia[2][0][0]).read_bytes())
    manifest_error(pneumonia, tmp_path, cache_dir, [("train", 0, record, 0)], r"line 2: record .*" + match)


def test_manifest_record_that_is_a_link_out_of_the_raw_folder(pneumonia, tmp_path, cache_dir):
    data_dir, root, records, by = pneumonia
    outside = tmp_path / "elsewhere.jpeg"
    outside.write_bytes((root / by["train", 0][0]).read_bytes())
    os.symlink(outside, root / "train" / "NORMAL" / "link.jpeg")
    os.symlink(tmp_path, root / "train" / "dirlink")
    manifest_error(pneumonia, tmp_path, cache_dir, [("train", 0, "train/NORMAL/link.jpeg", 0)],
                   r"line 2: record 'train/NORMAL/link\.jpeg' points outside the raw folder .*link")
    manifest_error(pneumonia, tmp_path, cache_dir, [("train", 0, by["train", 0][0], 0),
                                                    ("train", 1, "train/dirlink/elsewhere.jpeg", 0)],
                   r"line 3: record 'train/dirlink/elsewhere\.jpeg' points outside")


def test_manifest_missing_file_fails_or_is_skipped_and_reported(pneumonia, tmp_path, cache_dir, caplog):
    data_dir, root, records, by = pneumonia
    rows = [("train", 0, by["train", 0][0], 0), ("train", 1, "train/NORMAL/gone.jpeg", 0),
            ("test", 0, by["test", 1][0], 1)]
    manifest_error(pneumonia, tmp_path, cache_dir, rows,
                   r"line 3: record 'train/NORMAL/gone\.jpeg' does not exist under .*skip_bad=True")
    with caplog.at_level(logging.WARNING):
        builder = build_raw("pneumoniamnist", data_dir, cache_dir, manifest=str(tmp_path / "manifest.csv"),
                            skip_bad=True)
    assert {s: [r["index"] for r in rows_] for s, rows_ in all_rows(builder.as_dataset()).items()} == \
        {"train": [0], "test": [0]}
    assert any("Skipped" in m and "line 3" in m and "gone.jpeg" in m for m in caplog.messages), caplog.messages


def test_manifest_label_that_disagrees_with_the_collection(pneumonia, tmp_path, cache_dir):
    by = pneumonia[3]
    manifest_error(pneumonia, tmp_path, cache_dir, [("train", 0, by["train", 0][0], 0),
                                                    ("train", 5, by["train", 1][0], 0)],
                   r"line 3: label '0' of record .* differs from its label in the collection \(1\)")
    manifest_error(pneumonia, tmp_path, cache_dir, [("train", 0, by["train", 0][0], 2)],
                   r"line 2: bad label: labels are 0\.\.1, got 2")


def test_manifest_unknown_split_and_bad_header(pneumonia, tmp_path, cache_dir):
    by = pneumonia[3]
    manifest_error(pneumonia, tmp_path, cache_dir, [("training", 0, by["train", 0][0], 0)],
                   r"line 2: unknown split 'training'")
    manifest = tmp_path / "bad.csv"
    manifest.write_text("file,label\nx.jpeg,0\n")
    with pytest.raises(RawSourceError, match=r"bad\.csv: the header is \['file', 'label'\].*split,index,record"):
        build_raw("pneumoniamnist", pneumonia[0], cache_dir, manifest=str(manifest))


# -- bad input -----------------------------------------------------------------------------------------------


def test_truncated_image_is_named_or_skipped_with_one_row_fewer(pneumonia, tmp_path, cache_dir, caplog):
    data_dir, root, records, by = pneumonia
    victim = root / by["train", 1][0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 3])
    with pytest.raises(RawRecordError, match=rf"{victim.name}: cannot be read as an image .*truncated or "
                                             r"corrupt.*skip_bad=True") as error:
        build_raw("pneumoniamnist", data_dir, cache_dir)
    assert str(victim) in str(error.value)
    with caplog.at_level(logging.WARNING):
        builder = build_raw("pneumoniamnist", data_dir, cache_dir, skip_bad=True)
    counts = {split: len(rows) for split, rows in all_rows(builder.as_dataset()).items()}
    assert sum(counts.values()) == len(records) - 1
    assert any("Skipped a bad record" in m and victim.name in m for m in caplog.messages)
    assert not [m for m in caplog.messages if "Skipped" in m and "skip_bad=True" in m]  # it is on already


def test_garbage_bytes_in_a_tiff_are_named(tmp_path, cache_dir):
    data_dir, root, records = copy_collection("pathmnist", tmp_path, {"train": 1, "test": 1})
    victim = root / records[3][0]
    victim.write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    with pytest.raises(RawRecordError, match=rf"{victim.name}: cannot be read as an image"):
        build_raw("pathmnist", data_dir, cache_dir)


@pytest.mark.parametrize("flag, minimum", [("bloodmnist", "200x200"), ("pathmnist", "224x224")])
def test_wrongly_sized_image(flag, minimum, tmp_path, cache_dir):
    data_dir, root, records = copy_collection(flag, tmp_path, {"train": 1, "test": 1} if flag == "pathmnist" else 2)
    victim = root / records[2][0]
    image = Image.fromarray(np.full((100, 100, 3), 128, np.uint8), "RGB")
    image.save(victim, format="TIFF" if flag == "pathmnist" else "JPEG")
    with pytest.raises(RawRecordError, match=rf"{victim.name}: is 100x100 px, smaller than the {minimum} px"):
        build_raw(flag, data_dir, cache_dir)
    builder = build_raw(flag, data_dir, cache_dir, skip_bad=True)
    assert sum(builder.as_dataset()[s].num_rows for s in builder.as_dataset()) == len(records) - 1


def test_a_split_whose_every_record_is_skipped_is_left_out_and_the_rest_reads_back(tmp_path, cache_dir, caplog):
    data_dir, root, records = copy_collection("bloodmnist", tmp_path, 1, seed=5)  # 8 records: validation has 1
    builder = builders.BloodMNIST(config_name="28", source="raw", data_dir=str(data_dir), cache_dir=cache_dir,
                                  skip_bad=True)
    (validation_record,) = [a.record.record for a in builder.make_source(False)._planned().split("validation")]
    (root / validation_record).write_bytes(b"not a jpeg")
    with caplog.at_level(logging.WARNING):
        builder.download_and_prepare(verification_mode="no_checks")
    assert_no_complete_cache(builder)
    built = builder.as_dataset()
    assert set(built) == {"train", "test"} and built["train"].num_rows + built["test"].num_rows == 7
    assert "validation" not in builder.info.splits
    assert any("Skipped a bad record" in m and validation_record.split("/")[-1] in m for m in caplog.messages)


def test_a_folder_holding_another_collection_is_named(pneumonia, tmp_path, cache_dir):
    with pytest.raises(RawSourceError, match=r"does not hold the Kermany et al\. 2018 retinal OCT collection.*"
                                             r"It looks like the Kermany et al\. 2018 pediatric chest X-ray "
                                             r"collection \(PneumoniaMNIST\) instead") as error:
        build_raw("octmnist", pneumonia[0], cache_dir)
    assert "OCT/train/{CNV,DME,DRUSEN,NORMAL}" in str(error.value)  # the expected tree
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RawSourceError, match=r"empty: does not hold the Breast Ultrasound Images \(BUSI\)") as error:
        build_raw("breastmnist", empty, cache_dir)
    assert "looks like" not in str(error.value)
    with pytest.raises(RawSourceError, match=r"nowhere: no such folder\. Pass data_dir="):
        build_raw("breastmnist", tmp_path / "nowhere", cache_dir)


def test_a_collection_tree_without_records(tmp_path, cache_dir):
    for name in ("benign", "malignant", "normal"):
        (tmp_path / name).mkdir()
    with pytest.raises(RawSourceError, match=r"tree is there but holds no records"):
        build_raw("breastmnist", tmp_path, cache_dir)


def test_split_counts_that_disagree_with_the_catalog_need_no_checks(pneumonia, cache_dir):
    with pytest.raises(RawSourceError, match=r"split sizes train 4 \(official 4,708\), validation 0 \(official "
                                             r"524\), test 2 \(official 624\).*verification_mode='no_checks'"):
        build_raw("pneumoniamnist", pneumonia[0], cache_dir, verification_mode="basic_checks")
    with pytest.raises(RawSourceError, match=r"verification_mode='no_checks'"):
        build_raw("pneumoniamnist", pneumonia[0], cache_dir, verification_mode="all_checks")


@pytest.mark.parametrize("config", ["5", "2000", "0", "abc"])
def test_unknown_sizes(config, cache_dir, tmp_path):
    with pytest.raises(UnknownConfigError, match=rf"Unknown PneumoniaMNIST config '{config}'.* With "
                                                 r"source='raw', any size from 8 to 1024 can be regenerated"):
        builders.PneumoniaMNIST(config_name=config, source="raw", data_dir=str(tmp_path), cache_dir=cache_dir)
    with pytest.raises(UnknownConfigError, match=rf"Unknown MedMNIST\+ config 'pathmnist-{config}'.*any size "
                                                 r"from 8 to 1024"):
        builders.MedMNISTPlus(config_name=f"pathmnist-{config}", source="raw", data_dir=str(tmp_path),
                              cache_dir=cache_dir)


def test_an_official_source_config_at_a_non_official_size_points_at_raw(cache_dir):
    with pytest.raises(UnknownConfigError, match=r"PathMNIST has no official release at size 96 .*source='raw'"):
        builders.PathMNIST(config_name="96", cache_dir=cache_dir)
    with pytest.raises(UnknownConfigError, match=r"no official release at size 96 .*source='raw'"):
        builders.MedMNISTPlus(config_name="pathmnist-96", source="official", cache_dir=cache_dir)


def test_raw_source_without_data_dir_gives_the_instructions(cache_dir):
    with pytest.raises(RawSourceError, match=r"(?s)needs data_dir=.*zenodo\.org/records/1214456"):
        builders.PathMNIST(config_name="28", source="raw", cache_dir=cache_dir)


def test_a_failed_raw_build_can_be_rerun_once_the_file_is_fixed(pneumonia, cache_dir):
    data_dir, root, records, by = pneumonia
    victim = root / by["test", 0][0]
    data = victim.read_bytes()
    victim.write_bytes(data[:200])
    with pytest.raises(RawRecordError):
        build_raw("pneumoniamnist", data_dir, cache_dir)
    victim.write_bytes(data)
    builder = build_raw("pneumoniamnist", data_dir, cache_dir)
    check_rows("pneumoniamnist", all_rows(builder.as_dataset()), records, root, 28)
