"""Every Python block of README.md runs as written, offline, on local data.

The release files the blocks name are small fake releases in the official format: served by a loopback mirror
(MEDMNIST_PLUS_BASE_URL) and published to the test Hub as ``tester/medmnist_plus`` (the README's
``<namespace>`` is ``tester``), with the catalog's MD5s and split counts made theirs so the default checks pass.
``~`` is a temporary home holding ``~/data/medmnist``.
"""

import csv
import dataclasses
import re
from pathlib import Path

import datasets
import numpy as np
import pytest

from medmnist_plus_common.catalog import load_catalog
from medmnist_plus_common.release.download import md5sum
from medmnist_plus_common.publish.push import push

from tests.fakes.releases import official_arrays, write_fake_release

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
COUNTS = {  # one count per dataset (the catalog keeps split counts per dataset, not per size)
    "pathmnist": {"train": 6, "validation": 2, "test": 9},  # every one of its 9 classes in test, for AUC
    "organmnist3d": {"train": 4, "validation": 2, "test": 2},
    "breastmnist": {"train": 5, "validation": 2, "test": 2},
}
MIRRORED = [("pathmnist", 224), ("pathmnist", 128), ("pathmnist", 64), ("organmnist3d", 64)]
ON_THE_HUB = ["pathmnist-224", "organmnist3d-64"]
# Blocks that read the raw source collections (folders a user downloads and unpacks by hand) cannot run on fake
# release files; the raw builders have their own tests on genuine originals.
NEEDS_RAW_COLLECTIONS = 'source="raw"'
# Blocks that train with PyTorch (an optional extra): run by their own test, skipped where torch is not installed.
TORCH_WORDS = ("torch", "stream_loader", "batch_loader")


def needs_torch(block: str) -> bool:
    return any(word in block for word in TORCH_WORDS)


def _publish_as_official(monkeypatch, path, flag, size):
    """Make the catalog publish this fake file's MD5 and row counts for ``flag`` at ``size``."""
    catalog = load_catalog()
    facts = catalog.datasets[flag]
    files = dict(facts.files)
    files[size] = dataclasses.replace(files[size], md5=md5sum(str(path)))
    monkeypatch.setitem(catalog.datasets, flag, dataclasses.replace(facts, files=files, split_counts=COUNTS[flag]))


@pytest.fixture(scope="module")
def readme_world(tmp_path_factory):
    """Fake releases: the mirror's files, ~/data/medmnist/breastmnist.npz, and their arrays."""
    root = tmp_path_factory.mktemp("readme")
    files = {}
    for seed, (flag, size) in enumerate(MIRRORED):
        arrays = official_arrays(load_catalog()[flag], size, COUNTS[flag], seed=seed)
        if flag == "pathmnist":
            arrays["test_labels"] = np.arange(9, dtype=arrays["test_labels"].dtype).reshape(9, 1)
        files[(flag, size)], _ = write_fake_release(root / "mirror", flag, size, COUNTS[flag], arrays=arrays)
    files[("breastmnist", 28)], _ = write_fake_release(root / "home" / "data" / "medmnist", "breastmnist", 28,
                                                       COUNTS["breastmnist"], seed=9)
    return root, files


@pytest.fixture
def readme_env(readme_world, file_server, hub_server, monkeypatch, tmp_path):
    root, files = readme_world
    for (flag, size), path in files.items():
        _publish_as_official(monkeypatch, path, flag, size)
        if flag != "breastmnist":
            file_server.files[path.name] = path.read_bytes()
    monkeypatch.setenv("MEDMNIST_PLUS_BASE_URL", file_server.base_url)
    monkeypatch.setenv("HOME", str(root / "home"))
    monkeypatch.delenv("MEDMNIST_PLUS_MEDMNIST_ROOT")  # ~/.medmnist is the temporary home's (compat downloads there)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", tmp_path / "datasets-cache" / "downloads")
    push("tester/medmnist_plus", ON_THE_HUB, data_dir=str(root / "mirror"), cache_dir=str(tmp_path / "push-cache"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    with open(work / "preds.csv", "w", newline="") as f:  # for the `evaluate` block: pathmnist-64, test split
        rows = csv.writer(f)
        for index in range(COUNTS["pathmnist"]["test"]):
            rows.writerow([index] + list(np.random.default_rng(index).random(9)))
    return root


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 6  # the scan below would pass vacuously otherwise


def run_blocks(with_torch: bool):
    """Run the README's blocks in order, those that need torch or those that do not; what each binds is checked."""
    sizes = {n for counts in COUNTS.values() for n in counts.values()}
    ran, volumes_seen = 0, False
    for number, block in enumerate(BLOCKS, start=1):
        if NEEDS_RAW_COLLECTIONS in block or needs_torch(block) != with_torch:
            continue
        ran += 1
        scope = {"__name__": f"readme_block_{number}"}
        try:
            exec(compile(block.replace("<namespace>", "tester"), f"README.md python block {number}", "exec"), scope)
        except Exception as err:
            raise AssertionError(f"README.md python block {number} failed:\n{block}") from err
        produced = {name: value for name, value in scope.items() if not name.startswith("__")}
        assert produced, number  # every block binds something: a dataset, a loader, a result
        for name, value in produced.items():  # what it binds is real: datasets hold the fake rows
            if isinstance(value, datasets.DatasetDict):
                assert {split: value[split].num_rows for split in value} in COUNTS.values(), (number, name)
            elif isinstance(value, datasets.Dataset):
                assert value.num_rows in sizes, (number, name)
            elif name == "volumes":  # the stream_loader block's last batch
                import torch

                assert value.dtype == torch.uint8 and tuple(value.shape[1:]) == (1, 64, 64, 64), (number, value.shape)
                volumes_seen = True
    return ran, volumes_seen


@pytest.mark.slow
def test_every_readme_python_block_without_torch_runs_as_written(readme_env):
    """The blocks in README order (one Hub publication for all of them); PyTorch is not needed for these."""
    ran, _ = run_blocks(with_torch=False)
    assert ran >= 5


@pytest.mark.slow
@pytest.mark.torch
def test_every_readme_training_block_runs_as_written(readme_env):
    pytest.importorskip("torch")
    ran, volumes_seen = run_blocks(with_torch=True)
    assert ran >= 2 and volumes_seen
