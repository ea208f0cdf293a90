"""`medmnist-plus verify`: a correct copy passes; one altered pixel, one swapped label and one missing row are each
found and named (split, index, what differs), on a local build, an exported folder and the test Hub."""

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from medmnist_plus_common.catalog import load_catalog
from medmnist_plus_common.cli.main import main
from medmnist_plus_common.publish.push import export, push
from medmnist_plus_common.tools.verify import verify

from tests.fakes.releases import fake_release_folder, write_fake_release, write_fake_releases

CONFIGS = {
    "bloodmnist-28": {"train": 10, "validation": 5, "test": 6},  # 2D RGB
    "chestmnist-28": {"train": 8, "validation": 4, "test": 5},  # multi-label
    "organmnist3d-28": {"train": 6, "validation": 4, "test": 4},  # 3D
}


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    return fake_release_folder(tmp_path_factory, "verify", CONFIGS, seed=3)


def release_path(root, config):
    flag, size = config.rsplit("-", 1)
    return str(root / "release" / load_catalog()[flag].files[int(size)].file)


def exported(root, config, tmp_path):
    out = tmp_path / "medmnist_plus"
    export(str(out), [config], num_shards=1, data_dir=str(root / "release"), cache_dir=str(root / "cache"),
           no_checks=True)
    return out


def tamper(out, config, split, change):
    """Rewrite the one Parquet shard of ``split`` with ``change(rows)`` applied to its rows (as Python dicts)."""
    path = out / config / f"{split}-00000-of-00001.parquet"
    table = pq.read_table(path)
    rows = change(table.to_pylist())
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)


def alter_pixel(rows, index, flag_dims):
    row = next(r for r in rows if r["index"] == index)
    if flag_dims == 3:
        row["volume"][1][2][3] = (row["volume"][1][2][3] + 1) % 256
    else:
        pixels = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"]))).copy()
        at = (4, 5, 0) if pixels.ndim == 3 else (4, 5)  # one value (one channel of an RGB pixel)
        pixels[at] = (int(pixels[at]) + 1) % 256
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        row["image"] = {"bytes": buffer.getvalue(), "path": None}
    return rows


def swap_label(rows, index, multilabel, classes):
    row = next(r for r in rows if r["index"] == index)
    if multilabel:
        row["label"] = [1 - v if i == 0 else v for i, v in enumerate(row["label"])]
    else:
        row["label"] = (row["label"] + 1) % classes
    return rows


@pytest.mark.parametrize("config", list(CONFIGS))
def test_a_correct_local_build_passes(config, releases, capsys):
    root, _ = releases
    code = main(["verify", config, "--against", release_path(root, config), "--data-dir", str(root / "release"),
                 "--cache-dir", str(root / "cache")])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = sum(CONFIGS[config].values())
    assert out.strip().splitlines()[-1] == (f"OK {config}: {rows} rows in 3 splits compared exactly with "
                                            f"{release_path(root, config)}; no mismatch.")
    assert "(expected" in out and "note: train: the release file has" in out  # a subset of the official counts


@pytest.mark.parametrize("config", list(CONFIGS))
def test_an_altered_export_fails_naming_split_index_and_difference(config, releases, tmp_path, capsys):
    root, _ = releases
    facts = load_catalog()[config.rsplit("-", 1)[0]]
    out = exported(root, config, tmp_path)
    assert verify(config, against=release_path(root, config), data_dir=str(out)).ok  # untouched: passes
    tamper(out, config, "train", lambda rows: alter_pixel(rows, 3, facts.dims))
    tamper(out, config, "test", lambda rows: swap_label(rows, 1, facts.is_multilabel, facts.num_classes))
    tamper(out, config, "validation", lambda rows: [r for r in rows if r["index"] != 2])

    report = verify(config, against=release_path(root, config), data_dir=str(out))
    assert not report.ok
    found = {(m.split, m.index, m.kind): m.detail for m in report.mismatches}
    assert set(found) == {("train", 3, "pixels"), ("test", 1, "label"), ("validation", 2, "missing")}
    position = "(1, 2, 3)" if facts.dims == 3 else ("(4, 5, 0)" if facts.channels == 3 else "(4, 5)")
    assert found[("train", 3, "pixels")].startswith(f"1 of {int(np.prod(facts.image_shape(28))):,} values differ, "
                                                    f"first at {position}")
    assert report.counts == {"pixels": 1, "label": 1, "missing": 1}
    rows = CONFIGS[config]["validation"]
    assert report.problems == [f"validation: {rows - 1} rows, but the release file has {rows}"]

    code = main(["verify", config, "--against", release_path(root, config), "--data-dir", str(out)])
    printed = capsys.readouterr().out
    assert code == 1
    assert "train index 3: pixels: 1 of" in printed and "validation index 2: missing" in printed
    assert "test index 1: label:" in printed and "in the release" in printed
    assert printed.strip().splitlines()[-1].startswith(f"FAILED {config}: 3 mismatching rows (label 1, missing 1, pixels 1)")


def test_catalog_checks_without_a_release_file(releases, tmp_path, capsys):
    """Without --against the catalog is the reference: a small fake build fails on its row counts."""
    root, _ = releases
    report = verify("bloodmnist-28", data_dir=str(root / "release"), cache_dir=str(root / "cache"))
    assert not report.ok
    assert "train: 10 rows, but the catalog has 11,959" in report.problems
    assert report.splits[0].histogram == {name: count for name, count in report.splits[0].histogram.items()}
    assert sum(report.splits[0].histogram.values()) == 10


def test_duplicated_and_unknown_indices_are_named(releases, tmp_path):
    root, _ = releases
    out = exported(root, "bloodmnist-28", tmp_path)

    def change(rows):
        rows[4]["index"] = 2  # index 2 twice, 4 missing
        rows[5]["index"] = 99  # not a row of the split
        return rows

    tamper(out, "bloodmnist-28", "train", change)
    report = verify("bloodmnist-28", against=release_path(root, "bloodmnist-28"), data_dir=str(out), splits=["train"])
    kinds = {(m.index, m.kind) for m in report.mismatches}
    assert {(2, "duplicated"), (99, "unknown index"), (4, "missing"), (5, "missing")} <= kinds


def test_a_local_build_of_an_altered_release_fails(releases, tmp_path):
    """A release regenerated with one voxel changed, built locally, compared with the original file."""
    root, arrays = releases
    altered = {name: array.copy() for name, array in arrays["organmnist3d-28"].items()}
    altered["test_images"][2, 10, 11, 12] ^= 0x40
    write_fake_release(tmp_path / "regenerated", "organmnist3d", 28, None, arrays=altered)
    report = verify("organmnist3d-28", against=release_path(root, "organmnist3d-28"),
                    data_dir=str(tmp_path / "regenerated"), cache_dir=str(tmp_path / "cache"))
    assert [str(m) for m in report.mismatches] == [
        f"test index 2: pixels: 1 of 21,952 values differ, first at (10, 11, 12): "
        f"{altered['test_images'][2, 10, 11, 12]} here, {arrays['organmnist3d-28']['test_images'][2, 10, 11, 12]} "
        "in the release"]


@pytest.mark.slow
def test_a_hub_repo_passes_and_fails(releases, hub_repo_id, tmp_path):
    root, _ = releases
    config = "chestmnist-28"
    push(hub_repo_id, [config], num_shards=2, data_dir=str(root / "release"), cache_dir=str(root / "cache"),
         no_checks=True)
    assert verify(config, against=release_path(root, config), repo=hub_repo_id).ok
    other = tmp_path / "other"
    write_fake_release(other, "chestmnist", 28, CONFIGS[config], seed=99)  # a different file
    report = verify(config, against=str(other / "chestmnist.npz"), repo=hub_repo_id, splits=["test"])
    assert not report.ok and report.counts["pixels"] == CONFIGS[config]["test"]


def test_progress_on_stderr_and_one_summary_line(releases, capsys):
    root, _ = releases
    config = "organmnist3d-28"
    assert main(["verify", config, "--against", release_path(root, config), "--data-dir", str(root / "release"),
                 "--cache-dir", str(root / "cache")]) == 0
    captured = capsys.readouterr()
    assert "rows checked" in captured.err and "MiB of pixels compared" in captured.err
    assert "rows of " in captured.err and " read" in captured.err  # the release file's pass
    assert [line for line in captured.out.splitlines() if line.startswith(("OK ", "FAILED "))] == [
        captured.out.strip().splitlines()[-1]]


@pytest.mark.slow
def test_memory_stays_bounded(tmp_path):
    """Verifying 4,000 RGB 64 px rows (49 MB of pixels) allocates far less than the pixels (numpy, tracemalloc)."""
    import tracemalloc

    counts = {"train": 4000, "validation": 2, "test": 2}
    write_fake_releases(tmp_path / "release", {"bloodmnist-64": counts}, seed=1)
    path = str(tmp_path / "release" / "bloodmnist_64.npz")
    verify("bloodmnist-64", against=path, data_dir=str(tmp_path / "release"), cache_dir=str(tmp_path / "cache"),
           splits=["validation"])  # builds the cache first, outside the measurement
    tracemalloc.start()
    try:
        report = verify("bloodmnist-64", against=path, data_dir=str(tmp_path / "release"),
                        cache_dir=str(tmp_path / "cache"), splits=["train"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.ok and report.splits[0].pixel_bytes == 4000 * 64 * 64 * 3
    assert peak < 4000 * 64 * 64 * 3 / 4, peak


def test_a_release_file_of_another_dataset_or_size_is_one_clear_error(releases, tmp_path, capsys):
    root, _ = releases
    code = main(["verify", "bloodmnist-28", "--against", release_path(root, "organmnist3d-28"), "--data-dir",
                 str(root / "release"), "--cache-dir", str(root / "cache")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "organmnist3d.npz: train_images.npy has shape (6, 28, 28, 28), but BloodMNIST at size 28 needs" in err


def test_features_that_differ_from_the_catalog_fail(releases, tmp_path):
    """An export whose card declares other label names than the catalog's fails the features check."""
    root, _ = releases
    out = exported(root, "bloodmnist-28", tmp_path)
    card = (out / "README.md").read_text()
    assert "eosinophil" in card
    (out / "README.md").write_text(card.replace("eosinophil", "eosinophile"))
    report = verify("bloodmnist-28", against=release_path(root, "bloodmnist-28"), data_dir=str(out), splits=["test"])
    assert not report.ok and not report.counts  # every row is right; the declared features are not
    assert len(report.problems) == 1 and report.problems[0].startswith("features: ")
    assert "eosinophile" in report.problems[0]


def test_present_only_checks_the_rows_a_partial_source_has(releases, tmp_path):
    """An export missing two rows and with one altered pixel: without --present-only the absent rows are named
    missing; with it they are not, the altered row still fails, and the summary counts present and exact rows."""
    root, _ = releases
    out = exported(root, "bloodmnist-28", tmp_path)
    tamper(out, "bloodmnist-28", "train", lambda rows: alter_pixel([r for r in rows if r["index"] not in (7, 8)], 3, 2))
    against = release_path(root, "bloodmnist-28")
    whole = verify("bloodmnist-28", against=against, data_dir=str(out), splits=["train"])
    assert whole.counts == {"missing": 2, "pixels": 1} and not whole.ok
    partial = verify("bloodmnist-28", against=against, data_dir=str(out), splits=["train"], present_only=True)
    assert partial.counts == {"pixels": 1} and not partial.ok and not partial.problems
    assert partial.summary().startswith("FAILED bloodmnist-28: 8 of 10 rows present: 7 exact; mismatches: pixels 1")
    tamper(out, "bloodmnist-28", "train", lambda rows: [r for r in rows if r["index"] != 3])  # the altered row goes
    clean = verify("bloodmnist-28", against=against, data_dir=str(out), splits=["train"], present_only=True)
    assert clean.ok and clean.summary().startswith("OK bloodmnist-28: 7 of 10 rows present: 7 exact"), clean.summary()
