"""`medmnist-plus montage`: real PNG/GIF files of the expected pixel size whose tiles equal the samples, from a local
release, an exported folder and the test Hub (and the genuine files in ../shared/data when present)."""

import numpy as np
import pytest
from PIL import Image

from medmnist_plus_common.catalog import load_catalog
from medmnist_plus_common.cli.main import main
from medmnist_plus_common.tools.montage import montage
from medmnist_plus_common.publish.push import export, push

from tests.fakes.releases import write_fake_releases

CONFIGS = {
    "pneumoniamnist-28": {"train": 12, "validation": 2, "test": 3},  # 2D gray, zoom 2
    "bloodmnist-64": {"train": 7, "validation": 2, "test": 2},  # 2D RGB, zoom 1
    "chestmnist-28": {"train": 6, "validation": 2, "test": 2},  # multi-label captions
    "organmnist3d-28": {"train": 5, "validation": 2, "test": 2},  # 3D
}


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    root = tmp_path_factory.mktemp("montage")
    return root, write_fake_releases(root / "release", CONFIGS, seed=5)


def zoomed(picture, zoom):
    return picture.repeat(zoom, 0).repeat(zoom, 1)


def assert_tiles_equal_samples(path, result, images, facts, zoom, frame=None):
    """Crop every tile's picture(s) out of the written file and compare with the release arrays."""
    with Image.open(path) as image:
        if frame is not None:
            image.seek(frame)
        pixels = np.asarray(image.convert("RGB" if facts.channels == 3 and facts.dims == 2 else "L"))
    for tile in result.tiles:
        sample = images[tile.index]
        if facts.dims == 2:
            expected = [sample]
        elif frame is not None:
            expected = [sample[frame]]
        else:
            d, h, w = sample.shape
            expected = [sample[d // 2], sample[:, h // 2, :], sample[:, :, w // 2]]
        assert len(tile.boxes) == len(expected)
        for picture, (left, top, right, bottom) in zip(expected, tile.boxes):
            assert np.array_equal(pixels[top:bottom, left:right], zoomed(picture, zoom)), (tile.index, frame)


def test_2d_gray_png_from_a_local_release(releases, tmp_path, capsys):
    root, arrays = releases
    out = tmp_path / "pneumonia.png"
    code = main(["montage", "pneumoniamnist-28", "-n", "10", "--data-dir", str(root / "release"), "--cache-dir",
                 str(root / "cache"), "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    with Image.open(out) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "L", (416, 264))  # 4 x 3 cells of 104 x 88
    assert printed.startswith(f"Wrote {out}: 10 samples of pneumoniamnist-28 train (PNG, 4 x 3 tiles, 416 x 264 px")
    result = montage("pneumoniamnist-28", n=10, data_dir=str(root / "release"))
    facts = load_catalog()["pneumoniamnist"]
    assert [tile.index for tile in result.tiles] == list(range(10))
    labels = arrays["pneumoniamnist-28"]["train_labels"][:, 0]
    assert [tile.caption for tile in result.tiles] == [f"{facts.labels[labels[i]]} #{i}" for i in range(10)]
    assert_tiles_equal_samples(out, result, arrays["pneumoniamnist-28"]["train_images"], facts, zoom=2)
    # captions are drawn: the caption band under the first tile is not empty
    with Image.open(out) as image:
        band = np.asarray(image)[4 + 56: 4 + 56 + 24, 4: 100]
    assert band.max() > 128


def test_2d_rgb_png_and_more_tiles_than_rows(releases, tmp_path):
    root, arrays = releases
    out = tmp_path / "blood.png"
    result = montage("bloodmnist-64", "validation", n=100, data_dir=str(root / "release"), columns=3)
    result.save(str(out))
    assert len(result.tiles) == 2  # the whole split, not 100
    with Image.open(out) as image:
        assert (image.mode, image.size) == ("RGB", (3 * 104, 64 + 24 + 8))
    assert_tiles_equal_samples(out, result, arrays["bloodmnist-64"]["val_images"], load_catalog()["bloodmnist"], zoom=1)


def test_multilabel_captions_name_the_findings(releases):
    root, arrays = releases
    facts = load_catalog()["chestmnist"]
    result = montage("chestmnist-28", n=6, data_dir=str(root / "release"))
    for tile in result.tiles:
        found = [facts.labels[i] for i, v in enumerate(arrays["chestmnist-28"]["train_labels"][tile.index]) if v]
        assert tile.caption == f"{', '.join(found) if found else 'no finding'} #{tile.index}"


def test_3d_png_shows_the_three_middle_slices(releases, tmp_path):
    root, arrays = releases
    out = tmp_path / "organ.png"
    assert main(["montage", "organmnist3d-28", "-n", "4", "--data-dir", str(root / "release"), "-o", str(out)]) == 0
    result = montage("organmnist3d-28", n=4, data_dir=str(root / "release"))
    with Image.open(out) as image:  # 2 x 2 cells of (3 x 56 + 2 x 2 + 8) x (56 + 24 + 8), under a header line
        assert (image.format, image.mode, image.size) == ("PNG", "L", (2 * 180, 12 + 4 + 2 * 88))
        header = np.asarray(image)[:12 + 4]
    assert header.max() > 200 and header[:, 200:].max() > 200  # the planes are named above the tiles (text pixels)
    assert_tiles_equal_samples(out, result, arrays["organmnist3d-28"]["train_images"],
                               load_catalog()["organmnist3d"], zoom=2)


def test_3d_gif_steps_through_every_slice(releases, tmp_path):
    root, arrays = releases
    out = tmp_path / "organ.gif"
    assert main(["montage", "organmnist3d-28", "-n", "5", "--gif", "--zoom", "1", "--data-dir",
                 str(root / "release"), "-o", str(out)]) == 0
    result = montage("organmnist3d-28", n=5, data_dir=str(root / "release"), gif=True, zoom=1)
    with Image.open(out) as image:
        assert (image.format, image.n_frames, image.size) == ("GIF", 28, (3 * 104, 16 + 2 * 60))
    facts = load_catalog()["organmnist3d"]
    for depth in range(28):
        assert_tiles_equal_samples(out, result, arrays["organmnist3d-28"]["train_images"], facts, zoom=1, frame=depth)


def test_bad_requests_are_clear_errors(releases, tmp_path, capsys):
    root, _ = releases
    assert main(["montage", "pneumoniamnist-28", "--gif", "--data-dir", str(root / "release"),
                 "-o", str(tmp_path / "x.gif")]) == 2
    err = capsys.readouterr().err
    assert "--gif steps through the slices of 3D volumes; PneumoniaMNIST is 2D" in err and "Traceback" not in err
    assert main(["montage", "pneumoniamnist-28", "--split", "dev", "--data-dir", str(root / "release")]) == 2
    assert "Unknown split 'dev'" in capsys.readouterr().err
    assert not (tmp_path / "x.gif").exists()


def test_from_an_exported_folder(releases, tmp_path):
    root, arrays = releases
    out = tmp_path / "medmnist_plus"
    export(str(out), ["bloodmnist-64"], num_shards=2, data_dir=str(root / "release"), cache_dir=str(root / "cache"),
           no_checks=True)
    result = montage("bloodmnist-64", n=5, data_dir=str(out))
    result.save(str(tmp_path / "m.png"))
    assert [tile.index for tile in result.tiles] == list(range(5))
    assert_tiles_equal_samples(tmp_path / "m.png", result, arrays["bloodmnist-64"]["train_images"],
                               load_catalog()["bloodmnist"], zoom=1)


@pytest.mark.slow
def test_from_the_hub(releases, hub_repo_id, tmp_path):
    root, arrays = releases
    push(hub_repo_id, ["organmnist3d-28"], data_dir=str(root / "release"), cache_dir=str(root / "cache"),
         no_checks=True)
    out = tmp_path / "hub.png"
    assert main(["montage", "organmnist3d-28", "--repo", hub_repo_id, "-n", "3", "--split", "val", "-o", str(out)]) == 0
    result = montage("organmnist3d-28", "validation", n=3, repo=hub_repo_id)
    assert [tile.index for tile in result.tiles] == [0, 1]
    assert_tiles_equal_samples(out, result, arrays["organmnist3d-28"]["val_images"], load_catalog()["organmnist3d"],
                               zoom=2)


@pytest.mark.slow
def test_a_hub_montage_reads_only_the_shards_it_shows(releases, hub_server, hub_repo_id, tmp_path, capsys):
    root, arrays = releases
    push(hub_repo_id, ["pneumoniamnist-28"], num_shards=4, data_dir=str(root / "release"),
         cache_dir=str(root / "cache"), no_checks=True)
    hub_server.reset_log()
    out = tmp_path / "two.png"
    assert main(["montage", "pneumoniamnist-28", "--repo", hub_repo_id, "-n", "2", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "2/2 rows read from Hub repo" in captured.err  # progress on stderr, the summary on stdout
    assert captured.out.startswith(f"Wrote {out}: 2 samples of pneumoniamnist-28 train")
    fetched = {path.split("?")[0].rsplit("/", 1)[-1] for method, path, _ in hub_server.requests
               if method == "GET" and ".parquet" in path}
    assert fetched == {"train-00000-of-00004.parquet"}  # 12 rows in 4 shards: the first shard holds rows 0-2
