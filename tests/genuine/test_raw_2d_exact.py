"""Genuine raw 2D sources (Kermany X-rays, BUSI ultrasound PNGs) regenerate their official rows bit for bit: through
the builders, regenerate, align, verify and montage (PneumoniaMNIST-28, BreastMNIST-28 and -64)."""

import csv
import shutil

import numpy as np
import pytest

from medmnist_plus_common.catalog import load_catalog
from medmnist_plus_common.cli import main

from medmnist_plus_common.tools.align import align
from medmnist_plus_common.tools.montage import montage
from medmnist_plus_common.tools.verify import verify

from tests.datasets.test_raw_2d import all_rows, build_raw, write_manifest
from tests.genuine.samples import SHARED_DATA, needs, registered
from tests.integration.test_montage import assert_tiles_equal_samples
from tests.integration.test_regenerate_align_calibrate import _read_manifest

KERMANY = SHARED_DATA / "raw" / "kermany"
BUSI = SHARED_DATA / "raw" / "busi"
# every test here reads some of these: skip (saying how to fetch them) unless all are present
needs_genuine = needs(*registered("raw/kermany"), *registered("raw/busi"), "breastmnist.npz")


@needs_genuine
def test_genuine_kermany_sources_regenerate_their_official_pneumoniamnist_rows(tmp_path, cache_dir):
    official = np.load(KERMANY / "pneumoniamnist_28_rows.npz")
    manifest = write_manifest(tmp_path / "kermany.csv", [
        (split, int(index), record, int(label[0]))
        for split, index, record, label in zip(official["split"], official["index"], official["record"],
                                               official["labels"])])
    builder = build_raw("pneumoniamnist", KERMANY, cache_dir, manifest=str(manifest))  # read in place
    rows = all_rows(builder.as_dataset())
    assert list(rows) == ["train"] and [r["index"] for r in rows["train"]] == [32, 860]
    for row, image, label in zip(rows["train"], official["images"], official["labels"]):
        assert row["label"] == int(label[0])
        assert np.array_equal(np.asarray(row["image"]), image)


@needs_genuine
@pytest.mark.parametrize("size", [28, 64])
def test_genuine_busi_sources_regenerate_their_official_breastmnist_rows(size, cache_dir):
    if size == 28:
        release = np.load(SHARED_DATA / "breastmnist.npz")
        member = {"train": "train", "validation": "val", "test": "test"}

        def official(split, index):
            return release[f"{member[split]}_images"][index], int(release[f"{member[split]}_labels"][index, 0])
    else:
        rows64 = np.load(BUSI / "breastmnist_64_rows.npz")
        table = {(str(s), int(i)): (img, int(lab[0])) for s, i, img, lab in
                 zip(rows64["split"], rows64["index"], rows64["images"], rows64["labels"])}

        def official(split, index):
            return table[{"validation": "val"}.get(split, split), index]

    builder = build_raw("breastmnist", BUSI, cache_dir, config=str(size), manifest=str(BUSI / "breastmnist_rows.csv"))
    rows = all_rows(builder.as_dataset())
    assert {s: sorted(r["index"] for r in rows_) for s, rows_ in rows.items()} == {"train": [343, 436],
                                                                                  "test": [72, 123]}
    for split, rows_ in rows.items():
        for row in rows_:
            image, label = official(split, row["index"])
            assert row["label"] == label
            assert np.array_equal(np.asarray(row["image"]), image), (split, row["index"])
    assert builder.provenance()["official_indices"] is True


@needs_genuine
def test_genuine_kermany_sources_need_no_copy_and_stay_untouched(tmp_path, cache_dir):
    """Built from a copy in tmp_path, the result is the same as in place (and nothing is written beside them)."""
    before = sorted(p.name for p in KERMANY.rglob("*"))
    copy = tmp_path / "kermany"
    shutil.copytree(KERMANY / "train", copy / "train")
    official = np.load(KERMANY / "pneumoniamnist_28_rows.npz")
    builder = build_raw("pneumoniamnist", copy, cache_dir)  # no manifest: both are train records
    images = sorted(np.asarray(r["image"]).tobytes() for rows in all_rows(builder.as_dataset()).values()
                    for r in rows)
    assert images == sorted(image.tobytes() for image in official["images"])
    assert sorted(p.name for p in KERMANY.rglob("*")) == before


@needs_genuine
def test_genuine_busi_images_align_to_their_official_rows(tmp_path):
    raw = SHARED_DATA / "raw" / "busi"
    report = align("breastmnist", raw, SHARED_DATA / "breastmnist.npz", out=tmp_path / "m.csv")
    assert report.count("exact") == 4 and not report.unmatched
    with open(raw / "breastmnist_rows.csv", newline="") as f:
        expected = sorted((r["split"], int(r["index"]), r["record"], r["label"]) for r in csv.DictReader(f))
    assert _read_manifest(tmp_path / "m.csv") == expected


@needs_genuine
def test_genuine_kermany_images_align_among_other_rows(tmp_path):
    """The two genuine X-rays are found in a test release that places their official rows among other rows."""
    raw = SHARED_DATA / "raw" / "kermany"
    with np.load(raw / "pneumoniamnist_28_rows.npz") as rows:
        genuine = {str(r): (str(s), int(i), img, lab) for r, s, i, img, lab in
                   zip(rows["record"], rows["split"], rows["index"], rows["images"], rows["labels"])}
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (900, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 2, (900, 1), dtype=np.uint8)
    for split, index, image, label in genuine.values():
        assert split == "train"
        train[index], labels[index] = image, label
    release = tmp_path / "pneumoniamnist.npz"
    np.savez_compressed(release, train_images=train, train_labels=labels,
                        val_images=np.zeros((0, 28, 28), np.uint8), val_labels=np.zeros((0, 1), np.uint8),
                        test_images=rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
                        test_labels=np.zeros((5, 1), np.uint8))
    report = align("pneumoniamnist", raw, release, out=tmp_path / "m.csv")
    assert report.count("exact") == 2 and not report.unmatched
    assert _read_manifest(tmp_path / "m.csv") == sorted(
        ("train", genuine[r][1], r, str(int(genuine[r][3][0]))) for r in genuine)


@needs_genuine
def test_genuine_raw_regeneration_matches_the_official_rows_it_has(tmp_path):
    """Four genuine BUSI originals regenerated by the raw recipe with their manifest (official indices): every
    row present equals the official file; the other 776 rows of the file are named missing, nothing else."""
    raw, official = SHARED_DATA / "raw" / "busi", SHARED_DATA / "breastmnist.npz"
    report = verify("breastmnist-28", against=str(official), source="raw", data_dir=str(raw),
                    manifest=str(raw / "breastmnist_rows.csv"), cache_dir=str(tmp_path / "cache"))
    assert sum(s.rows for s in report.splits) == 4
    assert report.counts == {"missing": 780 - 4}  # no pixel, label or index differs
    assert {(m.split, m.index) for m in report.mismatches}.isdisjoint({("train", 343), ("train", 436), ("test", 123),
                                                                      ("test", 72)})
    assert not report.ok


@needs_genuine
def test_genuine_partial_collection_checks_only_the_rows_present(tmp_path, capsys):
    """`verify --present-only`: the four rows the partial collection has are checked, all exact, exit 0."""
    raw, official = SHARED_DATA / "raw" / "busi", SHARED_DATA / "breastmnist.npz"
    code = main(["verify", "breastmnist-28", "--against", str(official), "--source", "raw", "--data-dir", str(raw),
                 "--manifest", str(raw / "breastmnist_rows.csv"), "--cache-dir", str(tmp_path / "cache"),
                 "--present-only"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "OK breastmnist-28: 4 of 780 rows present: 4 exact" in out, out
    assert "missing" not in out, out


@needs_genuine
def test_raw_source_with_a_manifest(tmp_path):
    """Genuine BUSI originals regenerated by the raw recipe: tiles carry their official index and equal its row."""
    raw, official = SHARED_DATA / "raw" / "busi", SHARED_DATA / "breastmnist.npz"
    out = tmp_path / "raw.png"
    assert main(["montage", "breastmnist-28", "--source", "raw", "--data-dir", str(raw), "--manifest",
                 str(raw / "breastmnist_rows.csv"), "--cache-dir", str(tmp_path / "cache"), "-o", str(out)]) == 0
    result = montage("breastmnist-28", source="raw", data_dir=str(raw), manifest=str(raw / "breastmnist_rows.csv"),
                     cache_dir=str(tmp_path / "cache"))
    assert sorted(tile.index for tile in result.tiles) == [343, 436]
    with np.load(official) as data:
        images = data["train_images"]
    assert_tiles_equal_samples(out, result, images, load_catalog()["breastmnist"], zoom=2)
