"""One test per dataset, driven by the split counts of its fake release (TFDS style), plus every config.

Each fake release is written with ``np.savez_compressed`` in the true format (official member names and order,
uint8, official shapes, channel layout and label kind) with small split counts that differ per dataset.
"""

import datasets
import numpy as np
import pytest

import builders
from builders import MedMNISTPlus
from medmnist_plus_common.catalog import SPLITS, load_catalog
from medmnist_plus_common.hf.features import features_for

from tests.fakes.releases import assert_matches_release, write_fake_release

# (train, validation, test) rows of each dataset's fake release, and the size it is built at.
FAKE_SPLITS = {
    "pathmnist": ((5, 2, 3), 64),
    "chestmnist": ((6, 3, 2), 28),
    "dermamnist": ((4, 2, 2), 128),
    "octmnist": ((5, 3, 3), 28),
    "pneumoniamnist": ((3, 2, 4), 64),
    "retinamnist": ((6, 2, 2), 28),
    "breastmnist": ((4, 3, 2), 224),
    "bloodmnist": ((5, 2, 2), 28),
    "tissuemnist": ((7, 2, 3), 28),
    "organamnist": ((4, 4, 2), 28),
    "organcmnist": ((3, 2, 2), 64),
    "organsmnist": ((5, 2, 3), 28),
    "organmnist3d": ((4, 2, 2), 28),
    "nodulemnist3d": ((3, 2, 3), 64),
    "adrenalmnist3d": ((5, 2, 2), 28),
    "fracturemnist3d": ((4, 3, 2), 28),
    "vesselmnist3d": ((3, 2, 2), 28),
    "synapsemnist3d": ((4, 2, 3), 64),
}


def test_every_dataset_has_a_fake_release_table_entry_and_a_builder():
    flags = [facts.flag for facts in load_catalog()]
    assert sorted(FAKE_SPLITS) == sorted(flags)
    assert sorted(builders.BUILDERS) == sorted(flags)
    for flag, builder_class in builders.BUILDERS.items():
        assert [c.name for c in builder_class.BUILDER_CONFIGS] == [str(s) for s in load_catalog()[flag].sizes]
    assert len(MedMNISTPlus.BUILDER_CONFIGS) == 60


@pytest.mark.parametrize("flag", sorted(FAKE_SPLITS))
def test_dataset_builder_load_dataset_and_streaming(flag, tmp_path, cache_dir):
    (train, validation, test), size = FAKE_SPLITS[flag]
    counts = {"train": train, "validation": validation, "test": test}
    facts = load_catalog()[flag]
    data_dir = tmp_path / "release"
    _, arrays = write_fake_release(data_dir, flag, size, counts, seed=len(flag))

    # The dataset's own builder, configs = sizes, cache folder named for the dataset.
    builder = builders.BUILDERS[flag](config_name=str(size), data_dir=str(data_dir), cache_dir=cache_dir)
    builder.download_and_prepare(verification_mode="no_checks")
    built = builder.as_dataset()
    assert {split: built[split].num_rows for split in SPLITS} == counts
    assert built["train"].features == features_for(facts, size)
    assert f"/{flag}/{size}-" in builder.cache_dir
    assert_matches_release(built, arrays, facts)

    # The same through load_dataset("medmnist_plus", "<flag>-<size>"), map-style and streaming.
    loaded = datasets.load_dataset("medmnist_plus", f"{flag}-{size}", data_dir=str(data_dir), cache_dir=cache_dir,
                                   verification_mode="no_checks")
    assert_matches_release(loaded, arrays, facts)
    streamed = datasets.load_dataset("medmnist_plus", f"{flag}-{size}", data_dir=str(data_dir), streaming=True)
    assert_matches_release(streamed, arrays, facts)

    # And the builder's own streaming.
    assert_matches_release(builder.as_streaming_dataset(), arrays, facts)


@pytest.mark.slow
@pytest.mark.parametrize("config", MedMNISTPlus.BUILDER_CONFIGS, ids=lambda c: c.name)
def test_every_official_config_builds_from_its_release_file(config, tmp_path, cache_dir):
    facts = load_catalog()[config.flag]
    counts = {"train": 3, "validation": 2, "test": 2}
    _, arrays = write_fake_release(tmp_path, config.flag, config.size, counts, seed=config.size)
    builder = MedMNISTPlus(config_name=config.name, data_dir=str(tmp_path), cache_dir=cache_dir)
    builder.download_and_prepare(verification_mode="no_checks")
    built = builder.as_dataset()
    assert builder.cache_dir.startswith(cache_dir + "/medmnist_plus/")
    column = "volume" if facts.dims == 3 else "image"
    assert built["test"].features[column] == features_for(facts, config.size)[column]
    assert_matches_release(built, arrays, facts)
    if facts.dims == 2:
        assert built["train"][0]["image"].mode == ("RGB" if facts.channels == 3 else "L")


def test_chestmnist_multilabel_feature_and_label_names(tmp_path, cache_dir):
    counts = {"train": 4, "validation": 2, "test": 2}
    _, arrays = write_fake_release(tmp_path, "chestmnist", 28, counts)
    arrays["train_labels"][:] = 0
    arrays["train_labels"][1, [0, 13]] = 1
    write_fake_release(tmp_path, "chestmnist", 28, counts, arrays=arrays)
    built = datasets.load_dataset("medmnist_plus", "chestmnist-28", data_dir=str(tmp_path), cache_dir=cache_dir,
                                  verification_mode="no_checks")
    label = built["train"].features["label"]
    assert label.length == 14 and label.feature.dtype == "uint8"
    assert built["train"][1]["label"] == [1] + [0] * 12 + [1]
    assert "13: hernia" in built["train"].info.description
    assert np.array_equal(np.array(built["train"]["label"]), arrays["train_labels"])
