"""Previews: `export` and `push` write previews/<config>.png (a montage of the first training samples) beside the
shards, and the dataset card shows it; the preview round-trips through the test Hub and its tiles are the samples."""

import io
import json

import datasets
import numpy as np
import pytest
from huggingface_hub import DatasetCard
from PIL import Image

from medmnist_plus_common.catalog import load_catalog
from medmnist_plus_common.tools.montage import montage
from medmnist_plus_common.publish.push import export, push

from tests.fakes.releases import fake_release_folder, local_build_kwargs

CONFIGS = {
    "pneumoniamnist-28": {"train": 20, "validation": 2, "test": 2},  # 2D: 16 tiles of 20 rows
    "organmnist3d-28": {"train": 5, "validation": 2, "test": 2},  # 3D: all 5 volumes
}


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    return fake_release_folder(tmp_path_factory, "previews", CONFIGS, seed=2)


kwargs = local_build_kwargs


def assert_preview(png: bytes, config, root, arrays):
    """The preview is a PNG whose pixels equal the montage of the release, whose tiles equal the samples."""
    facts = load_catalog()[config.rsplit("-", 1)[0]]
    expected = montage(config, n=16, data_dir=str(root / "release"))
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == expected.image.size
    pixels = np.asarray(image)
    assert np.array_equal(pixels, np.asarray(expected.image))
    images = arrays[config]["train_images"]
    assert [tile.index for tile in expected.tiles] == list(range(min(16, len(images))))
    for tile in expected.tiles:
        sample = images[tile.index]
        pictures = [sample] if facts.dims == 2 else [sample[14], sample[:, 14, :], sample[:, :, 14]]
        for picture, (left, top, right, bottom) in zip(pictures, tile.boxes):
            assert np.array_equal(pixels[top:bottom, left:right], picture.repeat(2, 0).repeat(2, 1))


def assert_card_shows_previews(card_text, configs):
    card = DatasetCard(card_text)
    assert "## Previews" in card.text
    for config in configs:
        assert f"![{config} preview](previews/{config}.png)" in card.text
    assert sorted(c["config_name"] for c in card.data.to_dict()["configs"]) == sorted(configs)


def test_export_writes_previews_and_the_card_shows_them(releases, tmp_path):
    root, arrays = releases
    out = tmp_path / "medmnist_plus"
    export(str(out), list(CONFIGS), **kwargs(root))
    for config in CONFIGS:
        assert_preview((out / "previews" / f"{config}.png").read_bytes(), config, root, arrays)
    assert_card_shows_previews((out / "README.md").read_text(), CONFIGS)
    provenance = json.loads((out / "medmnist_plus.json").read_text())
    assert {name: p["preview"] for name, p in provenance.items()} == {c: f"previews/{c}.png" for c in CONFIGS}
    # the previews folder does not disturb stock loading of the folder
    assert sorted(datasets.get_dataset_config_names(str(out))) == sorted(CONFIGS)
    assert datasets.load_dataset(str(out), "pneumoniamnist-28", split="train").num_rows == 20


@pytest.mark.slow
def test_push_round_trips_previews_through_the_hub(releases, hub_server, hub_repo_id, tmp_path):
    root, arrays = releases
    push(hub_repo_id, list(CONFIGS), **kwargs(root))
    files = hub_server.files(hub_repo_id)
    for config in CONFIGS:
        assert_preview(files[f"previews/{config}.png"], config, root, arrays)
    card = files["README.md"].decode()
    assert_card_shows_previews(card, CONFIGS)
    DatasetCard(card).validate()  # the server's /api/validate-yaml accepts it
    assert sorted(datasets.get_dataset_config_names(hub_repo_id)) == sorted(CONFIGS)
    # downloaded back through the Hub API, byte for byte
    from huggingface_hub import hf_hub_download

    local = hf_hub_download(hub_repo_id, "previews/organmnist3d-28.png", repo_type="dataset",
                            cache_dir=str(tmp_path / "hub-cache"))
    assert open(local, "rb").read() == files["previews/organmnist3d-28.png"]


@pytest.mark.slow
def test_push_from_an_export_carries_the_previews(releases, hub_server, hub_repo_id, tmp_path):
    root, arrays = releases
    out = tmp_path / "medmnist_plus"
    export(str(out), ["organmnist3d-28"], **kwargs(root))
    push(hub_repo_id, None, from_export=str(out))
    files = hub_server.files(hub_repo_id)
    assert files["previews/organmnist3d-28.png"] == (out / "previews" / "organmnist3d-28.png").read_bytes()
    assert_card_shows_previews(files["README.md"].decode(), ["organmnist3d-28"])
