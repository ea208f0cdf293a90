"""The two genuine official release files in ../shared/data, built and checked pixel by pixel against numpy.

These files are not part of the repository; the tests skip when the folder is absent (a user's clone).
"""

import shutil

import datasets
import numpy as np
import pytest

from builders import AdrenalMNIST3D, BreastMNIST
from medmnist_plus_common.catalog import SPLITS, load_catalog
from medmnist_plus_common.release.download import md5sum

from .conftest import SHARED_DATA, assert_matches_release

REAL_FILES = {"breastmnist": "breastmnist.npz", "adrenalmnist3d": "adrenalmnist3d.npz"}


def real_file(flag):
    path = SHARED_DATA / REAL_FILES[flag]
    if not path.is_file():
        pytest.skip(f"{path} is absent (real release files live outside the repository)")
    return path


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
