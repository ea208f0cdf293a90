"""Fake official release files in the true format: official member names, dtypes, shapes and label kinds, written
with numpy's own ``np.savez_compressed`` (as the official files were), and the check that a build equals them."""

from pathlib import Path

import numpy as np

from medmnist_plus_common.catalog import SPLITS, load_catalog
from medmnist_plus_common.release.reader import member_name
from medmnist_plus_common.release.synthetic import synthetic_images, synthetic_labels


def official_arrays(facts, size, counts, seed=0):
    """Arrays of a fake release: official member names, dtypes, shapes and label kinds."""
    arrays = {}
    for i, split in enumerate(SPLITS):
        arrays[member_name(split, "images")] = synthetic_images(facts, size, counts[split], seed=seed * 10 + i)
    for i, split in enumerate(SPLITS):
        arrays[member_name(split, "labels")] = synthetic_labels(facts, counts[split], seed=seed * 10 + i)
    return arrays


def write_fake_release(folder, flag, size, counts, seed=0, arrays=None):
    """Write ``<folder>/<official file name>`` with ``np.savez_compressed``, members in the official order."""
    facts = load_catalog()[flag]
    arrays = arrays if arrays is not None else official_arrays(facts, size, counts, seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / facts.files[size].file
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path, arrays


def write_fake_releases(folder, configs, seed=0):
    """Fake releases for ``{"<flag>-<size>": split counts}``; returns ``{config: arrays}``."""
    arrays = {}
    for config, counts in configs.items():
        flag, size = config.rsplit("-", 1)
        _, arrays[config] = write_fake_release(folder, flag, int(size), counts, seed=seed)
    return arrays


def fake_release_folder(tmp_path_factory, name, configs, seed=0):
    """A module's fake releases: ``(root, {config: arrays})`` with the files in ``root/release``."""
    root = tmp_path_factory.mktemp(name)
    return root, write_fake_releases(root / "release", configs, seed=seed)


def local_build_kwargs(root):
    """Build the fakes of :func:`fake_release_folder` into ``root/cache`` (their counts are not official)."""
    return {"data_dir": str(root / "release"), "cache_dir": str(root / "cache"), "no_checks": True}


def assert_matches_release(dataset_dict, arrays, facts):
    """Every row of every split equals the release arrays: index, pixels and label."""
    column = "volume" if facts.dims == 3 else "image"
    for split in SPLITS:
        images = arrays[member_name(split, "images")]
        labels = arrays[member_name(split, "labels")]
        rows = list(dataset_dict[split])
        assert [row["index"] for row in rows] == list(range(len(images))), split
        for row in rows:
            pixels = np.asarray(row[column], dtype=np.uint8) if facts.dims == 3 else np.asarray(row[column])
            expected = images[row["index"]]
            assert pixels.dtype == np.uint8 and pixels.shape == expected.shape, (split, row["index"])
            assert np.array_equal(pixels, expected), (split, row["index"])
            if facts.is_multilabel:
                assert row["label"] == labels[row["index"]].tolist()
            else:
                assert row["label"] == int(labels[row["index"], 0])
