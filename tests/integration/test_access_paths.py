"""Every way in: builder classes, load_dataset through the registry hook, streaming, num_proc > 1, load()."""

import os

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


# One build, whichever way it was asked for: the CLI, load_dataset (registry hook), the builder, load(), export
# and push (which build first) all key the cache by the same data and options, so whichever comes first builds and
# the others reuse it (issue 16, item 3). Options equal to a config's defaults (the CLI's --source official,
# image_storage="png") do not change the key.
REUSE_COUNTS = {"train": 12, "validation": 3, "test": 4}


def _cli_build(config, folder, cache_dir, options):
    from medmnist_plus_common.cli.main import main

    extra = [arg for key, value in options.items() for arg in (f"--{key.replace('_', '-')}", value)]
    assert main(["build", config, "--data-dir", folder, "--cache-dir", cache_dir, "--no-checks", *extra]) == 0


def _load_dataset(config, folder, cache_dir, options):
    datasets.load_dataset("medmnist_plus", config, data_dir=folder, cache_dir=cache_dir,
                          verification_mode="no_checks", **options)


def _builder(config, folder, cache_dir, options):
    MedMNISTPlus(config_name=config, data_dir=folder, cache_dir=cache_dir,
                 **options).download_and_prepare(verification_mode="no_checks")


def _load_helper(config, folder, cache_dir, options):
    medmnist_plus_common.load(config, data_dir=folder, cache_dir=cache_dir, verification_mode="no_checks", **options)


def _export(config, folder, cache_dir, options):
    from medmnist_plus_common.publish.push import export

    export(str(_export.out), [config], data_dir=folder, cache_dir=cache_dir, no_checks=True, **options)


WAYS = {"cli build": _cli_build, "load_dataset": _load_dataset, "MedMNISTPlus": _builder, "load()": _load_helper,
        "export": _export}
EXPLICIT_DEFAULTS = {"image_storage": "png", "source": "official"}  # what the CLI used to pass


def _built_cache(cache_dir, name="medmnist_plus"):
    """Every complete build under ``cache_dir/<name>`` with the mtimes of its Arrow files."""
    built = {}
    for folder, _, files in os.walk(os.path.join(cache_dir, name)):
        if "dataset_info.json" in files:
            built[folder] = {f: os.stat(os.path.join(folder, f)).st_mtime_ns for f in files if f.endswith(".arrow")}
    return built


@pytest.fixture(scope="module")
def breast_release(tmp_path_factory):
    folder = tmp_path_factory.mktemp("breast")
    write_fake_release(folder, "breastmnist", 28, REUSE_COUNTS, seed=5)
    return str(folder)


@pytest.mark.parametrize("first, options", [pytest.param(way, {}, id=f"{way}-first") for way in WAYS] + [
    pytest.param(way, {"image_storage": "raw"}, id=f"{way}-first-raw-storage")
    for way in WAYS if way != "export"])  # the Hub (and an export) gets PNG
def test_one_build_whichever_way_it_was_asked_for(first, options, breast_release, tmp_path):
    cache_dir = str(tmp_path / "cache")
    _export.out = tmp_path / "export"
    ways = {name: way for name, way in WAYS.items() if not (options and name == "export")}
    # The Python ways spell the defaults out; the CLI passes only what is set: the same options either way.
    spelled = lambda name: options if name == "cli build" else {**EXPLICIT_DEFAULTS, **options}  # noqa: E731
    ways[first]("breastmnist-28", breast_release, cache_dir, spelled(first))
    built = _built_cache(cache_dir)
    assert len(built) == 1 and all(built.values()), built
    for name, way in ways.items():
        if name != first:
            way("breastmnist-28", breast_release, cache_dir, spelled(name))
            assert _built_cache(cache_dir) == built, f"{name} built again after {first}"
    expected = MedMNISTPlus(config_name="breastmnist-28", data_dir=breast_release, cache_dir=cache_dir, **options)
    assert list(built) == [expected.cache_dir]


@pytest.mark.slow
def test_push_reuses_a_build_and_its_build_is_reused(breast_release, tmp_path, hub_repo_id):
    from medmnist_plus_common.publish.push import push

    cache_dir = str(tmp_path / "cache")
    push(hub_repo_id, ["breastmnist-28"], data_dir=breast_release, cache_dir=cache_dir, no_checks=True)
    built = _built_cache(cache_dir)
    assert len(built) == 1
    for name, way in WAYS.items():
        _export.out = tmp_path / "export"
        way("breastmnist-28", breast_release, cache_dir, EXPLICIT_DEFAULTS if name != "cli build" else {})
        assert _built_cache(cache_dir) == built, f"{name} built again after push"
    for first_name, first in WAYS.items():  # each other way first, then push
        other_cache = str(tmp_path / f"cache-{first_name}")
        first("breastmnist-28", breast_release, other_cache, {})
        built = _built_cache(other_cache)
        push(hub_repo_id, ["breastmnist-28"], data_dir=breast_release, cache_dir=other_cache, no_checks=True)
        assert _built_cache(other_cache) == built, f"push built again after {first_name}"


@pytest.mark.parametrize("first", ["builder", "load_dataset"])
def test_one_build_per_dataset_builder_either_way(first, breast_release, tmp_path):
    from builders import BreastMNIST

    cache_dir = str(tmp_path / "cache")
    ways = {
        "builder": lambda: BreastMNIST(config_name="28", data_dir=breast_release, cache_dir=cache_dir,
                                       image_storage="png").download_and_prepare(verification_mode="no_checks"),
        "load_dataset": lambda: datasets.load_dataset("breastmnist", "28", data_dir=breast_release,
                                                      cache_dir=cache_dir, verification_mode="no_checks"),
    }
    ways[first]()
    built = _built_cache(cache_dir, "breastmnist")
    assert len(built) == 1
    ways["load_dataset" if first == "builder" else "builder"]()
    assert _built_cache(cache_dir, "breastmnist") == built
    assert not os.path.exists(os.path.join(cache_dir, "medmnist_plus"))  # the per-dataset name, by design


def test_options_equal_to_the_defaults_do_not_change_the_cache_key(tmp_path):
    defaults = {"image_storage": "png", "source": "official", "skip_bad": False, "split_seed": 0,
                "base_url": None, "manifest": None, "recipe_variant": None}
    plain = MedMNISTPlus(config_name="pathmnist-64", cache_dir=str(tmp_path))
    spelled = MedMNISTPlus(config_name="pathmnist-64", cache_dir=str(tmp_path), **defaults)
    assert spelled.cache_dir == plain.cache_dir and spelled.config_id == "pathmnist-64"
    raw = MedMNISTPlus(config_name="pathmnist-64", cache_dir=str(tmp_path), image_storage="raw")
    assert raw.cache_dir != plain.cache_dir  # an option that differs still keys its own build
    # a size made on the fly from a raw collection: the same rule
    collection = tmp_path / "kather"
    collection.mkdir()
    on_the_fly = [MedMNISTPlus(config_name="pathmnist-96", cache_dir=str(tmp_path), source="raw",
                               data_dir=str(collection), **extra).cache_dir
                  for extra in ({}, {"image_storage": "png", "skip_bad": False, "split_seed": 0})]
    assert on_the_fly[0] == on_the_fly[1]
