"""The shared 3D volume operations and the VesselMNIST3D, AdrenalMNIST3D and NoduleMNIST3D recipes.

Sources are made by the tests in their true formats (OBJ meshes written by trimesh, NIfTI by nibabel, .npy by
numpy) and built through the real builders; the genuine IntrA meshes and the official AdrenalMNIST3D file in
``../shared/data`` are used where present (those tests skip otherwise).
"""

import logging
import os
import re
import sys

import numpy as np
import pytest
from scipy import ndimage

import builders
from builders.vesselmnist3d import VesselMNIST3D, default_grid
from medmnist_plus_common.recipes import volumeops
from medmnist_plus_common.errors import RawRecordError, RawSourceError
from medmnist_plus_common.recipes.base import RawRecord, Variant

VESSEL = VesselMNIST3D.RECIPE
DEGENERATE = "generated/vessel/obj/ArteryObjAN186-10.obj"


# -- volumeops ------------------------------------------------------------------------------------------------


class RecordingVolume:
    """An array-like that records what is sliced from it and refuses to be loaded whole."""

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.keys = array, array.shape, array.dtype, []

    def __getitem__(self, key):
        self.keys.append(key)
        return self.array[key]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole volume was loaded")


def test_zoom_mask_is_the_zoom_of_the_0_1_mask_thresholded_at_one_half():
    rng = np.random.default_rng(3)
    mask = ndimage.binary_opening(rng.random((64, 64, 64)) < 0.6, iterations=2).astype(np.uint8) * 255
    out = volumeops.zoom_mask(mask, 28)
    expected = ndimage.zoom(mask.astype(float) / 255, 28 / 64, order=3) > 0.5
    assert out.dtype == np.uint8 and out.shape == (28, 28, 28)
    assert set(np.unique(out)) <= {0, 255}
    np.testing.assert_array_equal(out == 255, expected)
    # any dtype, nonzero = inside
    np.testing.assert_array_equal(volumeops.zoom_mask(mask > 0, 28), out)
    np.testing.assert_array_equal(volumeops.zoom_mask(mask.astype(np.float32) / 7, 28), out)


def test_zoom_is_scipy_zoom_with_per_axis_factors():
    volume = np.random.default_rng(0).integers(0, 255, (20, 30, 40)).astype(np.uint8)
    out = volumeops.zoom(volume, (10, 15, 20), order=1)
    np.testing.assert_array_equal(out, ndimage.zoom(volume.astype(float), (0.5, 0.5, 0.5), order=1))
    assert out.dtype == np.float64
    gray = volumeops.resize_gray(volume, 64)
    assert gray.dtype == np.uint8 and gray.shape == (64, 64, 64)
    np.testing.assert_array_equal(gray, np.clip(np.rint(ndimage.zoom(volume.astype(float), (64 / 20, 64 / 30, 64 / 40),
                                                                      order=3)), 0, 255))


def test_center_crop_offsets_round_halves_to_even_like_the_2d_crop():
    volume = np.arange(9 * 10 * 11).reshape(9, 10, 11)
    crop = volumeops.center_crop_3d(volume, 4)
    # offsets round((9-4)/2)=2 (2.5 -> 2), round(6/2)=3, round(7/2)=4 (3.5 -> 4)
    np.testing.assert_array_equal(crop, volume[2:6, 3:7, 4:8])
    np.testing.assert_array_equal(volumeops.center_crop_3d(np.zeros((120,) * 3), 64).shape, (64, 64, 64))
    with pytest.raises(ValueError, match="cannot center-crop"):
        volumeops.center_crop_3d(volume, 10)


def test_crop_around_reads_only_the_window_and_pads_outside(tmp_path):
    import h5py
    import nibabel

    volume = np.random.default_rng(1).integers(0, 255, (30, 31, 32)).astype(np.int16)
    recorder = RecordingVolume(volume)
    out = volumeops.crop_around(recorder, (2, 15, 30), 8, pad_value=-1024)
    # starts round(c - 3.5), halves to even: -1.5 -> -2, 11.5 -> 12, 26.5 -> 26; clipped to the volume
    assert recorder.keys == [(slice(0, 6), slice(12, 20), slice(26, 32))]
    assert out.shape == (8, 8, 8) and out.dtype == np.int16
    np.testing.assert_array_equal(out[2:, :, :6], volume[0:6, 12:20, 26:32])
    assert (out[:2] == -1024).all() and (out[:, :, 6:] == -1024).all()
    # the volume's center gives the centered crop; a window outside the volume is all padding
    np.testing.assert_array_equal(volumeops.crop_around(volume, (14.5, 15, 15.5), 6),
                                  volumeops.center_crop_3d(volume, 6))
    assert (volumeops.crop_around(volume, (100, 0, 0), 5, pad_value=7) == 7).all()
    # the real lazy containers give the same window as numpy
    path = tmp_path / "v.nii.gz"
    nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), str(path))
    np.save(tmp_path / "v.npy", volume)
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["v"] = volume
    expected = volumeops.crop_around(volume, (28, 3, 10), (9, 7, 5), pad_value=-5)
    proxy = nibabel.load(str(path)).dataobj
    np.testing.assert_array_equal(volumeops.crop_around(proxy, (28, 3, 10), (9, 7, 5), pad_value=-5), expected)
    memmap = np.load(tmp_path / "v.npy", mmap_mode="r")
    np.testing.assert_array_equal(volumeops.crop_around(memmap, (28, 3, 10), (9, 7, 5), pad_value=-5), expected)
    with h5py.File(tmp_path / "v.h5", "r") as f:
        np.testing.assert_array_equal(volumeops.crop_around(f["v"], (28, 3, 10), (9, 7, 5), pad_value=-5), expected)


def test_hu_window_and_is_blank():
    out = volumeops.hu_window(np.array([-2000.0, -160.0, 40.0, 239.0, 240.0, 3000.0]), level=40, width=400)
    # -160..240 -> 0..255; 40 is 127.5 -> 128 (half to even), 239 is 254.36 -> 254
    np.testing.assert_array_equal(out, [0, 0, 128, 254, 255, 255])
    assert out.dtype == np.uint8
    assert volumeops.is_blank(np.zeros((4, 4, 4), np.uint8)) and not volumeops.is_blank(np.eye(3))


# -- VesselMNIST3D ----------------------------------------------------------------------------------------------


def build(builder_class, config, data_dir, cache_dir, **kwargs):
    builder = builder_class(config_name=config, source="raw", data_dir=str(data_dir), cache_dir=cache_dir,
                            **{k: kwargs.pop(k) for k in ("manifest", "skip_bad", "recipe_variant") if k in kwargs})
    builder.download_and_prepare(verification_mode="no_checks", **kwargs)
    return builder


def volumes_by_index(builder):
    out = {}
    for split, ds in builder.as_dataset().items():
        ds = ds.with_format("numpy", dtype=np.uint8)
        for row in ds:
            out[(split, int(row["index"]))] = (np.asarray(row["volume"]), int(row["label"]))
    return out


def write_obj(path, mesh):
    path.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(str(path), file_type="obj")
    return path


def open_tube(radius=4.0, height=20.0):
    """A cylinder without its caps: not watertight, as many IntrA segments are (open vessel ends)."""
    import trimesh

    cylinder = trimesh.creation.cylinder(radius=radius, height=height, sections=32)
    side = np.abs(cylinder.face_normals[:, 2]) < 0.5
    tube = trimesh.Trimesh(cylinder.vertices, cylinder.faces[side], process=False)
    tube.remove_unreferenced_vertices()
    return tube, cylinder


def test_an_open_tube_comes_out_filled_like_the_closed_cylinder(tmp_path, cache_dir):
    import trimesh
    from trimesh.voxel import creation

    tube, cylinder = open_tube()
    assert not tube.is_watertight
    root = tmp_path / "IntrA"  # the collection found one level down
    write_obj(root / "generated/vessel/obj/tube.obj", tube)
    write_obj(root / "generated/aneurysm/obj/closed.obj", cylinder)
    write_obj(root / "generated/aneurysm/obj/ball.obj", trimesh.creation.icosphere(subdivisions=3, radius=6.0))
    # the bare voxelization of the open tube leaves its inside empty: the repair is what fills it
    bare = creation.local_voxelize(tube, tube.centroid, pitch=1.0, radius=14, fill=True).matrix
    assert not bare[14, 14, 14]
    builder = build(builders.VesselMNIST3D, "28", tmp_path, cache_dir)
    built = list(volumes_by_index(builder).values())
    volumes = [v for v, _ in built]
    assert len(volumes) == 3 and all(v.shape == (28, 28, 28) and set(np.unique(v)) <= {0, 255} for v in volumes)
    recipe_tube = VESSEL.render(VESSEL.load(root, RawRecord("generated/vessel/obj/tube.obj", 0)), 28,
                                VESSEL.default_variant(28))
    recipe_closed = VESSEL.render(VESSEL.load(root, RawRecord("generated/aneurysm/obj/closed.obj", 1)), 28,
                                  VESSEL.default_variant(28))
    assert recipe_tube[14, 14, 14] == 255  # filled on its axis
    np.testing.assert_array_equal(recipe_tube, recipe_closed)
    assert any(np.array_equal(recipe_tube, v) for v in volumes)
    assert sorted(label for _, label in built) == [0, 1, 1]


def test_64_default_is_the_same_field_of_view_on_a_finer_grid(tmp_path):
    assert default_grid(28) == {"pitch": 1.0, "radius": 14}  # the measured 28 rule
    assert default_grid(64) == {"pitch": 29 / 65, "radius": 32}
    tube, cylinder = open_tube()
    write_obj(tmp_path / "generated/vessel/obj/c.obj", cylinder)
    segment = VESSEL.load(tmp_path, RawRecord("generated/vessel/obj/c.obj", 0))
    v64 = VESSEL.render(segment, 64, VESSEL.default_variant(64))
    v28 = VESSEL.render(segment, 28, VESSEL.default_variant(28))
    assert v64.shape == (64, 64, 64) and set(np.unique(v64)) == {0, 255}
    # the same physical cylinder fills the same fraction of the cube at both sizes (within a voxel's blur)
    assert abs((v64 > 0).mean() - (v28 > 0).mean()) < 0.01
    # the option changes the grid: 1 mm voxels over a 65 mm view shrink the cylinder in the cube
    wide = VESSEL.render(segment, 64, Variant(options=(("pitch", "1"), ("radius", "32"))))
    assert (wide > 0).mean() < 0.5 * (v64 > 0).mean()
    assert "29 mm field of view" in VESSEL.parameters(VESSEL.default_variant(64))["voxelize"]
    as_text = Variant(options=(("pitch", "29/65"), ("radius", "32")))  # as parse_variant gives them
    np.testing.assert_array_equal(VESSEL.render(segment, 64, as_text), v64)
    with pytest.raises(RawSourceError, match=r"pitch='fine' is not a float"):
        VESSEL.render(segment, 64, Variant(options=(("pitch", "fine"),)))


def test_a_tiny_segment_is_dropped_as_blank_at_28_and_64(tmp_path):
    import trimesh

    write_obj(tmp_path / "generated/vessel/obj/tiny.obj", trimesh.creation.icosphere(subdivisions=1, radius=0.4))
    segment = VESSEL.load(tmp_path, RawRecord("generated/vessel/obj/tiny.obj", 0))
    assert VESSEL.render(segment, 28, VESSEL.default_variant(28)) is None
    assert VESSEL.render(segment, 64, VESSEL.default_variant(64)) is None


def test_bad_meshes_name_the_file_and_can_be_skipped(tmp_path, cache_dir, caplog):
    import trimesh

    for i in range(8):  # enough good ones that no split is left empty by the two skipped records
        write_obj(tmp_path / f"generated/vessel/obj/good{i}.obj", trimesh.creation.icosphere(2, radius=3.0 + i))
    bad = tmp_path / "generated/aneurysm/obj/broken.obj"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(os.urandom(64) + b"\x00\xff" * 100)
    empty = tmp_path / "generated/aneurysm/obj/empty.obj"
    empty.write_text("# no vertices\n")
    for path in (bad, empty):
        with pytest.raises(RawRecordError, match=rf"{path.name}: .*(OBJ|faces).*skip_bad=True"):
            VESSEL.load(tmp_path, RawRecord(path.relative_to(tmp_path).as_posix(), 1))
    with pytest.raises(RawRecordError, match=r"(broken|empty)\.obj: "):
        build(builders.VesselMNIST3D, "28", tmp_path, cache_dir)
    assert not os.path.exists(os.path.join(cache_dir, "vesselmnist3d")) or not any(
        name == "dataset_info.json"
        for _, _, files in os.walk(os.path.join(cache_dir, "vesselmnist3d")) for name in files)
    with caplog.at_level(logging.WARNING):
        builder = build(builders.VesselMNIST3D, "28", tmp_path, str(tmp_path / "cache2"), skip_bad=True)
    assert len(volumes_by_index(builder)) == 8
    # trimesh guesses the encoding of bytes that are not UTF-8 with charset_normalizer when it is installed (requests
    # brings it, e.g. with pooch in the test extra): the random bytes then decode to text that holds no face
    assert re.search(r"broken\.obj: (cannot be read as an OBJ mesh \(its bytes are not text|holds no triangle faces)",
                     caplog.text)
    assert "broken.obj" in caplog.text and "empty.obj" in caplog.text
    counts = re.findall(r"VesselMNIST3D \w+: (\d+) record\(s\) skipped or dropped", caplog.text)
    assert sum(map(int, counts)) == 2


def test_a_folder_without_intra_says_what_it_expects(tmp_path, cache_dir):
    (tmp_path / "something").mkdir()
    with pytest.raises(RawSourceError, match=r"generated/vessel/obj"):
        build(builders.VesselMNIST3D, "28", tmp_path, cache_dir)


# -- AdrenalMNIST3D and NoduleMNIST3D ---------------------------------------------------------------------------


def ellipsoid(shape, center, radii):
    grid = np.indices(shape, dtype=float)
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii)) <= 1.0


def write_volume(path, volume):
    import nibabel

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".npy"):
        np.save(path, volume)
    else:
        nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), str(path))
    return path


def test_adrenal_masks_center_crop_to_64_and_zoom_to_28(tmp_path, cache_dir):
    masks = {"normal/a.nii.gz": ellipsoid((120,) * 3, (60, 58, 61), (20, 9, 14)).astype(np.uint8),
             "normal/b.npy": ellipsoid((120,) * 3, (59, 62, 60), (8, 25, 11)).astype(np.uint8) * 3,
             "hyperplasia/c.nii": ellipsoid((120,) * 3, (61, 60, 59), (15, 15, 22)).astype(np.uint8)}
    root = tmp_path / "masks"
    for name, mask in masks.items():
        write_volume(root / name, mask)
    write_volume(root / "hyperplasia/blank.npy", np.zeros((120,) * 3, np.uint8))
    expected64 = {name: np.where(m[28:92, 28:92, 28:92] != 0, 255, 0).astype(np.uint8) for name, m in masks.items()}
    for size in (64, 28):
        builder = build(builders.AdrenalMNIST3D, str(size), tmp_path, cache_dir)
        built = [v for v, _ in volumes_by_index(builder).values()]
        assert len(built) == 3  # the blank mask is dropped
        for name, crop in expected64.items():
            want = crop if size == 64 else (ndimage.zoom(crop / 255.0, 28 / 64, order=3) > 0.5).astype(np.uint8) * 255
            assert any(np.array_equal(v, want) for v in built), (name, size)
        assert "REGENERATED" in builder.info.description


def test_adrenal_mask_of_the_wrong_shape_names_the_file(tmp_path):
    from builders.adrenalmnist3d import AdrenalMNIST3D
    RECIPE = AdrenalMNIST3D.RECIPE

    write_volume(tmp_path / "normal/x.npy", np.zeros((100, 120, 120), np.uint8))
    with pytest.raises(RawRecordError, match=r"x\.npy: is a volume of 100x120x120 voxels, but .* are 120x120x120"):
        RECIPE.load(tmp_path, RawRecord("normal/x.npy", 0))
    truncated = tmp_path / "normal/y.nii.gz"
    write_volume(truncated, np.ones((120,) * 3, np.uint8))
    truncated.write_bytes(truncated.read_bytes()[:3000])
    with pytest.raises(RawRecordError, match=r"y\.nii\.gz: .*truncated or corrupt"):
        RECIPE.load(tmp_path, RawRecord("normal/y.nii.gz", 0))


def test_nodule_volumes_center_crop_to_28_and_upsample_to_64(tmp_path, cache_dir):
    from builders.nodulemnist3d import NoduleMNIST3D
    RECIPE = NoduleMNIST3D.RECIPE

    rng = np.random.default_rng(5)
    volumes = {}
    for name in ("benign/n1.npy", "malignant/n2.nii.gz", "malignant/n3.npy"):
        blob = ellipsoid((80,) * 3, rng.uniform(35, 45, 3), rng.uniform(5, 12, 3)) * 150.0
        volumes[name] = np.clip(blob + rng.normal(60, 20, (80,) * 3), 0, 255).astype(np.uint8)
        write_volume(tmp_path / name, volumes[name])
    for size in (28, 64):
        builder = build(builders.NoduleMNIST3D, str(size), tmp_path, cache_dir)
        built = [v for v, _ in volumes_by_index(builder).values()]
        assert len(built) == 3
        for name, volume in volumes.items():
            crop = volume[26:54, 26:54, 26:54]
            want = crop if size == 28 else np.clip(np.rint(ndimage.zoom(crop.astype(float), 64 / 28, order=3)), 0, 255)
            assert any(np.array_equal(v, want) for v in built), (name, size)
    write_volume(tmp_path / "benign/hu.npy", np.full((80,) * 3, -1000, np.int16))
    with pytest.raises(RawRecordError, match=r"hu\.npy: holds int16 values -1000\.\.-1000, not gray levels"):
        RECIPE.load(tmp_path, RawRecord("benign/hu.npy", 0))


def test_busi_like_folders_are_not_taken_for_nodule_volumes(tmp_path):
    from builders.nodulemnist3d import NoduleMNIST3D
    RECIPE = NoduleMNIST3D.RECIPE

    for name in ("benign", "malignant", "normal"):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name} (1).png").write_bytes(b"png")
    assert not RECIPE.is_root(tmp_path)
    with pytest.raises(RawSourceError, match="benign/\\*\\.npy"):
        RECIPE.find_root(tmp_path)


def test_a_missing_mesh_library_names_the_extra(tmp_path, monkeypatch):
    import trimesh

    write_obj(tmp_path / "generated/vessel/obj/a.obj", trimesh.creation.icosphere(2, radius=4.0))
    monkeypatch.setitem(sys.modules, "rtree", None)  # as if not installed
    with pytest.raises(RawSourceError, match=r"needs rtree, not installed here.*medmnist-plus\[recipes\]"):
        VESSEL.load(tmp_path, RawRecord("generated/vessel/obj/a.obj", 0))
