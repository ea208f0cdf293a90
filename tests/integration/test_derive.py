"""``medmnist-plus derive``: one official size written from another as the recipe makes it, labelled derived.

Source files are release files in the true official format, made here from sources the recipes read (adrenal
masks saved as NIfTI) or synthetic rows; the derived files are read back with ``np.load`` and the real builders.
"""

import json
import logging
import os

import numpy as np
import pytest
from PIL import Image

import builders
from builders.adrenalmnist3d import AdrenalMNIST3D
from builders.nodulemnist3d import NoduleMNIST3D
from builders.pathmnist import PathMNIST
from medmnist_plus_common.catalog import SPLITS, load_catalog
from medmnist_plus_common.cli.main import main
from medmnist_plus_common.tools.derive import DeriveError, derive
from medmnist_plus_common.recipes.base import RawRecord
from medmnist_plus_common.release.reader import member_name
from medmnist_plus_common.release.synthetic import write_synthetic_release
from medmnist_plus_common.release.writer import OFFICIAL_MEMBER_ORDER, write_npz_members
from medmnist_plus_common.recipes.volumeops import resize_gray, zoom_mask


ADRENAL, NODULE, PATH = AdrenalMNIST3D.RECIPE, NoduleMNIST3D.RECIPE, PathMNIST.RECIPE
COUNTS = {"train": 3, "validation": 2, "test": 2}


def ellipsoid(shape, center, radii):
    grid = np.indices(shape, dtype=float)
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii)) <= 1.0


def adrenal_64_release(tmp_path):
    """An AdrenalMNIST3D 64 release file made by the recipe from 120^3 masks saved as NIfTI; returns the crops."""
    import nibabel

    rng = np.random.default_rng(11)
    masks_dir, crops, labels = tmp_path / "masks", {}, {}
    for split in SPLITS:
        rows = []
        for i in range(COUNTS[split]):
            mask = ellipsoid((120,) * 3, rng.uniform(52, 68, 3), rng.uniform(6, 24, 3)).astype(np.uint8)
            name = f"{'normal' if i % 2 else 'hyperplasia'}/{split}{i}.nii.gz"
            (masks_dir / name).parent.mkdir(parents=True, exist_ok=True)
            nibabel.save(nibabel.Nifti1Image(mask, np.eye(4)), str(masks_dir / name))
            rows.append(ADRENAL.load(masks_dir, RawRecord(name, i % 2)))  # the 64^3 crop, as the recipe makes it
        crops[split] = np.stack([ADRENAL.render(c, 64, ADRENAL.default_variant(64)) for c in rows])
        labels[split] = np.array([[i % 2] for i in range(COUNTS[split])], dtype=np.uint8)
    data = tmp_path / "official"
    data.mkdir()
    members = {}
    for split in SPLITS:
        members[member_name(split, "images")] = (crops[split].shape, [crops[split]])
        members[member_name(split, "labels")] = (labels[split].shape, [labels[split]])
    write_npz_members(str(data / "adrenalmnist3d_64.npz"), {n: members[n] for n in OFFICIAL_MEMBER_ORDER})
    return data, crops, labels


def test_derived_adrenal_28_is_what_the_recipe_makes_and_loads_as_derived(tmp_path, capsys):
    data, crops, labels = adrenal_64_release(tmp_path)
    out = tmp_path / "derived"
    assert main(["derive", "adrenalmnist3d", "--from", "64", "--to", "28", "--data-dir", str(data),
                 "--out", str(out)]) == 0
    assert "adrenalmnist3d.npz" in capsys.readouterr().out
    with np.load(out / "adrenalmnist3d.npz") as derived:
        assert sorted(derived.files) == sorted(OFFICIAL_MEMBER_ORDER)
        for split in SPLITS:
            images = derived[member_name(split, "images")]
            assert images.dtype == np.uint8 and images.shape == (COUNTS[split], 28, 28, 28)
            np.testing.assert_array_equal(derived[member_name(split, "labels")], labels[split])
            for row, crop in zip(images, crops[split]):
                np.testing.assert_array_equal(row, zoom_mask(crop, 28))  # the zoom-and-threshold, row by row
                np.testing.assert_array_equal(row, ADRENAL.render(crop, 28, ADRENAL.default_variant(28)))
    provenance = json.loads((out / "medmnist_plus_regenerated.json").read_text())["files"]["adrenalmnist3d.npz"]
    assert provenance["source"] == "derived" and provenance["from"] == "adrenalmnist3d_64.npz"
    assert provenance["indices"] == "official (same rows as the source file)" and provenance["verified"] is False
    assert "zoom" in provenance["recipe"]["rule"]

    builder = builders.AdrenalMNIST3D(config_name="28", data_dir=str(out), cache_dir=str(tmp_path / "cache"))
    builder.download_and_prepare(verification_mode="no_checks")  # 7 rows, not the official 1,584
    assert "DERIVED by medmnist-plus, not the official release" in builder.info.description
    assert builder.provenance()["source"] == "derived"
    assert builder.provenance()["from"] == "adrenalmnist3d_64.npz"
    ds = builder.as_dataset(split="train").with_format("numpy", dtype=np.uint8)
    np.testing.assert_array_equal(np.stack(ds["volume"]), np.stack([zoom_mask(c, 28) for c in crops["train"]]))
    np.testing.assert_array_equal(ds["index"], np.arange(COUNTS["train"]))


def test_nodule_64_from_28_and_pathmnist_sizes_from_224(tmp_path):
    catalog = load_catalog()
    data = tmp_path / "data"
    data.mkdir()
    write_synthetic_release(str(data / "nodulemnist3d.npz"), catalog["nodulemnist3d"], 28, COUNTS, seed=1)
    write_synthetic_release(str(data / "pathmnist_224.npz"), catalog["pathmnist"], 224, COUNTS, seed=2)
    out = tmp_path / "out"
    derive("nodulemnist3d", 28, 64, data, out)
    for size in (28, 64, 128):
        derive("pathmnist", 224, size, data, out)
    with np.load(data / "nodulemnist3d.npz") as source, np.load(out / "nodulemnist3d_64.npz") as derived:
        for split in SPLITS:
            name = member_name(split, "images")
            assert derived[name].shape == (COUNTS[split], 64, 64, 64)
            for row, want in zip(derived[name], source[name]):
                np.testing.assert_array_equal(row, resize_gray(want, 64))
                np.testing.assert_array_equal(row, NODULE.render(want, 64, NODULE.default_variant(64)))
            np.testing.assert_array_equal(derived[member_name(split, "labels")], source[member_name(split, "labels")])
    with np.load(data / "pathmnist_224.npz") as source:
        for size in (28, 64, 128):
            with np.load(out / f"pathmnist{'' if size == 28 else f'_{size}'}.npz") as derived:
                images = derived["test_images"]
                assert images.shape == (COUNTS["test"], size, size, 3)
                for row, want in zip(images, source["test_images"]):
                    np.testing.assert_array_equal(row, np.asarray(Image.fromarray(want).resize((size, size),
                                                                                                 Image.BILINEAR)))
                    # what the raw recipe makes from the 224 px tile (which is the 224 release row)
                    np.testing.assert_array_equal(row, PATH.render(Image.fromarray(want), size,
                                                                   PATH.default_variant(size)))
    files = json.loads((out / "medmnist_plus_regenerated.json").read_text())["files"]
    assert sorted(files) == ["nodulemnist3d_64.npz", "pathmnist.npz", "pathmnist_128.npz", "pathmnist_64.npz"]


def test_fracture_28_from_64_is_the_recipes_gray_zoom(tmp_path):
    # FractureMNIST3D's recipe: 64 = the windowed 64^3 crop, 28 = resize_gray of that same crop
    from builders.fracturemnist3d import FractureMNIST3D
    FRACTURE = FractureMNIST3D.RECIPE

    data = tmp_path / "data"
    data.mkdir()
    write_synthetic_release(str(data / "fracturemnist3d_64.npz"), load_catalog()["fracturemnist3d"], 64, COUNTS)
    derive("fracturemnist3d", 64, 28, data, tmp_path / "out")
    with np.load(data / "fracturemnist3d_64.npz") as source, np.load(tmp_path / "out" / "fracturemnist3d.npz") as out:
        for split in SPLITS:
            name = member_name(split, "images")
            assert out[name].shape == (COUNTS[split], 28, 28, 28)
            for row, v64 in zip(out[name], source[name]):
                np.testing.assert_array_equal(row, resize_gray(v64, 28))
                # the recipe, given the HU crop whose window is this 64^3 row, makes this 28^3 row
                level, width = (float(dict(FRACTURE.default_variant(64).options)[k]) for k in ("level", "width"))
                hu = (level - width / 2) + v64.astype(float) * width / 255
                np.testing.assert_array_equal(FRACTURE.render(hu, 64, FRACTURE.default_variant(64)), v64)
                np.testing.assert_array_equal(FRACTURE.render(hu, 28, FRACTURE.default_variant(28)), row)


def test_pairs_the_recipe_does_not_allow_are_refused(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    out = tmp_path / "out"
    with pytest.raises(DeriveError, match=r"size 64 cannot be derived from size 28.*Allowed: --from 64 --to 28"):
        derive("adrenalmnist3d", 28, 64, data, out)
    with pytest.raises(DeriveError, match=r"PathMNIST: size 224 cannot be derived from size 28.*--from 224 --to 28"):
        derive("pathmnist", 28, 224, data, out)
    with pytest.raises(DeriveError, match=r"VesselMNIST3D: no size can be derived.*AdrenalMNIST3D 28 from 64"):
        derive("vesselmnist3d", 64, 28, data, out)
    with pytest.raises(DeriveError, match=r"has no official size 32"):
        derive("nodulemnist3d", 28, 32, data, out)
    with pytest.raises(DeriveError, match=r"adrenalmnist3d_64\.npz: not found.*put adrenalmnist3d_64\.npz there"):
        derive("adrenalmnist3d", 64, 28, data, out)
    assert not out.exists() or not os.listdir(out)
    # the command line says the same in one line, exit code 2
    assert main(["derive", "bloodmnist", "--from", "224", "--to", "28", "--data-dir", str(data), "--out",
                 str(out)]) == 2
    assert "error: BloodMNIST: no size can be derived" in capsys.readouterr().err


def test_an_official_looking_file_in_out_is_left_alone(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_synthetic_release(str(data / "nodulemnist3d.npz"), load_catalog()["nodulemnist3d"], 28, COUNTS)
    out = tmp_path / "out"
    out.mkdir()
    (out / "nodulemnist3d_64.npz").write_bytes(b"the user's own file")
    with pytest.raises(DeriveError, match=r"nodulemnist3d_64\.npz: exists and is not a file made by medmnist-plus"):
        derive("nodulemnist3d", 28, 64, data, out)
    assert (out / "nodulemnist3d_64.npz").read_bytes() == b"the user's own file"
    derive("nodulemnist3d", 28, 64, data, tmp_path / "fresh")
    derive("nodulemnist3d", 28, 64, data, tmp_path / "fresh")  # its own earlier output is replaced


def test_a_corrupt_source_fails_with_its_name_and_leaves_no_output(tmp_path):
    from medmnist_plus_common.errors import ReleaseFileError

    data = tmp_path / "data"
    data.mkdir()
    path = write_synthetic_release(str(data / "nodulemnist3d.npz"), load_catalog()["nodulemnist3d"], 28, COUNTS)
    blob = bytearray(open(path, "rb").read())
    middle = len(blob) // 3
    blob[middle:middle + 64] = bytes(64)  # damage the deflated pixels of a member
    open(path, "wb").write(bytes(blob))
    out = tmp_path / "out"
    with pytest.raises(ReleaseFileError, match=r"nodulemnist3d\.npz: .*corrupt"):
        derive("nodulemnist3d", 28, 64, data, out)
    assert not any(name.startswith("nodulemnist3d_64") for name in os.listdir(out))
    assert not (out / "medmnist_plus_regenerated.json").exists()


def test_a_non_official_source_is_said_once(tmp_path, caplog):
    """The release reader's row-count warning speaks of builds: derive drops it and says its own line, once."""
    (tmp_path / "in").mkdir()
    write_synthetic_release(str(tmp_path / "in" / "adrenalmnist3d_64.npz"), load_catalog()["adrenalmnist3d"], 64,
                            counts=COUNTS)
    with caplog.at_level(logging.WARNING):
        derive("adrenalmnist3d", 64, 28, tmp_path / "in", tmp_path / "out")
    counts = [m for m in caplog.messages if "rows" in m and "official" in m]
    assert len(counts) == 1 and "deriving the same rows" in counts[0], caplog.messages
