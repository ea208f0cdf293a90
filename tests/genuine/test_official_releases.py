"""The two genuine official release files (BreastMNIST-28, AdrenalMNIST3D-28): built and checked pixel by pixel
against numpy, and through derive, evaluate, montage and verify.

These files are not part of the repository (see tests/genuine/samples.py for where they are looked for and how to
fetch them); the tests skip when they are absent.
"""

import shutil

import datasets
import numpy as np
import pytest

from builders import AdrenalMNIST3D, BreastMNIST
from medmnist_plus_common.catalog import SPLITS, load_catalog
from medmnist_plus_common.release.download import md5sum

from medmnist_plus_common.cli import main
from medmnist_plus_common.evaluate import evaluate
from medmnist_plus_common.tools.derive import DeriveError, derive
from medmnist_plus_common.tools.montage import montage

from tests.fakes.releases import assert_matches_release
from tests.genuine.samples import SHARED_DATA, needs, require
from tests.integration.test_montage import assert_tiles_equal_samples
from tests.unit.test_evaluate import perfect_scores, random_scores, sklearn_figures

REAL_FILES = {"breastmnist": "breastmnist.npz", "adrenalmnist3d": "adrenalmnist3d.npz"}


def real_file(flag):
    require(REAL_FILES[flag])  # skips, saying how to fetch it, when absent
    return SHARED_DATA / REAL_FILES[flag]


def numpy_arrays(path):
    with np.load(path) as arrays:
        return {name: arrays[name] for name in arrays.files}


@pytest.mark.slow
@pytest.mark.parametrize("flag, builder_class", [("breastmnist", BreastMNIST), ("adrenalmnist3d", AdrenalMNIST3D)])
def test_real_release_builds_exactly(flag, builder_class, cache_dir):
    path = real_file(flag)
    facts = load_catalog()[flag]
    assert md5sum(str(path)) == facts.files[28].md5  # the genuine file: strict checks apply
    arrays = numpy_arrays(path)

    builder = builder_class(config_name="28", data_dir=str(path.parent), cache_dir=cache_dir)
    builder.download_and_prepare()  # default verification: MD5 and official row counts
    built = builder.as_dataset()
    assert {split: built[split].num_rows for split in SPLITS} == facts.split_counts
    assert_matches_release(built, arrays, facts)

    # Whole-column check through numpy formatting as well.
    train = built["train"].with_format("numpy")[:]
    column = "volume" if facts.dims == 3 else "image"
    if facts.dims == 3:
        assert np.array_equal(train[column].astype(np.uint8), arrays["train_images"])
    assert np.array_equal(train["label"], arrays["train_labels"][:, 0])
    assert np.array_equal(train["index"], np.arange(len(arrays["train_images"])))

    streamed = datasets.load_dataset("medmnist_plus", f"{flag}-28", data_dir=str(path.parent), streaming=True)
    assert_matches_release(streamed, arrays, facts)


def test_official_package_folder_is_reused_after_md5_check(tmp_path, monkeypatch, cache_dir):
    path = real_file("breastmnist")
    root = tmp_path / "dot-medmnist"
    root.mkdir()
    shutil.copy(path, root / "breastmnist.npz")
    monkeypatch.setenv("MEDMNIST_PLUS_MEDMNIST_ROOT", str(root))
    # No data_dir and a closed download port: the build can only succeed from ~/.medmnist.
    built = datasets.load_dataset("medmnist_plus", "breastmnist-28", cache_dir=cache_dir, split="test")
    assert built.num_rows == 156
    arrays = numpy_arrays(path)
    assert np.array_equal(np.stack([np.asarray(im) for im in built["image"]]), arrays["test_images"])


def test_official_package_folder_with_a_damaged_file_is_not_used(tmp_path, monkeypatch, cache_dir, file_server):
    path = real_file("breastmnist")
    root = tmp_path / "dot-medmnist"
    root.mkdir()
    damaged = bytearray(path.read_bytes())
    damaged[1000] ^= 0xFF
    (root / "breastmnist.npz").write_bytes(bytes(damaged))
    monkeypatch.setenv("MEDMNIST_PLUS_MEDMNIST_ROOT", str(root))
    file_server.files["breastmnist.npz"] = path.read_bytes()
    built = datasets.load_dataset("medmnist_plus", "breastmnist-28", cache_dir=cache_dir,
                                  base_url=file_server.base_url, split="validation")
    assert [name for name, _ in file_server.requests] == ["breastmnist.npz"]  # downloaded instead
    assert np.array_equal(np.stack([np.asarray(im) for im in built["image"]]), numpy_arrays(path)["val_images"])


@needs("adrenalmnist3d.npz")
def test_the_genuine_28_file_cannot_be_a_source_for_64(tmp_path):
    # The genuine file here is size 28: the recipe makes 28 from 64, never 64 from 28.
    with pytest.raises(DeriveError, match=r"size 64 cannot be derived from size 28"):
        derive("adrenalmnist3d", 28, 64, SHARED_DATA, tmp_path / "out")


def test_genuine_breastmnist_file(tmp_path):
    with np.load(real_file("breastmnist")) as arrays:
        labels = arrays["test_labels"]
    facts = load_catalog()["breastmnist"]
    scores = random_scores(facts, len(labels), seed=0, ties=True)
    result = evaluate("breastmnist-28", "test", scores, data_dir=str(SHARED_DATA))
    assert result.n == 156 == facts.split_counts["test"]
    assert (result.auc, result.acc) == pytest.approx(sklearn_figures("binary", labels, scores), abs=1e-12)
    assert evaluate("breastmnist-28", "test", perfect_scores(facts, labels), data_dir=str(SHARED_DATA)).auc == 1.0


@pytest.mark.parametrize("flag", ["breastmnist", "adrenalmnist3d"])
def test_genuine_files(flag, tmp_path):
    with np.load(real_file(flag)) as data:
        images = data["test_images"]
    result = montage(f"{flag}-28", "test", n=16, data_dir=str(SHARED_DATA))
    result.save(str(tmp_path / "m.png"))
    assert len(result.tiles) == 16
    assert_tiles_equal_samples(tmp_path / "m.png", result, images, load_catalog()[flag], zoom=2)


@pytest.mark.parametrize("flag", ["breastmnist", "adrenalmnist3d"])
def test_genuine_files_pass_against_catalog_and_file(flag, tmp_path, capsys):
    path = real_file(flag)
    code = main(["verify", f"{flag}-28", "--against", str(path), "--data-dir", str(SHARED_DATA), "--cache-dir",
                 str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert code == 0, out
    counts = load_catalog()[flag].split_counts
    assert f"{sum(counts.values()):,} rows in 3 splits compared exactly" in out and "note:" not in out
