"""The LiTS recipes (Organ{A,C,S}MNIST, OrganMNIST3D) on small LiTS-format collections made here.

The volumes are real NIfTI files (``.nii`` and ``.nii.gz``, written by nibabel) with known HU values, affines and
organ boxes; every expected pixel is computed in this file from the voxel arrays with explicit index formulas
(which voxel axis is which plane, which way it runs on screen, which slice is the center), not with the
recipe's own helpers.
"""

import gzip
import logging
import tracemalloc

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from builders import OrganAMNIST, OrganCMNIST, OrganMNIST3D, OrganSMNIST
from medmnist_plus_common.recipes import lits
from medmnist_plus_common.catalog import load_catalog
from medmnist_plus_common.errors import RawRecordError, RawSourceError
from medmnist_plus_common.hf.registry import recipe_for
from medmnist_plus_common.recipes.base import RawRecord, Variant, parse_variant, plan_records

LPS = np.diag([-0.8, -0.8, 2.5, 1.0])  # voxel axes run towards Left, Posterior, Superior (DICOM order)
RAS = np.diag([0.8, 0.8, 2.5, 1.0])
SHAPE = (40, 40, 24)

# boxes: code -> ((x0, x1), (y0, y1), (z0, z1)), half-open
BOXES_0 = {1: ((4, 30), (6, 33), (3, 19)), 2: ((20, 31), (10, 21), (5, 11)), 6: ((0, 6), (0, 6), (0, 4))}
BOXES_1 = {7: ((5, 25), (8, 28), (10, 20)), 10: ((30, 34), (12, 30), (2, 22))}
BOX_T0 = {9: ((10, 30), (5, 35), (4, 20))}
BOX_T59 = {11: ((8, 28), (12, 32), (6, 18))}


def hu_volume(seed, shape=SHAPE):
    """HU values over the whole abdominal window and beyond (-400..500), int16 as LiTS stores them."""
    return np.random.default_rng(seed).integers(-400, 500, size=shape).astype(np.int16)


def save(path, data, affine, no_orientation=False):
    image = nib.Nifti1Image(data, None if no_orientation else affine)
    if no_orientation:  # pixdim 0 and no qform/sform: a volume without spacing
        image.header["pixdim"][1:4] = 0
        image.set_qform(None, code=0)
        image.set_sform(None, code=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return data


def write_boxes(path, boxes, named=False):
    names = {v: k for k, v in lits.NAME_ALIASES.items() if len(k) < len(v)}  # Xu et al.'s short names
    lines = ["# organ boxes"]
    for code, ((x0, x1), (y0, y1), (z0, z1)) in boxes.items():
        name = lits.ORGAN_CODES[code]
        prefix = f"{names.get(name, name)} " if named else ""
        lines.append(f"{prefix}{code} {x0} {x1} {y0} {y1} {z0} {z1}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def window(hu):
    """The default abdominal window, written out: level 50, width 400 -> [-150, 250] -> 0..255, rounded."""
    return np.clip(np.rint((np.clip(hu.astype(float), -150, 250) + 150) * 255.0 / 400.0), 0, 255).astype(np.uint8)


def bilinear(gray, size):
    return np.asarray(Image.fromarray(gray, "L").resize((size, size), Image.BILINEAR))


def center(lo, hi):
    return lo + int(round((hi - lo - 1) / 2.0))


# On screen: axial rows anterior->posterior, columns patient right->left; coronal rows superior->inferior,
# columns right->left; sagittal rows superior->inferior, columns anterior->posterior.
def axial(v, box, ras=False):
    (x0, x1), (y0, y1), (z0, z1) = box
    image = v[x0:x1, y0:y1, center(z0, z1)].T  # LPS: rows = y (towards P), columns = x (towards L)
    return image[::-1, ::-1] if ras else image


def coronal(v, box, ras=False):
    (x0, x1), (y0, y1), (z0, z1) = box
    image = v[x0:x1, center(y0, y1), z0:z1].T[::-1, :]  # rows = z reversed (S at the top), columns = x
    return image[:, ::-1] if ras else image


def sagittal(v, box, ras=False):
    (x0, x1), (y0, y1), (z0, z1) = box
    image = v[center(x0, x1), y0:y1, z0:z1].T[::-1, :]  # rows = z reversed, columns = y
    return image[:, ::-1] if ras else image


def box3d(v, box, ras=False):
    (x0, x1), (y0, y1), (z0, z1) = box
    out = v[x0:x1, y0:y1, z0:z1].transpose(2, 1, 0)[::-1]  # D = z reversed, H = y, W = x
    return out[:, ::-1, ::-1] if ras else out


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    root = tmp_path_factory.mktemp("lits")
    v0 = hu_volume(0)
    v0[0:6, 0:6, 0:4] = -1000  # air: the bladder box there is blank after windowing
    save(root / "Training Batch 1" / "volume-0.nii", v0, LPS)
    v1 = save(root / "Training Batch 2" / "volume-1.nii.gz", hu_volume(1), RAS)
    t0 = save(root / "Test Data" / "test-volume-0.nii.gz", hu_volume(2), None, no_orientation=True)
    t59 = hu_volume(3)  # stored with axes 1 and 2 swapped (40 x 24 x 40), affine columns alike
    save(root / "Test Data" / "test-volume-59.nii", np.ascontiguousarray(t59.transpose(0, 2, 1)), LPS[:, [0, 2, 1, 3]])
    write_boxes(root / "annotations" / "segmentation-0.txt", BOXES_0)
    write_boxes(root / "annotations" / "segmentation-1.txt", BOXES_1)
    write_boxes(root / "annotations" / "test-segmentation-0.txt", BOX_T0, named=True)
    write_boxes(root / "annotations" / "test-segmentation-59.txt", BOX_T59)
    return root, {"v0": v0, "v1": v1, "t0": t0, "t59": t59}


def record(recipe, name):
    return next(r for r in recipe.records(recipe.find_root(ROOT[0])) if r.record == name)


ROOT = []


@pytest.fixture(autouse=True)
def _root(collection):
    ROOT[:] = [collection[0]]


# -- collection facts -------------------------------------------------------------------------------------


def test_organ_codes_map_to_each_catalog_by_name():
    catalog = load_catalog()
    assert sorted(lits.ORGAN_CODES.values()) == sorted(catalog["organamnist"].labels)
    for code, name in lits.ORGAN_CODES.items():  # OrganMNIST3D's catalog order is the code order
        assert catalog["organmnist3d"].labels[code - 1] == name
    assert catalog["organamnist"].labels == tuple(sorted(catalog["organamnist"].labels))  # alphabetical


def test_records_labels_and_source_parts(collection):
    root, _ = collection
    a, three = recipe_for("organamnist"), recipe_for("organmnist3d")
    records = {r.record: r for r in a.records(root)}
    assert set(records) == {"Training Batch 1/volume-0.nii#1", "Training Batch 1/volume-0.nii#2",
                            "Training Batch 1/volume-0.nii#6", "Training Batch 2/volume-1.nii.gz#7",
                            "Training Batch 2/volume-1.nii.gz#10", "Test Data/test-volume-0.nii.gz#9",
                            "Test Data/test-volume-59.nii#11"}
    labels = load_catalog()["organamnist"].labels
    assert labels[records["Training Batch 1/volume-0.nii#1"].label] == "liver"
    assert records["Training Batch 1/volume-0.nii#1"].label == 6  # alphabetical: liver is 7th
    assert records["Test Data/test-volume-0.nii.gz#9"].label == labels.index("lung-left")
    assert {r.record: r.label for r in three.records(root)}["Training Batch 2/volume-1.nii.gz#10"] == 9  # code - 1
    assert records["Test Data/test-volume-59.nii#11"].source_split == "test"
    assert records["Training Batch 2/volume-1.nii.gz#7"].source_split == "train"


def test_box_file_format_and_its_errors(tmp_path):
    good = tmp_path / "segmentation-3.txt"
    good.write_text("# comment\nliver 1 0 10 2 12 3 13\n\n6 1 2 3 4 5 6  # bladder\nkidney-l 3 0 1 0 1 0 1\n")
    boxes = lits.read_box_file(good)
    assert [(b.code, b.name, b.bounds, b.line) for b in boxes] == [
        (1, "liver", ((0, 10), (2, 12), (3, 13)), 2), (6, "bladder", ((1, 2), (3, 4), (5, 6)), 4),
        (3, "kidney-left", ((0, 1), (0, 1), (0, 1)), 5)]
    for text, words in [("1 0 10 2 12 3", "not an organ box line"), ("12 0 1 0 1 0 1", "organ code 12"),
                        ("heart 1 0 1 0 1 0 1", "names 'heart' but code 1 is 'liver'"),
                        ("brain 1 0 1 0 1 0 1", "unknown organ name 'brain'"),
                        ("1 0 1 0 1 0 1\n1 0 2 0 2 0 2", "listed twice")]:
        bad = tmp_path / "segmentation-4.txt"
        bad.write_text(text + "\n")
        with pytest.raises(RawSourceError) as err:
            lits.read_box_file(bad)
        assert str(bad) in str(err.value) and words in str(err.value) and "line" in str(err.value)


# -- geometry: plane, center slice, crop, orientation -----------------------------------------------------


def test_axial_coronal_sagittal_center_slices_of_an_lps_volume(collection):
    root, v = collection
    a, c, s = (recipe_for(f) for f in ("organamnist", "organcmnist", "organsmnist"))
    liver, kidney = BOXES_0[1], BOXES_0[2]
    # liver z 3..18 (16 voxels): center 3 + round(7.5) = 11; kidney z 5..10 (6): 5 + round(2.5) = 7 (half to even)
    assert center(*liver[2]) == 11 and center(*kidney[2]) == 7
    got = a.load(root, record(a, "Training Batch 1/volume-0.nii#1"))
    np.testing.assert_array_equal(got, v["v0"][4:30, 6:33, 11].T)
    assert got.shape == (27, 26)  # rows: the box's y extent, columns: its x extent
    np.testing.assert_array_equal(a.load(root, record(a, "Training Batch 1/volume-0.nii#2")), v["v0"][20:31, 10:21, 7].T)
    # coronal: y 6..32 -> 6 + 13 = 19; rows are z from superior (high z in LPS) down
    np.testing.assert_array_equal(c.load(root, record(c, "Training Batch 1/volume-0.nii#1")),
                                  v["v0"][4:30, 19, 3:19].T[::-1])
    # sagittal: x 20..30 -> 25; rows z reversed, columns y (anterior -> posterior)
    np.testing.assert_array_equal(s.load(root, record(s, "Training Batch 1/volume-0.nii#2")),
                                  v["v0"][25, 10:21, 5:11].T[::-1])


def test_a_ras_volume_is_flipped_to_the_same_display(collection):
    root, v = collection
    a, s = recipe_for("organamnist"), recipe_for("organsmnist")
    # heart z 10..19 -> 10 + round(4.5) = 14; RAS: x runs to the patient's right, y anterior: both reversed
    np.testing.assert_array_equal(a.load(root, record(a, "Training Batch 2/volume-1.nii.gz#7")),
                                  v["v1"][5:25, 8:28, 14].T[::-1, ::-1])
    # spleen x 30..33 (4 voxels) -> 30 + round(1.5) = 32 (floor would give 31)
    np.testing.assert_array_equal(s.load(root, record(s, "Training Batch 2/volume-1.nii.gz#10")),
                                  v["v1"][32, 12:30, 2:22].T[::-1, ::-1])


def test_swapped_axes_volume_is_reoriented_before_its_box(collection, tmp_path):
    root, v = collection
    for flag, expect in [("organamnist", axial), ("organcmnist", coronal), ("organsmnist", sagittal),
                         ("organmnist3d", box3d)]:
        recipe = recipe_for(flag)
        got = recipe.load(root, record(recipe, "Test Data/test-volume-59.nii#11"))
        np.testing.assert_array_equal(got, expect(v["t59"], BOX_T59[11]))
    # the same file with an affine written for the usual order (not for the stored, swapped axes)
    other = tmp_path / "usual-affine"
    save(other / "test-volume-59.nii", np.ascontiguousarray(v["t59"].transpose(0, 2, 1)), LPS)
    write_boxes(other / "test-segmentation-59.txt", BOX_T59)
    for flag, expect in [("organamnist", axial), ("organcmnist", coronal), ("organmnist3d", box3d)]:
        recipe = recipe_for(flag)
        got = recipe.load(other, recipe.records(other)[0])
        np.testing.assert_array_equal(got, expect(v["t59"], BOX_T59[11]))
    assert lits.stored_permutation((512, 75, 512)) == (0, 2, 1)
    assert lits.stored_permutation((512, 512, 75)) == (0, 1, 2)
    assert lits.stored_permutation((512, 512, 512)) == (0, 1, 2)


def test_volume_without_spacing_uses_voxel_indices(collection, caplog):
    root, v = collection
    a = recipe_for("organamnist")
    with caplog.at_level(logging.WARNING):
        got = a.load(root, record(a, "Test Data/test-volume-0.nii.gz#9"))
    np.testing.assert_array_equal(got, axial(v["t0"], BOX_T0[9]))  # taken as LPS voxel order
    assert "no voxel spacing or orientation" in caplog.text and "test-volume-0.nii.gz" in caplog.text


# -- window, resize, blank --------------------------------------------------------------------------------


def test_default_window_and_2d_render(collection):
    root, v = collection
    a = recipe_for("organamnist")
    nearest = Variant(kernel="nearest", options=(("level", 50.0), ("width", 400.0)))
    np.testing.assert_array_equal(a.render(np.array([[-1000.0, -150], [50, 251]], np.float32), 2, nearest),
                                  np.array([[0, 0], [128, 255]], np.uint8))  # level 50 width 400: -150..250
    np.testing.assert_array_equal(window(np.array([-150, 50, 250])), [0, 128, 255])
    loaded = a.load(root, record(a, "Training Batch 1/volume-0.nii#1"))
    for size in (28, 64, 37):
        np.testing.assert_array_equal(a.render(loaded, size, a.default_variant(size)),
                                      bilinear(window(v["v0"][4:30, 6:33, 11].T), size))
    narrow = a.render(loaded, 28, parse_variant(a.default_variant(28), "level=40,width=100"))
    hu = v["v0"][4:30, 6:33, 11].T.astype(float)
    expected = np.clip(np.rint((np.clip(hu, -10, 90) + 10) * 255.0 / 100.0), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(narrow, bilinear(expected, 28))


def test_blank_box_renders_none(collection):
    root, _ = collection
    for flag in ("organamnist", "organmnist3d"):
        recipe = recipe_for(flag)
        loaded = recipe.load(root, record(recipe, "Training Batch 1/volume-0.nii#6"))
        assert recipe.render(loaded, 28, recipe.default_variant(28)) is None


def test_3d_box_resized_to_a_cube(collection):
    root, v = collection
    recipe = recipe_for("organmnist3d")
    loaded = recipe.load(root, record(recipe, "Training Batch 2/volume-1.nii.gz#7"))
    expected_box = v["v1"][5:25, 8:28, 10:20].transpose(2, 1, 0)[::-1, ::-1, ::-1]
    np.testing.assert_array_equal(loaded, expected_box)
    gray = window(expected_box)
    for size in (28, 64):
        zoomed = ndimage.zoom(gray.astype(float), [size / n for n in gray.shape], order=3)
        np.testing.assert_array_equal(recipe.render(loaded, size, recipe.default_variant(size)),
                                      np.clip(np.rint(zoomed), 0, 255).astype(np.uint8))


# -- memory: only the box or the slice is read -------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_a_volume_is_never_loaded_whole(tmp_path, suffix, gz_reading):
    shape = (256, 256, 48)  # 6.3 MB of int16, 25 MB as float32
    data = np.zeros(shape, np.int16)
    data[100:116, 100:116, 20:28] = 100
    save(tmp_path / f"volume-0{suffix}", data, LPS)
    write_boxes(tmp_path / "segmentation-0.txt", {1: ((100, 116), (100, 116), (20, 28))})
    budget = data.nbytes // 8
    for flag in ("organmnist3d", "organamnist", "organsmnist"):
        recipe = recipe_for(flag)
        rec = recipe.records(tmp_path)[0]
        tracemalloc.start()
        try:
            loaded = recipe.load(tmp_path, rec)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert (loaded == 100).all()
        assert peak < budget, f"{flag} {suffix}: peak {peak:,} bytes for a {data.nbytes:,}-byte volume"


# -- split rule -------------------------------------------------------------------------------------------


def test_split_by_scan_115_16_70():
    facts = load_catalog()["organmnist3d"]
    records = [RawRecord(f"Training Batch/volume-{n}.nii#{code}", code - 1, "train")
               for n in range(131) for code in (1, 2, 3 + n % 5)]
    records += [RawRecord(f"Test/test-volume-{n}.nii#{code}", 0, "test") for n in range(70) for code in (1, 7)]
    rule = recipe_for("organmnist3d").split_rule
    assigned = rule.assign(records, facts, seed=0)
    scans = {}
    for item in assigned:
        scans.setdefault(item.split, set()).add(item.record.path)
    assert {split: len(paths) for split, paths in scans.items()} == {"train": 115, "validation": 16, "test": 70}
    owner = {}
    for item in assigned:  # every box of a scan in one split
        assert owner.setdefault(item.record.path, item.split) == item.split
    assert all(p.startswith("Test/") for p in scans["test"])
    assert sorted(a.record.record for a in assigned) == sorted(r.record for r in records)
    for split in scans:  # indices 0..n-1 per split, in collection order (volume number, organ code)
        items = [a for a in assigned if a.split == split]
        assert [a.index for a in items] == list(range(len(items)))
        keys = [lits.record_sort_key(a.record.record) for a in items]
        assert keys == sorted(keys)
    again = rule.assign(list(reversed(records)), facts, seed=0)
    assert [(a.split, a.index, a.record.record) for a in again] == [(a.split, a.index, a.record.record) for a in assigned]
    other = rule.assign(records, facts, seed=1)
    assert {a.record.path for a in other if a.split == "validation"} != scans["validation"]
    partial = rule.assign([r for r in records if r.path.endswith(("-1.nii", "-2.nii")) or "Test" in r.path][:40],
                          facts, seed=0)
    assert {a.split for a in partial} <= {"train", "validation", "test"}


# -- bad input --------------------------------------------------------------------------------------------


def _bad_collection(tmp_path, volume_bytes=None, boxes=None, volume=True):
    write_boxes(tmp_path / "segmentation-5.txt", boxes or {1: ((2, 10), (2, 10), (2, 8))})
    if volume:
        path = tmp_path / "volumes" / "volume-5.nii"
        save(path, hu_volume(5, (16, 16, 12)), LPS)
        if volume_bytes is not None:
            path.write_bytes(volume_bytes(path.read_bytes()))
    recipe = recipe_for("organamnist")
    return recipe, recipe.records(tmp_path)[0]


def test_corrupt_and_truncated_volumes_name_the_file(tmp_path, gz_reading):
    for i, damage in enumerate([lambda b: b"not a nifti file at all" * 20, lambda b: b[: len(b) // 2]]):
        folder = tmp_path / str(i)
        recipe, rec = _bad_collection(folder, damage)
        with pytest.raises(RawRecordError) as err:
            recipe.load(folder, rec)
        assert "volume-5.nii" in str(err.value) and "skip_bad=True" in str(err.value)
        assert "truncated" in str(err.value)
    folder = tmp_path / "gz"  # a truncated .nii.gz shows when a box needs the missing part (read lazily)
    write_boxes(folder / "segmentation-5.txt", {1: ((2, 10), (2, 10), (8, 12))})
    save(folder / "volume-5.nii.gz", hu_volume(5, (16, 16, 12)), LPS)
    raw = gzip.decompress((folder / "volume-5.nii.gz").read_bytes())
    (folder / "volume-5.nii.gz").write_bytes(gzip.compress(raw)[: len(gzip.compress(raw)) // 2])
    recipe = recipe_for("organamnist")
    with pytest.raises(RawRecordError) as err:
        recipe.load(folder, recipe.records(folder)[0])
    assert "volume-5.nii.gz" in str(err.value) and "corrupt" in str(err.value)


def test_boxes_outside_or_empty_and_box_files_without_volumes(tmp_path):
    for name, box, words in [("out", ((2, 10), (2, 17), (2, 8)), "leaves the volume"),
                             ("empty", ((2, 10), (4, 4), (2, 8)), "is empty")]:
        recipe, rec = _bad_collection(tmp_path / name, boxes={1: box})
        with pytest.raises(RawRecordError) as err:
            recipe.load(tmp_path / name, rec)
        assert "segmentation-5.txt, line 2" in str(err.value) and words in str(err.value)
        assert "16x16x12" in str(err.value)
    recipe, rec = _bad_collection(tmp_path / "novolume", volume=False)
    assert rec.record == "volume-5.nii#1"
    with pytest.raises(RawRecordError) as err:
        recipe.load(tmp_path / "novolume", rec)
    assert "segmentation-5.txt" in str(err.value) and "volume-5.nii" in str(err.value)
    assert "skip_bad=True" in str(err.value)


def test_a_folder_of_volumes_without_box_files(tmp_path):
    save(tmp_path / "volume-0.nii", hu_volume(0, (8, 8, 4)), LPS)
    with pytest.raises(RawSourceError) as err:
        plan_records(recipe_for("organamnist"), tmp_path)
    assert "segmentation-0.txt" in str(err.value) and "Xu et al." in str(err.value)


# -- the real builders ------------------------------------------------------------------------------------


def _build(builder_class, config, root, tmp_path, **kwargs):
    builder = builder_class(config_name=config, source="raw", data_dir=str(root), cache_dir=str(tmp_path / "cache"),
                            **kwargs)
    builder.download_and_prepare(verification_mode="no_checks")
    return builder.as_dataset()


def _rows(dataset, column):
    return {row["index"]: (np.asarray(row[column]), row["label"]) for row in dataset}


def test_organ_2d_builds_match_independent_pixels(collection, tmp_path, caplog, gz_reading):
    root, v = collection
    labels = load_catalog()["organamnist"].labels
    expected = {
        "organamnist": (OrganAMNIST, "28", 28, {
            0: axial(v["v0"], BOXES_0[1]), 1: axial(v["v0"], BOXES_0[2]), 3: axial(v["v1"], BOXES_1[7], ras=True),
            4: axial(v["v1"], BOXES_1[10], ras=True)},
            {0: axial(v["t0"], BOX_T0[9]), 1: axial(v["t59"], BOX_T59[11])}),
        "organcmnist": (OrganCMNIST, "64", 64, {0: coronal(v["v0"], BOXES_0[1])}, {1: coronal(v["t59"], BOX_T59[11])}),
        "organsmnist": (OrganSMNIST, "20", 20, {4: sagittal(v["v1"], BOXES_1[10], ras=True)},
                        {0: sagittal(v["t0"], BOX_T0[9])}),
    }
    train_labels = {0: "liver", 1: "kidney-right", 3: "heart", 4: "spleen"}
    for flag, (builder_class, config, size, train, test) in expected.items():
        with caplog.at_level(logging.WARNING):
            ds = _build(builder_class, config, root, tmp_path / flag)
        assert "volume-0.nii#6" in caplog.text and "blank" in caplog.text  # the air box is dropped, reported
        got_train, got_test = _rows(ds["train"], "image"), _rows(ds["test"], "image")
        assert sorted(got_train) == [0, 1, 3, 4] and sorted(got_test) == [0, 1]  # 2 train scans, no validation
        for index, hu in train.items():
            np.testing.assert_array_equal(got_train[index][0], bilinear(window(hu), size))
        for index, hu in test.items():
            np.testing.assert_array_equal(got_test[index][0], bilinear(window(hu), size))
        assert {i: labels[label] for i, (_, label) in got_train.items()} == train_labels
        assert labels[got_test[0][1]] == "lung-left" and labels[got_test[1][1]] == "pancreas"
        caplog.clear()


def test_organmnist3d_build_matches_independent_voxels(collection, tmp_path, gz_reading):
    root, v = collection
    ds = _build(OrganMNIST3D, "28", root, tmp_path)
    got_train, got_test = _rows(ds["train"], "volume"), _rows(ds["test"], "volume")
    assert sorted(got_train) == [0, 1, 3, 4] and sorted(got_test) == [0, 1]
    for rows, index, hu, code in [(got_train, 0, box3d(v["v0"], BOXES_0[1]), 1),
                                  (got_train, 3, box3d(v["v1"], BOXES_1[7], ras=True), 7),
                                  (got_test, 1, box3d(v["t59"], BOX_T59[11]), 11)]:
        gray = window(hu)
        zoomed = ndimage.zoom(gray.astype(float), [28 / n for n in gray.shape], order=3)
        np.testing.assert_array_equal(rows[index][0], np.clip(np.rint(zoomed), 0, 255).astype(np.uint8))
        assert rows[index][1] == code - 1


def test_a_partial_collection_builds_with_skip_bad(collection, tmp_path, caplog):
    """Box files of volumes that are not there (a user with one training batch): skip_bad builds the rest."""
    root, v = collection
    partial = tmp_path / "partial"
    save(partial / "Training Batch 1" / "volume-0.nii", v["v0"], LPS)
    write_boxes(partial / "annotations" / "segmentation-0.txt", BOXES_0)
    write_boxes(partial / "annotations" / "segmentation-77.txt", {1: ((0, 4), (0, 4), (0, 4))})
    with caplog.at_level(logging.WARNING):
        ds = _build(OrganMNIST3D, "28", partial, tmp_path, skip_bad=True)
    rows = _rows(ds["train"], "volume")
    assert sorted(label for _, label in rows.values()) == [0, 1]  # liver, kidney-right; bladder blank, 77 missing
    assert "segmentation-77.txt lists organ boxes of volume-77.nii" in caplog.text and "blank" in caplog.text
    with pytest.raises(RawRecordError):
        _build(OrganMNIST3D, "28", partial, tmp_path / "strict")


def test_worker_processes_read_the_unpacked_volumes_they_inherit(collection, gz_reading):
    """A forked worker inherits the parent's decompressed copies of .nii.gz volumes; it must read them at its own
    position (a shared one would mix the workers' reads)."""
    from medmnist_plus_common.tools.regenerate import render

    root, _ = collection
    recipe = recipe_for("organmnist3d")
    plan = plan_records(recipe, root)
    variants = {28: recipe.default_variant(28)}
    one = [r.pixels[28] for r in render("organmnist3d", root, plan.assigned, [28], variants, num_proc=1)]
    two = [r.pixels[28] for r in render("organmnist3d", root, plan.assigned, [28], variants, num_proc=2)]
    assert len(one) == len(plan.assigned) >= 6
    for a, b in zip(one, two):
        assert (a is None and b is None) or np.array_equal(a, b)


def test_a_forked_process_gets_its_own_read_position(tmp_path, monkeypatch):
    import multiprocessing

    from medmnist_plus_common.recipes.readers import nifti
    monkeypatch.setattr(nifti, "UNPACK_ABOVE", 0)
    monkeypatch.setattr(nifti, "_unpacked", type(nifti._unpacked)())
    save(tmp_path / "volume-0.nii.gz", hu_volume(0), LPS)
    copy = nifti._unpacked_copy(tmp_path / "volume-0.nii.gz")
    copy.seek(0)

    def child():
        nifti._unpacked_copy(tmp_path / "volume-0.nii.gz").seek(1000)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join()
    assert process.exitcode == 0 and copy.tell() == 0
