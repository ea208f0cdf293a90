"""FractureMNIST3D (RibFrac) and SynapseMNIST3D (EM volume) recipes on small collections made here in the true
formats: NIfTI CT and instance-label volumes with RibFrac's info CSVs, an HDF5 (and a TIFF-stack) EM volume with
a synapse table. Expected voxels are computed here with explicit padding, window and zoom formulas."""

import logging

import h5py
import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from builders import FractureMNIST3D, SynapseMNIST3D
from builders import fracturemnist3d as fracture
from medmnist_plus_common.recipes.readers import nifti
from medmnist_plus_common.catalog import load_catalog
from medmnist_plus_common.errors import RawRecordError, RawSourceError
from medmnist_plus_common.recipes.base import plan_records

LPS = np.diag([-0.7, -0.7, 1.25, 1.0])
RAS = np.diag([0.7, 0.7, 1.25, 1.0])
SHAPE = (48, 48, 40)


def save(path, data, affine):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))


def rounded_center(labels, instance):
    return tuple(int(round(c)) for c in np.argwhere(labels == instance).mean(axis=0))


def crop64(volume, center, pad=-1024):
    """The 64^3 window starting at round(c - 31.5) (halves to even), padded with ``pad`` outside the volume."""
    padded = np.pad(volume.astype(np.float32), 64, constant_values=pad)
    starts = [int(round(c - 31.5)) + 64 for c in center]
    return padded[tuple(slice(s, s + 64) for s in starts)]


def lps_display(crop):  # D = z reversed (superior first), H = y (posterior down), W = x (towards the left)
    return crop.transpose(2, 1, 0)[::-1]


def ras_display(crop):
    return crop.transpose(2, 1, 0)[::-1, ::-1, ::-1]


def bone_window(hu):  # level 400, width 1200: -200..1000 HU -> 0..255, rounded
    return np.clip(np.rint((np.clip(hu.astype(float), -200, 1000) + 200) * 255.0 / 1200.0), 0, 255).astype(np.uint8)


def resized(gray, size):
    zoomed = ndimage.zoom(gray.astype(float), [size / n for n in gray.shape], order=3)
    return np.clip(np.rint(zoomed), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def ribfrac(tmp_path_factory):
    root = tmp_path_factory.mktemp("ribfrac")
    rng = np.random.default_rng(7)
    scans = {}
    for public_id, affine, suffix, part in [("RibFrac1", LPS, ".nii.gz", "train-images-1/Part1"),
                                            ("RibFrac2", RAS, ".nii", "train-images-1/Part1"),
                                            ("RibFrac421", LPS, ".nii.gz", "val-images")]:
        ct = rng.integers(-1000, 1500, size=SHAPE).astype(np.int16)
        labels = np.zeros(SHAPE, np.uint8)
        save(root / f"ribfrac-{part}" / f"{public_id}-image{suffix}", ct, affine)
        scans[public_id] = [ct, labels, part]
    l1 = scans["RibFrac1"][1]
    l1[20:24, 30:33, 10:15] = 1  # displaced, interior
    l1[26, 30, 10] = 1  # an extra voxel: the center of mass is not the box center
    l1[0:5, 44:48, 0:4] = 2  # buckle at the corner: the crop leaves the volume
    l1[30:33, 5:8, 30:34] = 3  # segmental: dropped
    l1[10:12, 10:12, 20:22] = 4  # uncertain type: dropped
    scans["RibFrac2"][1][12:18, 20:26, 25:31] = 1  # nondisplaced
    scans["RibFrac421"][1][30:36, 15:20, 18:23] = 1  # displaced, validation part -> test split
    for public_id, (ct, labels, part) in scans.items():
        save(root / f"ribfrac-{part.replace('images', 'labels')}" / f"{public_id}-label.nii.gz", labels,
             LPS if public_id != "RibFrac2" else RAS)
    (root / "ribfrac-train-info-1.csv").write_text(
        "public_id,label_id,label_code\nRibFrac1,0,0\nRibFrac1,1,1\nRibFrac1,2,3\nRibFrac1,3,4\nRibFrac1,4,-1\n"
        "RibFrac2,0,0\nRibFrac2,1,2\n")
    (root / "ribfrac-val-info.csv").write_text("public_id,label_id,label_code\nRibFrac421,0,0\nRibFrac421,1,1\n")
    return root, scans


def test_ribfrac_records_classes_drops_and_parts(ribfrac, caplog):
    root, _ = ribfrac
    names = load_catalog()["fracturemnist3d"].labels
    with caplog.at_level(logging.WARNING):
        records = {r.record: r for r in FractureMNIST3D.RECIPE.records(root)}
    assert {k: (names[r.label], r.source_split) for k, r in records.items()} == {
        "ribfrac-train-images-1/Part1/RibFrac1-image.nii.gz#1": ("displaced rib fracture", "train"),
        "ribfrac-train-images-1/Part1/RibFrac1-image.nii.gz#2": ("buckle rib fracture", "train"),
        "ribfrac-train-images-1/Part1/RibFrac2-image.nii#1": ("nondisplaced rib fracture", "train"),
        "ribfrac-val-images/RibFrac421-image.nii.gz#1": ("displaced rib fracture", "validation")}
    assert FractureMNIST3D.RECIPE.last_dropped == {"segmental": 1, "uncertain type": 1}
    assert "2 fracture(s) dropped: 1 segmental, 1 uncertain type" in caplog.text
    plan = plan_records(FractureMNIST3D.RECIPE, root)
    assert [a.record.record for a in plan.split("test")] == ["ribfrac-val-images/RibFrac421-image.nii.gz#1"]


def test_fracture_crop_center_padding_orientation_and_window(ribfrac, gz_reading):
    root, scans = ribfrac
    recipe = FractureMNIST3D.RECIPE
    records = {r.record: r for r in recipe.records(root)}
    ct1, l1, _ = scans["RibFrac1"]
    assert rounded_center(l1, 1) == (22, 31, 12)  # mean x 21.7 (the extra voxel), y 30.95, z 11.9
    cases = [("ribfrac-train-images-1/Part1/RibFrac1-image.nii.gz#1", ct1, rounded_center(l1, 1), lps_display),
             ("ribfrac-train-images-1/Part1/RibFrac1-image.nii.gz#2", ct1, rounded_center(l1, 2), lps_display),
             ("ribfrac-train-images-1/Part1/RibFrac2-image.nii#1", scans["RibFrac2"][0],
              rounded_center(scans["RibFrac2"][1], 1), ras_display)]
    for name, ct, center, display in cases:
        loaded = recipe.load(root, records[name])
        expected = display(crop64(ct, center))
        np.testing.assert_array_equal(loaded, expected)
        np.testing.assert_array_equal(recipe.render(loaded, 64, recipe.default_variant(64)), bone_window(expected))
        np.testing.assert_array_equal(recipe.render(loaded, 28, recipe.default_variant(28)),
                                      resized(bone_window(expected), 28))
    corner = recipe.load(root, records["ribfrac-train-images-1/Part1/RibFrac1-image.nii.gz#2"])
    assert rounded_center(l1, 2) == (2, 46, 2)  # x 0..4 -> 2, y 44..47 -> 45.5 -> 46 (even), z 0..3 -> 1.5 -> 2
    assert (corner == -1024).sum() > 0.5 * 64 ** 3  # most of the window is outside the scan: air padding


def test_only_the_crop_is_read_from_the_ct(ribfrac, monkeypatch):
    root, _ = ribfrac
    asked = []
    original = nifti.NiftiVolume.read

    def recording(self, window):
        asked.append((self.path.name, tuple((s.start, s.stop) for s in window)))
        return original(self, window)

    monkeypatch.setattr(nifti.NiftiVolume, "read", recording)
    fracture.RibFrac._centers_cache = (None, {})
    recipe = FractureMNIST3D.RECIPE
    record = next(r for r in recipe.records(root) if r.record.endswith("RibFrac1-image.nii.gz#1"))
    recipe.load(root, record)
    image_reads = [w for name, w in asked if "-image" in name]
    label_reads = [w for name, w in asked if "-label" in name]
    assert image_reads and all(hi - lo <= 64 for w in image_reads for lo, hi in w)
    assert all(hi - lo <= fracture.SLAB for w in label_reads for lo, hi in [w[2]])  # the labels slab by slab


def test_ribfrac_test_part_and_bad_inputs(ribfrac, tmp_path):
    test_part = tmp_path / "test"
    save(test_part / "ribfrac-test-images" / "RibFrac501-image.nii.gz", np.zeros((8, 8, 8), np.int16), LPS)
    with pytest.raises(RawSourceError) as err:
        plan_records(FractureMNIST3D.RECIPE, test_part)
    assert "test scans" in str(err.value) and "not public" in str(err.value)
    (test_part / "ribfrac-test-info.csv").write_text("public_id,label_id,label_code\nRibFrac501,1,1\n")
    with pytest.raises(RawSourceError) as err:
        FractureMNIST3D.RECIPE.records(test_part)
    assert "ribfrac-test-info.csv, line 2" in str(err.value) and "not public" in str(err.value)

    root, scans = ribfrac
    bad = tmp_path / "bad"
    save(bad / "RibFrac3-image.nii.gz", scans["RibFrac1"][0], LPS)
    save(bad / "RibFrac3-label.nii.gz", scans["RibFrac1"][1][:, :, :20], LPS)
    save(bad / "RibFrac4-label.nii.gz", scans["RibFrac1"][1], LPS)
    save(bad / "RibFrac5-image.nii.gz", scans["RibFrac1"][0], LPS)
    save(bad / "RibFrac5-label.nii.gz", scans["RibFrac1"][1], LPS)
    (bad / "ribfrac-train-info-1.csv").write_text(
        "public_id,label_id,label_code\nRibFrac3,1,1\nRibFrac4,1,1\nRibFrac5,9,2\n")
    records = {r.record.split("#")[0]: r for r in FractureMNIST3D.RECIPE.records(bad)}
    for name, words in [("RibFrac3-image.nii.gz", "not a pair"), ("RibFrac4-image.nii.gz", "CT image is not there"),
                        ("RibFrac5-image.nii.gz", "no voxel of instance 9")]:
        with pytest.raises(RawRecordError) as err:
            FractureMNIST3D.RECIPE.load(bad, records[name])
        assert words in str(err.value) and "skip_bad=True" in str(err.value)


# -- SynapseMNIST3D ---------------------------------------------------------------------------------------

EM_SHAPE = (40, 160, 150)  # z, y, x
SYNAPSES = [(20, 80, 75, "excitatory"), (3, 10, 140, "0"), (35.4, 100.6, 20.2, "1"), (12, 60, 60, "inhibitory")]


@pytest.fixture(scope="module")
def em(tmp_path_factory):
    root = tmp_path_factory.mktemp("em")
    volume = np.random.default_rng(3).integers(1, 256, size=EM_SHAPE).astype(np.uint8)
    with h5py.File(root / "mitoem_r.h5", "w") as f:
        f.create_dataset("main", data=volume, chunks=(8, 32, 32))
    (root / "synapses.csv").write_text("z,y,x,label\n" + "".join(f"{z},{y},{x},{l}\n" for z, y, x, l in SYNAPSES))
    return root, volume


def em_crop(volume, center):
    """34 x 128 x 128 voxels (1024 nm at 30 x 8 x 8 nm) from round(c - (s - 1) / 2), zero outside."""
    shape = (34, 128, 128)
    padded = np.pad(volume, 128, constant_values=0)
    starts = [int(round(c - (s - 1) / 2.0)) + 128 for c, s in zip(center, shape)]
    return padded[tuple(slice(a, a + s) for a, s in zip(starts, shape))]


@pytest.mark.slow
def test_synapse_records_labels_and_cube(em):
    root, volume = em
    recipe = SynapseMNIST3D.RECIPE
    records = recipe.records(root)
    assert [r.record for r in records] == [f"mitoem_r.h5#synapses:{i}" for i in range(4)]
    assert [r.label for r in records] == [1, 0, 1, 0]
    for number, (record, (z, y, x, _)) in enumerate(zip(records, SYNAPSES)):
        cube = recipe.load(root, record)
        crop = em_crop(volume, (z, y, x))
        expected = ndimage.zoom(crop.astype(float), (128 / 34, 1, 1), order=3)  # z to the 8 nm pitch
        np.testing.assert_allclose(cube, expected, atol=1e-9)
        if number not in (0, 2):  # the renders of an interior and a fractional location (zooms are slow)
            continue
        np.testing.assert_array_equal(recipe.render(cube, 28, recipe.default_variant(28)), resized(expected, 28))
        np.testing.assert_array_equal(recipe.render(cube, 64, recipe.default_variant(64)),
                                      np.clip(np.rint(expected[32:96, 32:96, 32:96]), 0, 255).astype(np.uint8))
        from medmnist_plus_common.recipes.base import parse_variant

        np.testing.assert_array_equal(recipe.render(cube, 64, parse_variant(recipe.default_variant(64), "size64=resize")),
                                      resized(expected, 64))
    border = em_crop(volume, SYNAPSES[1][:3])
    assert (border[:, :54, :] == 0).all() and (border[:, :, -53:] == 0).all()  # padded outside the volume


def test_synapse_tiff_stack_and_section_folder_read_as_hdf5(em, tmp_path):
    root, volume = em
    pages = [Image.fromarray(page) for page in volume]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    (tmp_path / "synapses.csv").write_text("id,z,y,x,label\nsyn-a,20,80,75,1\n")
    record = SynapseMNIST3D.RECIPE.records(tmp_path)[0]
    assert record.record == "stack.tif#synapses:syn-a"
    from_h5 = SynapseMNIST3D.RECIPE.load(root, SynapseMNIST3D.RECIPE.records(root)[0])
    np.testing.assert_array_equal(SynapseMNIST3D.RECIPE.load(tmp_path, record), from_h5)
    # a folder of one PNG per section (as MitoEM is distributed), named in the table's volume column
    folder = tmp_path / "sections"
    (tmp_path / "sections").mkdir()
    for z, page in enumerate(pages):
        page.save(folder / f"im{z:04d}.png")
    (tmp_path / "synapses.csv").write_text("id,z,y,x,label,volume\nsyn-a,20,80,75,1,sections\n")
    record = SynapseMNIST3D.RECIPE.records(tmp_path)[0]
    assert record.record == "sections#synapses:syn-a"
    np.testing.assert_array_equal(SynapseMNIST3D.RECIPE.load(tmp_path, record), from_h5)


def test_synapse_labels_must_be_brought(tmp_path):
    with h5py.File(tmp_path / "em.h5", "w") as f:
        f.create_dataset("main", data=np.ones((4, 4, 4), np.uint8))
    (tmp_path / "synapses.csv").write_text("z,y,x\n1,1,1\n")
    with pytest.raises(RawSourceError) as err:
        plan_records(SynapseMNIST3D.RECIPE, tmp_path)
    assert "synapses.csv" in str(err.value) and "not public" in str(err.value)
    (tmp_path / "synapses.csv").write_text("z,y,x,label\n1,1,9,1\n")
    record = SynapseMNIST3D.RECIPE.records(tmp_path)[0]
    with pytest.raises(RawRecordError) as err:
        SynapseMNIST3D.RECIPE.load(tmp_path, record)
    assert "outside the volume" in str(err.value)
    (tmp_path / "em.h5").write_bytes(b"not hdf5")
    with pytest.raises(RawRecordError) as err:
        SynapseMNIST3D.RECIPE.load(tmp_path, record)
    assert "em.h5" in str(err.value) and "corrupt" in str(err.value)


# -- the real builders ------------------------------------------------------------------------------------


def _build(builder_class, config, root, tmp_path):
    builder = builder_class(config_name=config, source="raw", data_dir=str(root), cache_dir=str(tmp_path / "cache"))
    builder.download_and_prepare(verification_mode="no_checks")
    return builder.as_dataset()


def test_fracture_builds_match_independent_voxels(ribfrac, tmp_path, gz_reading):
    root, scans = ribfrac
    ct1, l1, _ = scans["RibFrac1"]
    for config, size in (("28", 28), ("64", 64)):
        ds = _build(FractureMNIST3D, config, root, tmp_path / config)
        rows = {(split, row["index"]): (np.asarray(row["volume"]), row["label"]) for split in ds for row in ds[split]}
        assert sorted(k[0] for k in rows) == ["test", "train", "train", "train"]  # 3 train-part fractures, 1 val
        volume, label = rows[("test", 0)]
        expected = bone_window(lps_display(crop64(scans["RibFrac421"][0], rounded_center(scans["RibFrac421"][1], 1))))
        np.testing.assert_array_equal(volume, expected if size == 64 else resized(expected, 28))
        assert label == 2  # displaced
        train = [rows[k] for k in sorted(rows) if k[0] == "train"]  # index 0: RibFrac1's instance 1
        expected_first = bone_window(lps_display(crop64(ct1, rounded_center(l1, 1))))
        np.testing.assert_array_equal(train[0][0], expected_first if size == 64 else resized(expected_first, 28))


@pytest.mark.slow
def test_synapse_build_matches_independent_voxels(em, tmp_path):
    root, volume = em
    ds = _build(SynapseMNIST3D, "28", root, tmp_path)
    got = {}
    for split in ds:
        for row in ds[split]:
            got[row["label"], int(np.asarray(row["volume"]).sum())] = np.asarray(row["volume"])
    assert len(got) == 4
    for z, y, x, label in SYNAPSES:
        cube = ndimage.zoom(em_crop(volume, (z, y, x)).astype(float), (128 / 34, 1, 1), order=3)
        expected = resized(cube, 28)
        assert any(np.array_equal(v, expected) for v in got.values())
