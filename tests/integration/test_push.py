"""`medmnist-plus push` against the Hub-compatible test server (tests/fakes/hub_server.py), over real HTTP.

Four configs (2D gray, 2D RGB, ChestMNIST multi-label, 3D) are pushed with datasets' own push_to_hub, read back
with stock load_dataset (map-style and streaming), bit-exact; re-pushes leave no stale shards; a push interrupted
by a server fault and then re-run completes with nothing lost or duplicated.
"""

import json
import subprocess
import sys
import textwrap

import datasets
import numpy as np
import pytest
from huggingface_hub import DatasetCard

from medmnist_plus_common.cli.main import main
from medmnist_plus_common.publish.push import export, push

from tests.fakes.releases import assert_matches_release, fake_release_folder, local_build_kwargs

pytestmark = pytest.mark.slow  # every test here pushes to the test Hub

CONFIGS = {
    "pneumoniamnist-28": {"train": 24, "validation": 4, "test": 5},  # 2D gray
    "bloodmnist-64": {"train": 10, "validation": 3, "test": 3},  # 2D RGB
    "chestmnist-28": {"train": 16, "validation": 3, "test": 4},  # multi-label
    "organmnist3d-28": {"train": 8, "validation": 2, "test": 3},  # 3D
}


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    return fake_release_folder(tmp_path_factory, "push", CONFIGS, seed=7)


build_kwargs = local_build_kwargs


def shard_paths(hub_server, repo, config):
    return sorted(p for p in hub_server.paths(repo) if p.startswith(config + "/"))


def assert_complete_shard_sets(paths):
    """Each split has exactly the shards 0..N-1 of one "-of-N" set: nothing missing, stale or duplicated."""
    for split in ("train", "validation", "test"):
        names = sorted(p.rsplit("/", 1)[1] for p in paths if p.rsplit("/", 1)[1].startswith(split + "-"))
        assert names, split
        total = int(names[0].split("-of-")[1][:5])
        assert names == [f"{split}-{i:05d}-of-{total:05d}.parquet" for i in range(total)], names


def listed_configs(hub_server, repo):
    card = hub_server.files(repo).get("README.md")
    if card is None:
        return []
    return [c["config_name"] for c in DatasetCard(card.decode()).data.to_dict().get("configs", [])]


def test_push_four_configs_and_read_them_back_exactly(releases, hub_server, hub_repo_id, tmp_path):
    root, arrays = releases
    pushed = push(hub_repo_id, list(CONFIGS), max_shard_size="10KB", **build_kwargs(root))
    assert pushed == list(CONFIGS)
    assert sorted(datasets.get_dataset_config_names(hub_repo_id)) == sorted(CONFIGS)
    assert listed_configs(hub_server, hub_repo_id) == sorted(CONFIGS)
    for config, config_arrays in arrays.items():
        facts_flag = config.rsplit("-", 1)[0]
        from medmnist_plus_common.catalog import load_catalog

        facts = load_catalog()[facts_flag]
        loaded = datasets.load_dataset(hub_repo_id, config, cache_dir=str(tmp_path / "read"))
        assert_matches_release(loaded, config_arrays, facts)
        streamed = datasets.load_dataset(hub_repo_id, config, streaming=True)
        assert_matches_release(streamed, config_arrays, facts)
    assert len(shard_paths(hub_server, hub_repo_id, "bloodmnist-64")) > 3  # several shards per split

    card = DatasetCard(hub_server.files(hub_repo_id)["README.md"].decode())
    card.validate()  # the server's /api/validate-yaml
    assert card.data.task_categories == ["image-classification"] and card.data.license == "cc-by-4.0"
    provenance = json.loads(hub_server.files(hub_repo_id)["medmnist_plus.json"])
    assert sorted(provenance) == sorted(CONFIGS)
    assert provenance["organmnist3d-28"]["release_md5"] == "a0c5a1ff56af4f155c46d46fbb45a2fe"


def test_stock_datasets_in_a_fresh_process_reads_the_repo(releases, hub_server, hub_repo_id, tmp_path):
    root, arrays = releases
    push(hub_repo_id, ["chestmnist-28"], **build_kwargs(root))
    np.save(tmp_path / "labels.npy", arrays["chestmnist-28"]["test_labels"])
    script = f"""
        import sys, numpy as np, datasets
        datasets.config.USE_PARQUET_EXPORT = False  # no dataset-viewer lookup (see conftest.py)
        ds = datasets.load_dataset({hub_repo_id!r}, "chestmnist-28", split="test")
        assert "medmnist_plus_common" not in sys.modules
        expected = np.load({str(tmp_path / "labels.npy")!r})
        assert [r["label"] for r in ds] == expected.tolist()
        print(ds.num_rows, ds.features["label"])
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("4 List(Value('uint8'), length=14)")


def test_repush_replaces_shards_without_stale_files(releases, hub_server, hub_repo_id):
    root, _ = releases
    push(hub_repo_id, ["pneumoniamnist-28", "organmnist3d-28"], num_shards=4, **build_kwargs(root))
    assert len(shard_paths(hub_server, hub_repo_id, "pneumoniamnist-28")) == 12
    organ_before = {p: hub_server.files(hub_repo_id)[p] for p in shard_paths(hub_server, hub_repo_id, "organmnist3d-28")}

    push(hub_repo_id, ["pneumoniamnist-28"], num_shards=2, **build_kwargs(root))
    assert shard_paths(hub_server, hub_repo_id, "pneumoniamnist-28") == sorted(
        f"pneumoniamnist-28/{s}-{i:05d}-of-00002.parquet" for s in ("train", "validation", "test") for i in range(2))
    files = hub_server.files(hub_repo_id)
    assert {p: files[p] for p in shard_paths(hub_server, hub_repo_id, "organmnist3d-28")} == organ_before
    assert listed_configs(hub_server, hub_repo_id) == ["organmnist3d-28", "pneumoniamnist-28"]
    test = datasets.load_dataset(hub_repo_id, "pneumoniamnist-28", split="test")
    assert test["index"][:] == list(range(CONFIGS["pneumoniamnist-28"]["test"]))


@pytest.mark.parametrize("fault", [("lfs_upload", {"skip": 1}), ("commit", {})])
def test_interrupted_push_then_rerun_completes(releases, hub_server, hub_repo_id, fault):
    root, arrays = releases
    push(hub_repo_id, ["organmnist3d-28"], **build_kwargs(root))  # an earlier, complete config
    kind, options = fault
    hub_server.fail_next(kind, status=403, **options)
    with pytest.raises(Exception):
        push(hub_repo_id, ["bloodmnist-64"], max_shard_size="10KB", **build_kwargs(root))
    assert hub_server.pending_faults == 0
    assert listed_configs(hub_server, hub_repo_id) == ["organmnist3d-28"]  # the broken config is not listed
    assert "bloodmnist-64" not in json.loads(hub_server.files(hub_repo_id)["medmnist_plus.json"])

    push(hub_repo_id, ["bloodmnist-64"], max_shard_size="10KB", **build_kwargs(root))
    assert listed_configs(hub_server, hub_repo_id) == ["bloodmnist-64", "organmnist3d-28"]
    assert_complete_shard_sets(shard_paths(hub_server, hub_repo_id, "bloodmnist-64"))
    loaded = datasets.load_dataset(hub_repo_id, "bloodmnist-64")
    for split, prefix in (("train", "train"), ("validation", "val"), ("test", "test")):
        assert sorted(loaded[split]["index"][:]) == list(range(len(arrays["bloodmnist-64"][f"{prefix}_images"])))
    assert datasets.load_dataset(hub_repo_id, "organmnist3d-28", split="test").num_rows == 3


def test_repush_interrupted_unlists_the_config_until_it_completes(releases, hub_server, hub_repo_id):
    root, _ = releases
    push(hub_repo_id, ["pneumoniamnist-28"], num_shards=3, **build_kwargs(root))
    hub_server.fail_next("commit", status=403, skip=1)  # the card update passes, push_to_hub's commit fails
    with pytest.raises(Exception):
        push(hub_repo_id, ["pneumoniamnist-28"], num_shards=2, **build_kwargs(root))
    assert listed_configs(hub_server, hub_repo_id) == []  # never listed with a half-replaced set of shards
    push(hub_repo_id, ["pneumoniamnist-28"], num_shards=2, **build_kwargs(root))
    assert listed_configs(hub_server, hub_repo_id) == ["pneumoniamnist-28"]
    assert len(shard_paths(hub_server, hub_repo_id, "pneumoniamnist-28")) == 6


def test_push_an_exported_folder(releases, hub_server, hub_repo_id, tmp_path):
    root, arrays = releases
    out = tmp_path / "medmnist_plus"
    export(str(out), ["organmnist3d-28", "chestmnist-28"], **build_kwargs(root))
    assert push(hub_repo_id, ["organmnist3d-28", "chestmnist-28"], from_export=str(out)) == [
        "organmnist3d-28", "chestmnist-28"]
    assert sorted(datasets.get_dataset_config_names(hub_repo_id)) == ["chestmnist-28", "organmnist3d-28"]
    volume = datasets.load_dataset(hub_repo_id, "organmnist3d-28", split="train").with_format("numpy")[:]["volume"]
    assert np.array_equal(volume.astype(np.uint8), arrays["organmnist3d-28"]["train_images"])


def test_cli_push_with_endpoint_and_token_never_prints_the_token(releases, hub_server, hub_repo_id, capsys, caplog):
    root, _ = releases
    token = "hf_secret_value_never_shown"
    hub_server.reset_log()
    code = main(["-v", "push", "--repo", hub_repo_id, "--configs", "pneumoniamnist-28", "--private", "--endpoint",
                 hub_server.endpoint, "--token", token, "--data-dir", str(root / "release"), "--cache-dir",
                 str(root / "cache"), "--no-checks"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Pushed 1 config(s)" in captured.out
    assert token not in captured.out + captured.err + caplog.text
    # Hub API writes carry the token; LFS object PUTs go to the pre-signed URL the batch call returned, as on the Hub.
    writes = [r for r in hub_server.requests if r[0] in ("POST", "PUT") and not r[1].startswith("/_lfs/upload/")]
    assert writes and all(had_auth for _, _, had_auth in writes), [w for w in writes if not w[2]]
    assert listed_configs(hub_server, hub_repo_id) == ["pneumoniamnist-28"]


def test_pushed_parquet_has_small_row_groups(releases, hub_server, hub_repo_id, monkeypatch):
    import io

    import pyarrow.parquet as pq

    from medmnist_plus_common.publish import push as publish
    root, _ = releases
    monkeypatch.setattr(publish, "ROW_GROUP_SIZE", "20KB")
    push(hub_repo_id, ["bloodmnist-64"], num_shards=1, **build_kwargs(root))
    shard = hub_server.files(hub_repo_id)["bloodmnist-64/train-00000-of-00001.parquet"]
    metadata = pq.ParquetFile(io.BytesIO(shard)).metadata
    assert metadata.num_rows == CONFIGS["bloodmnist-64"]["train"] and metadata.num_row_groups > 1
    assert max(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)) < 60_000


def test_cli_push_all_of_an_export(releases, hub_server, hub_repo_id, tmp_path, capsys):
    root, _ = releases
    out = tmp_path / "medmnist_plus"
    export(str(out), ["organmnist3d-28", "pneumoniamnist-28"], **build_kwargs(root))
    assert main(["push", "--repo", hub_repo_id, "--from-export", str(out), "--all"]) == 0
    assert "Pushed 2 config(s)" in capsys.readouterr().out
    assert listed_configs(hub_server, hub_repo_id) == ["organmnist3d-28", "pneumoniamnist-28"]
