"""The ``medmnist`` drop-in (``from medmnist_plus_common import compat as medmnist``) on fake releases in the
official format: ``INFO`` and ``Evaluator`` equal to ``medmnist`` 3.0.2's for every task kind; then, without
``medmnist``: every item of 2D gray, RGB, multi-label and 3D files (PNG and raw storage), ``download=True`` against
a server on 127.0.0.1, a missing file, offline mode, a plain ``DataLoader`` with two workers. Item-by-item equality
with ``medmnist`` on the genuine files is in tests/genuine/test_compat_medmnist.py. Tests that need ``medmnist``
(``pip install --no-deps medmnist==3.0.2``) or torch skip without them.
"""

import importlib
import os
import pickle
import tempfile

import numpy as np
import pytest
from PIL import Image

from medmnist_plus_common import ChecksumError, DownloadError, compat, load_catalog
from medmnist_plus_common.release.download import md5sum
from medmnist_plus_common.evaluate import EvaluationError, read_predictions

from tests.fakes.releases import official_arrays, write_fake_release

pytestmark = pytest.mark.torch  # compared with medmnist 3.0.2 (and torch) in the CI stage that installs them

COUNTS = {"train": 7, "validation": 3, "test": 4}


def scale(image):
    """A torchvision-free transform for PIL images and volumes alike: float32 in [-1, 1]."""
    return np.asarray(image, dtype=np.float32) / 127.5 - 1.0


def shift(target):
    return target + 10


def to_tensor(image):
    import torch

    return torch.from_numpy(np.array(image))


def official_package(classes: bool = False):
    """medmnist 3.0.2, imported with HOME in a temporary folder (its import creates ~/.medmnist); the test skips
    without it, or, with ``classes``, without its dataset classes (they need torch)."""
    if importlib.util.find_spec("medmnist") is None:
        pytest.skip("medmnist is not installed (pip install --no-deps medmnist==3.0.2)")
    if classes:
        pytest.importorskip("torch")
    home = os.environ.get("HOME")
    os.environ["HOME"] = tempfile.mkdtemp(prefix="medmnist-home-")
    try:
        module = importlib.import_module("medmnist")
    finally:
        if home is None:
            os.environ.pop("HOME")
        else:
            os.environ["HOME"] = home
    if classes and not hasattr(module, "BreastMNIST"):
        pytest.skip("medmnist's dataset classes did not import (they need torch, PIL and numpy)")
    return module


@pytest.fixture(scope="module")
def medmnist():
    return official_package()


def assert_same_item(official, ours):
    (image, target), (our_image, our_target) = official, ours
    assert type(our_image) is type(image)
    if isinstance(image, Image.Image):
        assert (our_image.mode, our_image.size) == (image.mode, image.size)
        image, our_image = np.asarray(image), np.asarray(our_image)
    assert our_image.dtype == image.dtype and our_image.shape == image.shape
    assert np.array_equal(our_image, image)
    assert type(our_target) is type(target) and our_target.dtype == target.dtype
    assert our_target.shape == target.shape and np.array_equal(our_target, target)


# ------------------------------------------------------------------------------- equality with medmnist 3.0.2


def test_info_equals_medmnist_info(medmnist):
    assert list(compat.INFO) == list(medmnist.INFO) and len(compat.INFO) == 18
    for flag, info in medmnist.INFO.items():
        assert list(compat.INFO[flag]) == list(info), flag  # the same keys, in the same order
        assert compat.INFO[flag] == info, flag
        assert getattr(compat, info["python_class"]).flag == flag


def evaluation_release(root, flag, seed):
    """A release (official format) whose test split holds every class, for the evaluator."""
    facts = load_catalog()[flag]
    arrays = official_arrays(facts, 28, {"train": 4, "validation": 2, "test": 40}, seed=seed)
    rng = np.random.default_rng(seed)
    if facts.is_multilabel:
        labels = (rng.random((40, facts.num_classes)) < 0.3).astype(np.uint8)
        labels[0], labels[1] = 1, 0
    else:
        labels = rng.permutation(np.arange(40) % facts.num_classes).astype(np.uint8)[:, None]
    arrays["test_labels"] = labels
    write_fake_release(root, flag, 28, None, arrays=arrays)
    return facts


@pytest.mark.parametrize("flag", ["bloodmnist", "retinamnist", "pneumoniamnist", "chestmnist"])
def test_evaluator_equals_medmnist_for_every_task_kind(medmnist_datasets, tmp_path, flag):
    facts = evaluation_release(tmp_path, flag, seed=len(flag))
    scores = np.random.default_rng(1).random((40, 2 if facts.task == "binary" else facts.num_classes))
    expected = medmnist_datasets.Evaluator(flag, "test", root=str(tmp_path)).evaluate(scores)
    result = compat.Evaluator(flag, "test", root=str(tmp_path)).evaluate(scores, save_folder=str(tmp_path), run=3)
    assert result.AUC == pytest.approx(expected.AUC, rel=1e-12) and result.ACC == pytest.approx(expected.ACC)
    # the saved scores: medmnist's file name, and rows `index,score_0,...` that `medmnist-plus evaluate` reads
    saved = tmp_path / f"{flag}_test_[AUC]{result.AUC:.3f}_[ACC]{result.ACC:.3f}@3.csv"
    index, read = read_predictions(str(saved))
    assert np.array_equal(index, np.arange(40)) and np.array_equal(read, scores)


# ------------------------------------------------------------------------ official-format files, no medmnist


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    """Release files in the official format (np.savez_compressed) for a 2D gray, 2D RGB, multi-label and 3D set."""
    root = tmp_path_factory.mktemp("compat-root")
    arrays = {}
    for flag, size in (("pneumoniamnist", 64), ("bloodmnist", 28), ("chestmnist", 28), ("organmnist3d", 28)):
        _, arrays[flag] = write_fake_release(root, flag, size, COUNTS, seed=size)
    return str(root), arrays


def expected_item(arrays, facts, split, i, as_rgb):
    """The item medmnist 3.0.2's __getitem__ makes from the release arrays (its code, restated)."""
    pixels = arrays[f"{split}_images"][i]
    target = arrays[f"{split}_labels"][i].astype(int)
    if facts.dims == 3:
        return np.stack([pixels / 255.0] * (3 if as_rgb else 1), axis=0), target
    image = Image.fromarray(pixels)
    return (image.convert("RGB") if as_rgb else image), target


@pytest.mark.parametrize("flag, image_storage", [
    ("pneumoniamnist", "png"), ("bloodmnist", "png"), ("chestmnist", "png"), ("organmnist3d", "png"),
    ("pneumoniamnist", "raw"), ("bloodmnist", "raw")])  # 2D pixels stored raw too (volumes always are)
def test_items_of_official_format_files(synthetic_root, shared_cache, flag, image_storage):
    root, all_arrays = synthetic_root
    facts, arrays = load_catalog()[flag], all_arrays[flag]
    size = 64 if flag == "pneumoniamnist" else 28
    cls = getattr(compat, facts.title)
    for split in ("train", "val", "test"):
        for as_rgb in (False, True):
            ds = cls(split=split, root=root, size=size, as_rgb=as_rgb, verification_mode="no_checks",
                     image_storage=image_storage, cache_dir=shared_cache)
            assert len(ds) == len(arrays[f"{split}_images"]) and ds.size == size
            assert np.array_equal(ds.labels, arrays[f"{split}_labels"])
            for i in range(len(ds)):
                assert_same_item(expected_item(arrays, facts, split, i, as_rgb), ds[i])
            assert ds[0][1].shape == ((14,) if flag == "chestmnist" else (1,))
            with pytest.raises(IndexError):
                ds[len(ds)]
            assert len(list(ds)) == len(ds)  # iteration stops at the end, as over medmnist's datasets
    assert repr(ds).splitlines()[0] == f"Dataset {facts.title} of size {size} ({flag}{'' if size == 28 else '_64'})"
    assert f"    Root location: {root}" in repr(ds).splitlines()


def test_transforms_and_no_in_memory_copy(synthetic_root, shared_cache):
    root, arrays = synthetic_root
    ds = compat.OrganMNIST3D(split="test", root=root, transform=scale, target_transform=shift,
                             verification_mode="no_checks", cache_dir=shared_cache, mmap_mode="r")
    volume, target = ds[1]
    assert volume.dtype == np.float32 and volume.shape == (1, 28, 28, 28)
    assert np.array_equal(volume, scale(np.stack([arrays["organmnist3d"]["test_images"][1] / 255.0])))
    assert np.array_equal(target, arrays["organmnist3d"]["test_labels"][1].astype(int) + 10)
    with pytest.raises(AttributeError, match=r"imgs is not provided: it would hold the whole split in memory"):
        _ = ds.imgs
    # pickled (DataLoader workers that are not forked): the mapped cache is reopened, not copied
    copy = pickle.loads(pickle.dumps(ds))
    assert len(pickle.dumps(ds)) < arrays["organmnist3d"]["test_images"].nbytes
    assert np.array_equal(copy[3][0], ds[3][0]) and np.array_equal(copy[3][1], ds[3][1])


def test_classes_and_aliases():
    catalog = load_catalog()
    for facts in catalog:
        cls = getattr(compat, facts.title)
        assert cls.flag == facts.flag and cls.__name__ == facts.title
        assert issubclass(cls, compat.MedMNIST3D if facts.dims == 3 else compat.MedMNIST2D)
        assert cls.available_sizes == ([28, 64] if facts.dims == 3 else [28, 64, 128, 224])
    assert compat.OrganMNISTAxial is compat.OrganAMNIST and compat.OrganMNISTSagittal is compat.OrganSMNIST
    assert {facts.title for facts in catalog} <= set(compat.__all__)


def test_bad_split_and_size_name_what_is_allowed(synthetic_root):
    root, _ = synthetic_root
    with pytest.raises(ValueError, match=r"split must be 'train', 'val' or 'test' \(as in medmnist\), not "
                                         r"'validation'"):
        compat.BloodMNIST(split="validation", root=root)
    with pytest.raises(ValueError, match=r"OrganMNIST3D has no size 128: the official sizes are 28, 64"):
        compat.OrganMNIST3D(split="train", root=root, size=128)


def test_missing_file_without_download_says_what_to_do(tmp_path):
    (tmp_path / "other.npz").write_bytes(b"")
    with pytest.raises(compat.DatasetNotFoundError) as error:
        compat.DermaMNIST(split="train", root=str(tmp_path), size=128)
    message = str(error.value)
    assert isinstance(error.value, RuntimeError)  # medmnist raises RuntimeError here too
    assert message.startswith(f"{tmp_path / 'dermamnist_128.npz'}: not found (that folder holds ['other.npz'])")
    release = load_catalog()["dermamnist"].files[128]
    assert "pass download=True" in message and release.url in message and release.md5 in message
    assert "root=<the folder that holds it>" in message
    with pytest.raises(compat.DatasetNotFoundError, match=r"not found \(that folder does not exist\)"):
        compat.DermaMNIST(split="train", root=str(tmp_path / "absent"))
    with pytest.raises(compat.DatasetNotFoundError, match=r"dermamnist\.npz: not found") as error:
        compat.Evaluator("dermamnist", "test", root=str(tmp_path))
    assert "download=True" not in str(error.value)  # the Evaluator does not download (as in medmnist)
    assert not (tmp_path / "absent").exists()


def test_evaluator_errors_name_the_width_and_rows(tmp_path):
    evaluation_release(tmp_path, "bloodmnist", seed=3)
    evaluator = compat.Evaluator("bloodmnist", "test", root=str(tmp_path))
    with pytest.raises(EvaluationError, match=r"BloodMNIST \(multi-class\) has 8 classes, so scores are N x 8; "
                                              r"these are N x 3"):
        evaluator.evaluate(np.zeros((40, 3)))
    with pytest.raises(EvaluationError, match=r"shape \(39, 8\), but the split has 40 examples"):
        evaluator.evaluate(np.zeros((39, 8)))


# ------------------------------------------------------------------------------------- download=True


@pytest.fixture
def served(tmp_path, file_server, release_md5):
    """A pneumoniamnist-64 release (official format) served on 127.0.0.1 and published in the catalog."""
    path, arrays = write_fake_release(tmp_path / "upstream", "pneumoniamnist", 64, COUNTS, seed=5)
    file_server.files[path.name] = path.read_bytes()
    release_md5("pneumoniamnist", 64, md5sum(str(path)))
    return path, arrays


def test_download_true_fetches_into_root(served, file_server, tmp_path, cache_dir):
    path, arrays = served
    root = tmp_path / "new" / "root"  # created by download=True, as medmnist's default root is
    ds = compat.PneumoniaMNIST(split="val", size=64, root=str(root), download=True, base_url=file_server.base_url,
                               verification_mode="no_checks", cache_dir=cache_dir)
    assert sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")) == ["pneumoniamnist_64.npz"]
    assert md5sum(str(root / path.name)) == md5sum(str(path))
    assert [name for name, _ in file_server.requests] == [path.name]
    for i in range(len(ds)):
        assert_same_item((Image.fromarray(arrays["val_images"][i]), arrays["val_labels"][i].astype(int)), ds[i])
    # the file is there now: download=True does not fetch it again
    again = compat.PneumoniaMNIST(split="test", size=64, root=str(root), download=True, cache_dir=cache_dir,
                                  base_url=file_server.base_url, verification_mode="no_checks")
    assert len(again) == COUNTS["test"] and len(file_server.requests) == 1


def test_interrupted_download_resumes_from_the_mirror_in_the_environment(served, file_server, tmp_path, cache_dir,
                                                                          monkeypatch):
    path, arrays = served
    monkeypatch.setenv("MEDMNIST_PLUS_BASE_URL", file_server.base_url)
    file_server.plan[path.name] = ["drop", "ok"]
    ds = compat.PneumoniaMNIST(split="train", size=64, root=str(tmp_path / "root"), download=True,
                               verification_mode="no_checks", cache_dir=cache_dir)
    (_, first_range), (_, second_range) = file_server.requests
    assert first_range is None and second_range.startswith("bytes=") and int(second_range[6:-1]) > 0
    assert (tmp_path / "root" / path.name).read_bytes() == path.read_bytes()
    assert np.array_equal(np.asarray(ds[6][0]), arrays["train_images"][6])


def test_download_failing_its_md5_leaves_nothing_in_root(served, file_server, tmp_path, cache_dir):
    path, _ = served
    body = bytearray(path.read_bytes())
    body[len(body) // 2] ^= 0xFF
    file_server.files[path.name] = bytes(body)
    root = tmp_path / "root"
    with pytest.raises(ChecksumError, match=r"pneumoniamnist_64\.npz but its MD5 is .*nothing was cached"):
        compat.PneumoniaMNIST(split="train", size=64, root=str(root), download=True, base_url=file_server.base_url,
                              cache_dir=cache_dir)
    assert not [p.name for p in root.iterdir() if p.name.endswith(".npz") or p.name.endswith(".incomplete")]


# ---------------------------------------------------------------------------------------- DataLoader


@pytest.mark.parametrize("flag", ["bloodmnist", "organmnist3d"])
def test_plain_dataloader_with_two_workers(synthetic_root, shared_cache, flag):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    root, all_arrays = synthetic_root
    facts, arrays = load_catalog()[flag], all_arrays[flag]
    ds = getattr(compat, facts.title)(split="train", root=root, transform=to_tensor, verification_mode="no_checks",
                                      cache_dir=shared_cache)
    assert isinstance(ds, torch.utils.data.Dataset)
    batches = list(DataLoader(ds, batch_size=3, num_workers=2, shuffle=False))
    images = torch.cat([images for images, _ in batches]).numpy()
    targets = torch.cat([targets for _, targets in batches]).numpy()
    expected = arrays["train_images"] / 255.0 if facts.dims == 3 else arrays["train_images"]
    assert images.shape == ((len(ds), 1, 28, 28, 28) if facts.dims == 3 else (len(ds), 28, 28, 3))
    assert np.array_equal(images.reshape(expected.shape), expected)
    assert targets.dtype == np.int64 and np.array_equal(targets, arrays["train_labels"].astype(int))


def test_offline_mode_fails_at_once(served, file_server, tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DownloadError, match=r"pneumoniamnist_64\.npz: not found, and offline mode is on"):
        compat.PneumoniaMNIST(split="train", size=64, root=str(tmp_path / "root"), download=True,
                              base_url=file_server.base_url)
    assert file_server.requests == [] and not (tmp_path / "root").exists()


def test_the_default_root_is_the_home_medmnist_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDMNIST_PLUS_MEDMNIST_ROOT")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(compat.DatasetNotFoundError, match=r"^" + str(tmp_path / ".medmnist" / "octmnist.npz")):
        compat.OCTMNIST(split="test")
    monkeypatch.setenv("MEDMNIST_PLUS_MEDMNIST_ROOT", str(tmp_path / "elsewhere"))  # as the rest of the package
    with pytest.raises(compat.DatasetNotFoundError, match=r"^" + str(tmp_path / "elsewhere" / "octmnist.npz")):
        compat.OCTMNIST(split="test")
