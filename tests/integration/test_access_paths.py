"""Every way in: builder classes, load_dataset through the registry hook, streaming, num_proc > 1, load()."""

import datasets
from datasets.distributed import split_dataset_by_node
import numpy as np
import pytest

import medmnist_plus_common
from builders import MedMNISTPlus, TissueMNIST
from medmnist_plus_common import RegistryIncompatibleError
from medmnist_plus_common.hf import registry
from medmnist_plus_common.catalog import SPLITS, load_catalog

from tests.fakes.releases import assert_matches_release, write_fake_release

# Enough rows for several 256-row shards per split, so num_proc=2 really splits the work.
MANY = {"train": 1100, "validation": 300, "test": 520}


@pytest.fixture(scope="module")
def tissue_release(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tissue")
    path, arrays = write_fake_release(folder, "tissuemnist", 28, MANY, seed=3)
    return folder, arrays


def test_num_proc_2_gives_identical_results(tissue_release, tmp_path):
    folder, arrays = tissue_release
    built = {}
    for num_proc in (1, 2):
        builder = TissueMNIST(config_name="28", data_dir=str(folder), cache_dir=str(tmp_path / f"cache{num_proc}"))
        builder.download_and_prepare(num_proc=num_proc, verification_mode="no_checks")
        built[num_proc] = builder.as_dataset()
    for split in SPLITS:
        one, two = built[1][split], built[2][split]
        assert one.num_rows == two.num_rows == MANY[split]
        assert one.data.table.equals(two.data.table), split
        assert two["index"][:] == list(range(MANY[split]))
    assert len(built[2]["train"].cache_files) == 2  # one Arrow shard per process
    assert_matches_release(built[2], arrays, load_catalog()["tissuemnist"])


def test_streaming_yields_the_same_rows_in_the_same_order(tissue_release, cache_dir):
    folder, _ = tissue_release
    mapped = datasets.load_dataset("medmnist_plus", "tissuemnist-28", data_dir=str(folder), cache_dir=cache_dir,
                                   verification_mode="no_checks")
    streamed = datasets.load_dataset("medmnist_plus", "tissuemnist-28", data_dir=str(folder), streaming=True)
    for split in SPLITS:
        rows = list(streamed[split])
        assert [r["index"] for r in rows] == mapped[split]["index"][:]
        assert [r["label"] for r in rows] == mapped[split]["label"][:]
        for r, m in zip(rows[::97], mapped[split].select(range(0, MANY[split], 97))):
            assert np.array_equal(np.asarray(r["image"]), np.asarray(m["image"]))
    assert streamed["train"].features == mapped["train"].features


def test_streaming_shards_over_dataloader_style_workers(tissue_release):
    folder, _ = tissue_release
    streamed = MedMNISTPlus(config_name="tissuemnist-28", data_dir=str(folder)).as_streaming_dataset(split="train")
    assert streamed.num_shards == 4
    halves = [split_dataset_by_node(streamed, rank=r, world_size=2) for r in (0, 1)]
    seen = sorted(row["index"] for half in halves for row in half)
    assert seen == list(range(MANY["train"]))


def test_load_helper_without_the_registry(tissue_release, cache_dir):
    folder, _ = tissue_release
    test = medmnist_plus_common.load("tissuemnist-28", split="test", data_dir=str(folder), cache_dir=cache_dir,
                                     verification_mode="no_checks")
    assert test.num_rows == MANY["test"] and test.info.dataset_name == "medmnist_plus"
    streamed = medmnist_plus_common.load("tissuemnist-28", split="test", streaming=True, data_dir=str(folder))
    assert next(iter(streamed))["index"] == 0


def test_per_dataset_names_also_resolve(tissue_release, cache_dir):
    folder, _ = tissue_release
    built = datasets.load_dataset("tissuemnist", "28", data_dir=str(folder), cache_dir=cache_dir,
                                  verification_mode="no_checks", split="validation")
    assert built.num_rows == MANY["validation"] and "/tissuemnist/28-" in built.cache_files[0]["filename"]


def test_a_local_folder_of_the_same_name_wins(tmp_path, monkeypatch):
    folder = tmp_path / "medmnist_plus"
    folder.mkdir()
    (folder / "train.csv").write_text("a,b\n1,2\n")
    monkeypatch.chdir(tmp_path)
    local = datasets.load_dataset("medmnist_plus", split="train", cache_dir=str(tmp_path / "c"))
    assert local.column_names == ["a", "b"]


def test_registry_guard_fails_clearly_when_datasets_changes(monkeypatch):
    from datasets import load

    registry.unregister()
    try:
        monkeypatch.delattr(load, "dataset_module_factory")
        with pytest.raises(RegistryIncompatibleError, match=r"datasets .* tested with datasets 5\.2.*MedMNISTPlus"):
            registry.register()
        monkeypatch.undo()

        def renamed(path, **kwargs):  # same name, but load_dataset_builder no longer calls it
            raise AssertionError

        monkeypatch.setattr(load, "load_dataset_builder", lambda path, **kwargs: renamed(path, **kwargs))
        with pytest.raises(RegistryIncompatibleError, match="no longer calls dataset_module_factory"):
            registry.register()
    finally:
        monkeypatch.undo()
        registry.register()
    assert getattr(load.dataset_module_factory, "_medmnist_plus_original", None) is not None


def test_registration_is_idempotent_and_reversible():
    from datasets import load

    registry.register()
    hooked = load.dataset_module_factory
    registry.register()
    assert load.dataset_module_factory is hooked
    registry.unregister()
    try:
        assert getattr(load.dataset_module_factory, "_medmnist_plus_original", None) is None
    finally:
        registry.register()


# datasets' inspection API (datasets.inspect holds its own reference to the factory the hook wraps): every
# name resolves locally, with no Hub request (the test Hub has no such repos: a miss would fail, not pass).
FLAGS = [facts.flag for facts in load_catalog()]


@pytest.mark.parametrize("flag", FLAGS)
def test_inspection_api_resolves_each_flag(flag):
    facts = load_catalog()[flag]
    sizes = [str(size) for size in facts.sizes]
    assert datasets.get_dataset_config_names(flag) == sizes
    assert datasets.get_dataset_split_names(flag, sizes[0]) == list(SPLITS)
    infos = datasets.get_dataset_infos(flag)
    assert sorted(infos, key=int) == sizes
    assert {s: infos[sizes[-1]].splits[s].num_examples for s in SPLITS} == facts.split_counts
    builder = datasets.load_dataset_builder(flag, sizes[-1])
    assert builder.config.flag == flag and builder.config.size == facts.sizes[-1]


def test_inspection_api_resolves_the_umbrella():
    names = datasets.get_dataset_config_names("medmnist_plus")
    assert names == load_catalog().config_names()
    assert datasets.get_dataset_split_names("medmnist_plus", "breastmnist-28") == list(SPLITS)
    infos = datasets.get_dataset_infos("medmnist_plus")
    assert sorted(infos) == sorted(names)
    assert infos["organmnist3d-64"].splits["train"].num_examples == 971
    assert "volume" in infos["organmnist3d-64"].features
    builder = datasets.load_dataset_builder("medmnist_plus", "pathmnist-224")
    assert isinstance(builder, MedMNISTPlus) and builder.config.size == 224


def test_unregister_restores_datasets_inspect_too():
    from datasets import inspect as hf_inspect
    from datasets import load

    assert hf_inspect.dataset_module_factory is load.dataset_module_factory
    registry.unregister()
    try:
        assert hf_inspect.dataset_module_factory is load.dataset_module_factory
        assert getattr(hf_inspect.dataset_module_factory, "_medmnist_plus_original", None) is None
    finally:
        registry.register()
    assert getattr(hf_inspect.dataset_module_factory, "_medmnist_plus_original", None) is not None
