"""`medmnist-plus export`: the Hub repository layout in a local folder, read back by stock `datasets`."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from huggingface_hub import DatasetCard

from medmnist_plus_common import ReleaseFileError
from medmnist_plus_common.cli.main import main
from medmnist_plus_common.publish.push import export

from tests.fakes.releases import write_fake_releases

CONFIGS = {  # 2D gray, 2D RGB, multi-label, 3D; DermaMNIST for its non-commercial license
    "pneumoniamnist-28": {"train": 30, "validation": 4, "test": 5},
    "dermamnist-64": {"train": 12, "validation": 3, "test": 3},
    "chestmnist-28": {"train": 20, "validation": 3, "test": 4},
    "organmnist3d-28": {"train": 9, "validation": 2, "test": 3},
}


def stock_read(script: str, cwd) -> dict:
    """Run ``script`` in a fresh interpreter that imports only stock datasets; it prints one JSON line."""
    prelude = "import json, sys, numpy as np, datasets\n"
    check = "\nassert 'medmnist_plus_common' not in sys.modules and 'builders' not in sys.modules\n"
    result = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(script) + check],
                            cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    arrays = write_fake_releases(root / "release", CONFIGS)
    out = root / "medmnist_plus"
    written = export(str(out), list(CONFIGS), max_shard_size="20KB", data_dir=str(root / "release"),
                     cache_dir=str(root / "cache"), no_checks=True)
    assert written == list(CONFIGS)
    for config, config_arrays in arrays.items():
        np.savez(root / f"expected-{config}.npz", **config_arrays)
    return root, out, arrays


@pytest.mark.slow
def test_stock_datasets_reads_every_config_bit_exact(exported):
    root, out, _ = exported
    report = stock_read(f"""
        out = {str(out)!r}
        report = {{"configs": datasets.get_dataset_config_names(out)}}
        for config in report["configs"]:
            expected = np.load({str(root)!r} + f"/expected-{{config}}.npz")
            for streaming in (False, True):
                ds = datasets.load_dataset(out, config, streaming=streaming)
                for split, prefix in (("train", "train"), ("validation", "val"), ("test", "test")):
                    rows = list(ds[split])
                    assert [r["index"] for r in rows] == list(range(len(expected[prefix + "_images"]))), config
                    column = "volume" if "volume" in rows[0] else "image"
                    for r in rows:
                        assert np.array_equal(np.asarray(r[column], dtype=np.uint8),
                                              expected[prefix + "_images"][r["index"]]), (config, split)
                        label = expected[prefix + "_labels"][r["index"]]
                        assert r["label"] == (label.tolist() if len(label) > 1 else int(label[0]))
        report["features"] = str(datasets.load_dataset(out, "chestmnist-28", split="test").features)
        print(json.dumps(report))
    """, cwd=root)
    assert report["configs"] == sorted(CONFIGS)
    assert "List(Value('uint8'), length=14)" in report["features"]


@pytest.mark.slow
def test_a_folder_named_medmnist_plus_serves_its_parent_directory(exported):
    root, _, _ = exported
    report = stock_read("""
        ds = datasets.load_dataset("medmnist_plus", "organmnist3d-28", split="validation")
        print(json.dumps({"rows": ds.num_rows, "features": str(ds.features["volume"])}))
    """, cwd=root)
    assert report == {"rows": 2, "features": "Array3D(shape=(28, 28, 28), dtype='uint8')"}


def test_card_is_valid_yaml_with_licenses_citations_and_provenance(exported):
    _, out, _ = exported
    card = DatasetCard.load(out / "README.md")
    data = card.data.to_dict()
    assert data["pretty_name"] == "MedMNIST+"
    assert data["task_categories"] == ["image-classification"]
    assert set(data["license"]) == {"cc-by-4.0", "cc-by-nc-4.0"}
    assert {"medical", "2d", "3d"} <= set(data["tags"])
    assert [c["config_name"] for c in data["configs"]] == sorted(CONFIGS)
    infos = {info["config_name"]: info for info in data["dataset_info"]}
    assert {s["name"]: s["num_examples"] for s in infos["dermamnist-64"]["splits"]} == CONFIGS["dermamnist-64"]
    text = card.text
    assert "DermaMNIST, which is CC BY-NC 4.0 (non-commercial use only)" in text
    assert "MedMNIST v2" in text and "arXiv:2404.15786" in text and "HAM10000" in text and "LIDC-IDRI" not in text
    assert "`val` split is named `validation`" in text and "0-based" in text
    assert "13: hernia" in text
    assert "| `dermamnist-64` | DermaMNIST | 2D, 64x64 RGB | multi-class | 12 / 3 / 3 | CC BY-NC 4.0 |" in text
    assert "`dermamnist_64.npz` (MD5 `b70a2f5635c6199aeaa28c31d7202e1f`) — built from a local file NOT verified" in text
    provenance = json.loads((out / "medmnist_plus.json").read_text())
    assert sorted(provenance) == sorted(CONFIGS) and provenance["chestmnist-28"]["verified"] is False


def test_reexport_replaces_shards_and_a_failed_one_keeps_the_previous_export(tmp_path):
    write_fake_releases(tmp_path / "release", {"pneumoniamnist-28": {"train": 40, "validation": 4, "test": 4},
                                         "organmnist3d-28": {"train": 6, "validation": 2, "test": 2}})
    out = tmp_path / "out"
    common = dict(data_dir=str(tmp_path / "release"), cache_dir=str(tmp_path / "cache"), no_checks=True)
    export(str(out), ["pneumoniamnist-28", "organmnist3d-28"], num_shards=4, **common)
    assert sorted(os.listdir(out / "pneumoniamnist-28")) == sorted(
        [f"{s}-{i:05d}-of-00004.parquet" for s in ("train", "validation", "test") for i in range(4)])
    organ_before = {f: (out / "organmnist3d-28" / f).read_bytes() for f in os.listdir(out / "organmnist3d-28")}

    write_fake_releases(tmp_path / "release", {"pneumoniamnist-28": {"train": 10, "validation": 2, "test": 2}}, seed=5)
    export(str(out), ["pneumoniamnist-28"], num_shards=2, **common)
    assert sorted(os.listdir(out / "pneumoniamnist-28")) == sorted(
        [f"{s}-{i:05d}-of-00002.parquet" for s in ("train", "validation", "test") for i in range(2)])
    assert {f: (out / "organmnist3d-28" / f).read_bytes() for f in os.listdir(out / "organmnist3d-28")} == organ_before
    card = DatasetCard.load(out / "README.md").data.to_dict()
    infos = {info["config_name"]: info for info in card["dataset_info"]}
    assert infos["pneumoniamnist-28"]["splits"][0]["num_examples"] == 10

    release = tmp_path / "release" / "pneumoniamnist.npz"
    release.write_bytes(release.read_bytes()[:200])  # corrupt: the next export of it fails
    with pytest.raises(ReleaseFileError):
        export(str(out), ["pneumoniamnist-28"], num_shards=2,
               **dict(common, cache_dir=str(tmp_path / "cache2")))
    assert sorted(json.loads((out / "medmnist_plus.json").read_text())) == ["organmnist3d-28", "pneumoniamnist-28"]
    assert len(os.listdir(out / "pneumoniamnist-28")) == 6
    assert not [f for f in os.listdir(out) if f.endswith(".partial")]


def test_export_cli(tmp_path, capsys):
    write_fake_releases(tmp_path / "release", {"retinamnist-28": {"train": 5, "validation": 2, "test": 2}})
    code = main(["export", "--out", str(tmp_path / "medmnist_plus"), "--configs", "retinamnist-28", "--data-dir",
                 str(tmp_path / "release"), "--cache-dir", str(tmp_path / "cache"), "--no-checks"])
    assert code == 0
    assert "Exported 1 config(s)" in capsys.readouterr().out
    assert (tmp_path / "medmnist_plus" / "retinamnist-28" / "train-00000-of-00001.parquet").is_file()
    assert main(["export", "--out", str(tmp_path / "x"), "--configs", "retinamnist-29"]) == 2
    assert "Did you mean 'retinamnist-28'" in capsys.readouterr().err


def test_parquet_row_groups_stay_small_for_streaming(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from medmnist_plus_common.publish import push as publish
    monkeypatch.setattr(publish, "ROW_GROUP_SIZE", "100KB")
    write_fake_releases(tmp_path / "release", {"bloodmnist-128": {"train": 24, "validation": 2, "test": 2}})
    export(str(tmp_path / "out"), ["bloodmnist-128"], num_shards=1, data_dir=str(tmp_path / "release"),
           cache_dir=str(tmp_path / "cache"), no_checks=True)
    metadata = pq.ParquetFile(tmp_path / "out" / "bloodmnist-128" / "train-00000-of-00001.parquet").metadata
    sizes = [metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups)]
    assert metadata.num_rows == 24 and len(sizes) > 1
    assert max(sizes) < 200_000, sizes  # aiming at 100KB: a group never holds the whole shard
