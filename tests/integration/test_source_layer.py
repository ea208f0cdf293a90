"""The source layer: optional dependencies imported lazily, cache keys from what the data is, provenance per source."""

import os
import subprocess
import sys

import pytest

from builders import BreastMNIST, MedMNISTPlus
from medmnist_plus_common.errors import UnknownConfigError

from tests.fakes.releases import write_fake_release


def test_builders_import_and_list_recipes_without_the_recipe_extras():
    """`import builders` (and every recipe object) works where nibabel, scipy, trimesh, pymeshfix, h5py are missing."""
    code = (
        "import sys\n"
        "for name in ['nibabel', 'scipy', 'trimesh', 'pymeshfix', 'h5py', 'rtree']:\n"
        "    sys.modules[name] = None  # importing it now raises ImportError\n"
        "import builders, medmnist_plus_common\n"
        "from medmnist_plus_common.hf.registry import all_recipes\n"
        "from builders import MedMNISTPlus\n"
        "MedMNISTPlus(config_name='vesselmnist3d-28')\n"
        "print(len(all_recipes()))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) == 18


def test_the_cache_key_does_not_depend_on_how_data_dir_is_spelled(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    write_fake_release(folder, "breastmnist", 28, {"train": 3, "validation": 1, "test": 1})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    spellings = [str(folder), "data", "./data/", "~/data", str(tmp_path / "x" / ".." / "data")]
    cache_dirs = {MedMNISTPlus(config_name="breastmnist-28", data_dir=s, cache_dir=str(tmp_path / "c")).cache_dir
                  for s in spellings}
    assert len(cache_dirs) == 1
    # ...but a replaced file is another key
    before = cache_dirs.pop()
    os.utime(folder / "breastmnist.npz", ns=(1, 1))
    after = MedMNISTPlus(config_name="breastmnist-28", data_dir=str(folder), cache_dir=str(tmp_path / "c")).cache_dir
    assert after != before


def test_a_built_config_is_reused_by_export(tmp_path):
    """export (and push) build through the same key as `build`: the second build does no work."""
    from medmnist_plus_common.publish.push import build_config

    folder = tmp_path / "data"
    write_fake_release(folder, "breastmnist", 28, {"train": 3, "validation": 1, "test": 1})
    first = MedMNISTPlus(config_name="breastmnist-28", data_dir=str(folder), cache_dir=str(tmp_path / "c"))
    first.download_and_prepare(verification_mode="no_checks")
    stamp = os.path.getmtime(os.path.join(first.cache_dir, "dataset_info.json"))
    _, origin = build_config("breastmnist-28", no_checks=True, data_dir=str(tmp_path / "data" / ".." / "data"),
                             cache_dir=str(tmp_path / "c"))
    assert os.path.getmtime(os.path.join(first.cache_dir, "dataset_info.json")) == stamp
    assert origin == {"source": "official", "release_file": "breastmnist.npz",
                      "release_md5": "750601b1f35ba3300ea97c75c52ff8f6",
                      "release_url": "https://zenodo.org/records/10519652/files/breastmnist.npz?download=1",
                      "verified": False}


def test_non_official_sizes_need_a_raw_source(tmp_path):
    with pytest.raises(UnknownConfigError, match="no official release at size 96.*source='raw'"):
        BreastMNIST(config_name="96", cache_dir=str(tmp_path))
    with pytest.raises(UnknownConfigError, match=r"Did you mean 'breastmnist-224', 'breastmnist-128'.* any size from "
                                                 r"8 to 1024 can be regenerated \(2000 is outside that range\)"):
        MedMNISTPlus(config_name="breastmnist-2000", source="raw", data_dir=str(tmp_path), cache_dir=str(tmp_path))
    with pytest.raises(Exception, match="needs data_dir"):
        MedMNISTPlus(config_name="breastmnist-96", source="raw", cache_dir=str(tmp_path))
    builder = MedMNISTPlus(config_name="breastmnist-96", source="raw", data_dir=str(tmp_path), cache_dir=str(tmp_path))
    assert builder.config.size == 96 and builder.info.features["image"].__class__.__name__ == "Image"
    assert "REGENERATED" in builder.info.description and "NOT the official indices" in builder.info.description
    assert "breast ultrasound images" in builder.manual_download_instructions
