"""The ``medmnist`` drop-in against ``medmnist`` 3.0.2 on the genuine BreastMNIST and AdrenalMNIST3D release files:
every item of every split, with and without ``as_rgb`` and transforms, ``len``, ``repr``, ``labels``, and the
``Evaluator``. They skip without the files (see tests/genuine/samples.py), ``medmnist``
(``pip install --no-deps medmnist==3.0.2``) or torch.
"""

import numpy as np
import pytest
from PIL import Image

from medmnist_plus_common import compat

from tests.genuine.samples import FETCH_HINT, SHARED_DATA
from tests.integration.test_compat import assert_same_item, scale, shift

pytestmark = pytest.mark.torch  # compared with medmnist 3.0.2 (and torch) in the CI stage that installs them

GENUINE = {"BreastMNIST": "breastmnist.npz", "AdrenalMNIST3D": "adrenalmnist3d.npz"}


@pytest.fixture(scope="module")
def genuine_root():
    missing = [name for name in GENUINE.values() if not (SHARED_DATA / name).is_file()]
    if missing:
        pytest.skip(f"{missing} not in {SHARED_DATA}: {FETCH_HINT}")
    return str(SHARED_DATA)


@pytest.mark.parametrize("transforms", [False, True], ids=["plain", "transforms"])
@pytest.mark.parametrize("as_rgb", [False, True], ids=["gray", "as_rgb"])
@pytest.mark.parametrize("split", ["train", "val", "test"])
@pytest.mark.parametrize("name", sorted(GENUINE))
def test_items_equal_medmnist_on_genuine_files(medmnist_datasets, genuine_root, shared_cache, name, split, as_rgb,
                                               transforms):
    options = {"split": split, "root": genuine_root, "as_rgb": as_rgb}
    if transforms:
        options.update(transform=scale, target_transform=shift)
    official = getattr(medmnist_datasets, name)(**options)
    ours = getattr(compat, name)(**options, cache_dir=shared_cache)
    assert len(ours) == len(official) == official.info["n_samples"][split]
    assert repr(ours) == repr(official)
    assert (ours.flag, ours.size, ours.size_flag, ours.split, ours.info) == (
        official.flag, official.size, official.size_flag, official.split, official.info)
    assert np.array_equal(ours.labels, official.labels) and ours.labels.dtype == official.labels.dtype
    for i in range(len(official)):
        assert_same_item(official[i], ours[i])
    assert_same_item(official[-1], ours[-1])
    if not transforms:
        image, target = ours[0]
        if name.endswith("3D"):
            assert image.dtype == np.float64 and image.shape == ((3 if as_rgb else 1), 28, 28, 28)
            assert 0.0 <= image.min() and image.max() <= 1.0
        else:
            assert isinstance(image, Image.Image) and image.mode == ("RGB" if as_rgb else "L")
        assert target.shape == (1,) and target.dtype == np.int64


@pytest.mark.parametrize("name", sorted(GENUINE))
@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_evaluator_equals_medmnist_on_genuine_files(medmnist_datasets, genuine_root, name, split):
    flag = GENUINE[name][:-len(".npz")]
    official = medmnist_datasets.Evaluator(flag, split, root=genuine_root)
    ours = compat.Evaluator(flag, split, root=genuine_root)
    assert np.array_equal(ours.labels, official.labels)
    rng = np.random.default_rng(len(split))
    scores = rng.random((len(official.labels), 2))
    for y_score in (scores / scores.sum(1, keepdims=True), scores[:, 1]):  # N x 2, and the positive class alone
        expected, result = official.evaluate(y_score), ours.evaluate(y_score)
        assert result._fields == expected._fields == ("AUC", "ACC")
        assert result.AUC == pytest.approx(expected.AUC, rel=1e-12) and result.ACC == expected.ACC
