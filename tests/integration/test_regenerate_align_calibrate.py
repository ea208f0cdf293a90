"""regenerate / align / calibrate on raw trees made here (BUSI layout, real PNG files), and the card of a raw build."""

import csv
import json
import shutil
import zipfile

import numpy as np
import pytest
from PIL import Image

from builders import BreastMNIST
from medmnist_plus_common.recipes import imageops
from medmnist_plus_common.cli.main import main
from medmnist_plus_common.errors import RawSourceError
from medmnist_plus_common.publish.push import export
from medmnist_plus_common.tools.align import align
from medmnist_plus_common.tools.calibrate import calibrate
from medmnist_plus_common.tools.regenerate import regenerate


CLASSES = {"malignant": 0, "benign": 1, "normal": 1}


def _busi_tree(root, per_class=4, seed=0):
    """A BUSI-like tree: gray ultrasound-like PNGs stored RGB (as BUSI does), 449-701 px, with masks beside them."""
    rng = np.random.default_rng(seed)
    records = []
    for folder in CLASSES:
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in range(1, per_class + 1):
            height, width = int(rng.integers(449, 560)), int(rng.integers(500, 701))
            yy, xx = np.mgrid[0:height, 0:width]
            cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
            blob = 180 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (rng.uniform(40, 120) ** 2)))
            gray = np.clip(30 + blob + rng.normal(0, 12, (height, width)), 0, 255).astype(np.uint8)
            name = f"{folder}/{folder} ({i}).png"
            Image.fromarray(np.stack([gray] * 3, axis=-1)).save(root / name)
            Image.fromarray((gray > 128).astype(np.uint8) * 255).save(root / f"{folder}/{folder} ({i})_mask.png")
            records.append((name, CLASSES[folder]))
    return records


def _expected(path, size, kernel="bilinear"):
    """The measured rule, written out independently: gray, centered square (halves to even), PIL resize."""
    image = Image.open(path).convert("L")
    side = min(image.size)
    left, top = int(round((image.width - side) / 2.0)), int(round((image.height - side) / 2.0))
    return np.asarray(image.crop((left, top, left + side, top + side)).resize((size, size), imageops.RESAMPLE[kernel]))


def _write_manifest(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "index", "record", "label"])
        writer.writerows(rows)
    return path


def _shuffled_manifest(tmp_path, records, seed=1):
    """An "official" mapping: records spread over the three splits at shuffled indices."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(records))
    splits = ["train"] * (len(records) - 4) + ["val", "val", "test", "test"]
    rows, next_index = [], {"train": 0, "val": 0, "test": 0}
    shuffled_index = {s: list(rng.permutation(70)) for s in next_index}
    for split, position in zip(splits, order):
        record, label = records[position]
        rows.append([split, int(shuffled_index[split][next_index[split]]), record, label])
        next_index[split] += 1
    return _write_manifest(tmp_path / "official_manifest.csv", rows), rows


def _read_manifest(path):
    with open(path, newline="") as f:
        return sorted((r["split"], int(r["index"]), r["record"], r["label"]) for r in csv.DictReader(f))


def test_regenerate_writes_official_format_and_all_sizes_equal_separate_passes(tmp_path):
    records = _busi_tree(tmp_path / "raw")
    manifest, rows = _shuffled_manifest(tmp_path, records)
    together = regenerate("breastmnist", tmp_path / "raw", [28, 64, 100], tmp_path / "all", manifest=manifest,
                          no_checks=True)
    alone = regenerate("breastmnist", tmp_path / "raw", [64], tmp_path / "alone", manifest=manifest, no_checks=True)
    assert sorted(together.files) == [28, 64, 100] and together.official_indices
    with np.load(together.files[64]) as a, np.load(alone.files[64]) as b:
        official = {"train_images", "train_labels", "val_images", "val_labels", "test_images", "test_labels"}
        # the manifest's indices are sparse, so each split also keeps them (<split>_index), which np.load ignores
        assert set(a.files) == set(b.files) == official | {"train_index", "val_index", "test_index"}
        for name in a.files:
            assert np.array_equal(a[name], b[name]), name
    # rows sorted by official index, pixels by the rule, labels from the collection
    with np.load(tmp_path / "all" / "breastmnist.npz") as release:
        assert release["train_images"].dtype == np.uint8 and release["train_images"].shape[1:] == (28, 28)
        assert release["train_labels"].shape[1:] == (1,)
        for split in ("train", "val", "test"):
            listed = sorted((index, record, label) for s, index, record, label in rows if s == split)
            assert release[f"{split}_index"].tolist() == [index for index, _, _ in listed]
            for row, (_, record, label) in enumerate(listed):
                assert np.array_equal(release[f"{split}_images"][row], _expected(tmp_path / "raw" / record, 28))
                assert release[f"{split}_labels"][row, 0] == label
    provenance = json.loads((tmp_path / "all" / "medmnist_plus_regenerated.json").read_text())
    entry = provenance["files"]["breastmnist_64.npz"]
    assert entry["source"] == "regenerated" and entry["official_indices"] is True and "pillow" in entry["versions"]
    assert _read_manifest(tmp_path / "all" / "breastmnist_manifest.csv") == sorted(
        (s, i, r, str(l)) for s, i, r, l in rows)


def test_regenerated_files_read_back_by_the_builder_labelled_regenerated(tmp_path):
    records = _busi_tree(tmp_path / "raw", per_class=2)
    manifest, rows = _shuffled_manifest(tmp_path, records)
    regenerate("breastmnist", tmp_path / "raw", [28], tmp_path / "out", manifest=manifest, no_checks=True)
    builder = BreastMNIST(config_name="28", data_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))
    builder.download_and_prepare(verification_mode="no_checks")
    dataset = builder.as_dataset()
    with np.load(tmp_path / "out" / "breastmnist.npz") as release:
        train = dataset["train"]
        assert train.num_rows == len(release["train_images"])
        position = {int(index): row for row, index in enumerate(release["train_index"])}
        assert sorted(train["index"]) == sorted(position)  # the official (sparse) indices, not row positions
        for row in train:
            assert np.array_equal(np.asarray(row["image"]), release["train_images"][position[row["index"]]])
    assert "REGENERATED" in builder.info.description
    assert builder.provenance()["source"] == "regenerated"
    # without no_checks a partial regenerated file fails clearly (its split sizes are not the catalog's)
    strict = BreastMNIST(config_name="28", data_dir=str(tmp_path / "out"), cache_dir=str(tmp_path / "cache2"))
    with pytest.raises(Exception, match="split has .* rows, but the official BreastMNIST"):
        strict.download_and_prepare()


def test_align_recovers_a_shuffled_mapping_and_reports_duplicates_and_leftovers(tmp_path):
    raw = tmp_path / "raw"
    records = _busi_tree(raw)
    manifest, rows = _shuffled_manifest(tmp_path, records)
    regenerate("breastmnist", raw, [28], tmp_path / "official", manifest=manifest, no_checks=True)
    release = tmp_path / "official" / "breastmnist.npz"
    out = tmp_path / "aligned.csv"
    report = align("breastmnist", raw, release, out=out)
    assert report.count("exact") == len(records) and not report.unmatched
    assert _read_manifest(out) == sorted((s, i, r, str(l)) for s, i, r, l in rows)

    # a planted duplicate (same pixels as an official row that already has its record) and an extra record
    shutil.copy(raw / "benign" / "benign (1).png", raw / "benign" / "benign (99).png")
    extra = np.full((480, 520, 3), 77, np.uint8)
    Image.fromarray(extra).save(raw / "malignant" / "malignant (98).png")
    report = align("breastmnist", raw, release, out=out)
    assert report.count("exact") + report.count("ambiguous") == len(records)
    unmatched = {record.record: why for record, why, _ in report.unmatched}
    assert set(unmatched) == {"benign/benign (99).png", "malignant/malignant (98).png"} or (
        "malignant/malignant (98).png" in unmatched and report.count("ambiguous") >= 1)
    with open(f"{out}.report.csv", newline="") as f:
        listed = {row["record"]: row for row in csv.DictReader(f)}
    assert "malignant/malignant (98).png" in listed and listed["malignant/malignant (98).png"]["status"] == "unmatched"
    assert "benign/benign (99).png" in listed or "benign/benign (1).png" in listed  # the duplicate pair is reported
    assert report.missing_rows == 0


def test_align_takes_the_nearest_row_within_the_tolerance(tmp_path):
    raw = tmp_path / "raw"
    records = _busi_tree(raw, per_class=2)
    manifest, rows = _shuffled_manifest(tmp_path, records)
    regenerate("breastmnist", raw, [28], tmp_path / "official", manifest=manifest, no_checks=True)
    release = tmp_path / "official" / "breastmnist.npz"
    with np.load(release) as z:
        arrays = {name: z[name].copy() for name in z.files}
    arrays["train_images"][0, :4, :4] ^= 1  # one official row differs a little from what the recipe makes
    np.savez_compressed(release, **arrays)
    report = align("breastmnist", raw, release, out=tmp_path / "m.csv")
    assert report.count("nearest") == 1 and report.count("exact") == len(records) - 1 and not report.unmatched
    nearest = [(a, d) for a, how, d in report.matched if how == "nearest"][0]
    assert nearest[0].split == "train" and nearest[0].index == arrays["train_index"][0] and 0 < nearest[1] < 0.1
    tight = align("breastmnist", raw, release, out=tmp_path / "m2.csv", tolerance=0.0)
    assert len(tight.unmatched) == 1


def test_calibrate_names_the_variant_that_made_the_file(tmp_path):
    raw = tmp_path / "raw"
    records = _busi_tree(raw, per_class=2)
    manifest, _ = _shuffled_manifest(tmp_path, records)
    regenerate("breastmnist", raw, [32], tmp_path / "official", manifest=manifest, no_checks=True,
               variant="kernel=bicubic,jpeg=90")
    rows = calibrate("breastmnist", raw, tmp_path / "official" / "breastmnist_32.npz", manifest)
    best = rows[0]
    assert (best.variant.kernel, best.variant.jpeg_quality) == ("bicubic", 90)
    assert best.exact == best.total == len(records) and best.mean_difference == 0
    assert rows[1].exact < rows[1].total  # the others are told apart


def test_raw_build_is_labelled_everywhere_and_exports_a_card_that_says_so(tmp_path):
    raw = tmp_path / "raw"
    _busi_tree(raw, per_class=3)
    out = tmp_path / "export"
    written = export(str(out), ["breastmnist-28"], no_checks=True, source="raw", data_dir=str(raw),
                     cache_dir=str(tmp_path / "cache"))
    assert written == ["breastmnist-28"]
    provenance = json.loads((out / "medmnist_plus.json").read_text())["breastmnist-28"]
    assert provenance["source"] == "raw" and provenance["official_indices"] is False
    card = (out / "README.md").read_text()
    assert "**regenerated** from the raw Breast Ultrasound Images (BUSI) collection" in card
    assert "NOT the official indices" in card and "NOT from the official release files" in card
    assert "is not used for any config here" not in card


def test_cli_regenerate_align_calibrate(tmp_path, capsys):
    raw = tmp_path / "raw"
    records = _busi_tree(raw, per_class=2)
    manifest, _ = _shuffled_manifest(tmp_path, records)
    assert main(["regenerate", "breastmnist", "--data-dir", str(raw), "--sizes", "28,64", "--out",
                 str(tmp_path / "o"), "--manifest", str(manifest), "--no-checks", "--num-proc", "2"]) == 0
    out = capsys.readouterr().out
    assert f"Regenerated {len(records)} rows" in out and "breastmnist_64.npz" in out
    assert main(["align", "breastmnist", "--data-dir", str(raw), "--release", str(tmp_path / "o" / "breastmnist.npz"),
                 "--out", str(tmp_path / "a.csv")]) == 0
    assert f"{len(records)} exact" in capsys.readouterr().out
    assert main(["calibrate", "breastmnist", "--data-dir", str(raw), "--release",
                 str(tmp_path / "o" / "breastmnist_64.npz"), "--manifest", str(tmp_path / "a.csv")]) == 0
    assert "Best: kernel=bilinear, jpeg=none" in capsys.readouterr().out
    # without a manifest or no-checks, a partial collection is refused with what to do
    assert main(["regenerate", "breastmnist", "--data-dir", str(raw), "--out", str(tmp_path / "p")]) == 2
    assert "no_checks" in capsys.readouterr().err


def test_regenerate_num_proc_gives_the_same_files(tmp_path):
    raw = tmp_path / "raw"
    records = _busi_tree(raw, per_class=3)
    manifest, _ = _shuffled_manifest(tmp_path, records)
    one = regenerate("breastmnist", raw, [28], tmp_path / "one", manifest=manifest, no_checks=True)
    two = regenerate("breastmnist", raw, [28], tmp_path / "two", manifest=manifest, no_checks=True, num_proc=2)
    with np.load(one.files[28]) as a, np.load(two.files[28]) as b:
        for name in a.files:
            assert np.array_equal(a[name], b[name])


def test_unknown_sizes_are_refused(tmp_path):
    _busi_tree(tmp_path / "raw", per_class=1)
    with pytest.raises(RawSourceError, match="8 to 1024"):
        regenerate("breastmnist", tmp_path / "raw", [5], tmp_path / "o", no_checks=True)


def test_a_manifest_naming_a_file_the_recipe_leaves_out_is_refused(tmp_path):
    raw = tmp_path / "raw"
    _busi_tree(raw, per_class=1)
    manifest = _write_manifest(tmp_path / "m.csv", [["train", 0, "benign/benign (1)_mask.png", 1]])
    with pytest.raises(RawSourceError, match=r"m\.csv, line 2: 'benign/benign \(1\)_mask\.png' is a file .* not one of"):
        regenerate("breastmnist", raw, [28], tmp_path / "o", manifest=manifest, no_checks=True)


@pytest.mark.parametrize("num_proc", [1, 2])
def test_regenerate_skips_a_bad_record_and_writes_consistent_files(tmp_path, num_proc):
    """A record dropped while the rows stream into the file (its split's header already written): the file is
    written again from its own rows with the right counts; every kept row is still exact, with rows deflated in
    the workers (2 processes) or by the file's own stream (1)."""
    raw = tmp_path / "raw"
    records = _busi_tree(raw, per_class=3)
    manifest, rows = _shuffled_manifest(tmp_path, records)
    bad = [r for s, _, r, _ in rows if s == "train"][0]
    (raw / bad).write_bytes((raw / bad).read_bytes()[:200])  # truncated PNG
    with pytest.raises(Exception, match="truncated or corrupt"):
        regenerate("breastmnist", raw, [28], tmp_path / "strict", manifest=manifest, no_checks=True)
    assert not list((tmp_path / "strict").glob("*.npz")) and not list((tmp_path / "strict").glob("*.partial"))
    report = regenerate("breastmnist", raw, [28, 64], tmp_path / "o", manifest=manifest, no_checks=True,
                        skip_bad=True, num_proc=num_proc)
    assert len(report.skipped) == 1 and bad in report.skipped[0]
    assert report.counts["train"] == sum(1 for s, *_ in rows if s == "train") - 1
    with np.load(report.files[64]) as release:
        listed = sorted((i, r) for s, i, r, _ in rows if s == "train" and r != bad)
        assert release["train_images"].shape[0] == len(listed) == len(release["train_labels"])
        assert release["train_index"].tolist() == [i for i, _ in listed]
        for row, (_, record) in enumerate(listed):
            assert np.array_equal(release["train_images"][row], _expected(raw / record, 64))
    with zipfile.ZipFile(report.files[64]) as archive:
        assert archive.testzip() is None  # every member's CRC-32 checks
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "breastmnist.npz", "breastmnist_64.npz", "breastmnist_manifest.csv", "medmnist_plus_regenerated.json"]


def test_rows_deflated_in_the_workers_make_valid_deflated_members(tmp_path):
    """regenerate's workers compress each row on its own; the members are still ordinary deflated zip entries whose
    CRCs check, and they are not much larger than np.savez_compressed's of the same arrays (ISA-L's level 1
    writes about 10 % more bytes than zlib's level 6, several times faster)."""
    import zipfile

    raw = tmp_path / "raw"
    records = _busi_tree(raw, per_class=4)
    manifest, _ = _shuffled_manifest(tmp_path, records)
    report = regenerate("breastmnist", raw, [64], tmp_path / "o", manifest=manifest, no_checks=True, num_proc=2)
    with zipfile.ZipFile(report.files[64]) as archive:
        assert archive.testzip() is None
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}
        ours = archive.getinfo("train_images.npy").compress_size
    with np.load(report.files[64]) as release:
        np.savez_compressed(tmp_path / "reference.npz", train_images=release["train_images"])
    with zipfile.ZipFile(tmp_path / "reference.npz") as archive:
        reference = archive.getinfo("train_images.npy").compress_size
    assert ours <= reference * 1.2 + 64


def test_crc32_combine_matches_zlib():
    import zlib

    from medmnist_plus_common.release.writer import crc32_combine

    rng = np.random.default_rng(3)
    for length in (0, 1, 7, 784, 2352, 150528, 12345):
        a, b = rng.bytes(int(rng.integers(0, 500))), rng.bytes(length)
        assert crc32_combine(zlib.crc32(a), zlib.crc32(b), length) == zlib.crc32(a + b)


def test_regenerate_without_zipfile_internals_compresses_in_the_main_process(tmp_path, monkeypatch):
    """Where zipfile's member writer lacks the fields the worker-deflated path updates, rows are written the
    ordinary way: the same arrays, valid CRCs."""
    import zipfile

    from medmnist_plus_common.release import writer as module
    raw = tmp_path / "raw"
    records = _busi_tree(raw, per_class=2)
    manifest, _ = _shuffled_manifest(tmp_path, records)
    fast = regenerate("breastmnist", raw, [28], tmp_path / "fast", manifest=manifest, no_checks=True)
    monkeypatch.setattr(module._Precompressed, "FIELDS", module._Precompressed.FIELDS + ("_no_such_field",))
    plain = regenerate("breastmnist", raw, [28], tmp_path / "plain", manifest=manifest, no_checks=True)
    with zipfile.ZipFile(plain.files[28]) as archive:
        assert archive.testzip() is None
    with np.load(fast.files[28]) as a, np.load(plain.files[28]) as b:
        for name in a.files:
            assert np.array_equal(a[name], b[name])


@pytest.mark.torch  # its last part reads the files with medmnist (and torch): CI's second stage
def test_isal_deflated_files_hold_the_rows_zlib_would_and_read_everywhere(tmp_path, monkeypatch):
    """Release rows deflated by ISA-L (the default where isal is installed) are standard deflate: np.load, zipfile's
    CRC check and the official medmnist package read the same arrays as from the zlib-deflated file."""
    import zipfile

    pytest.importorskip("isal")
    from medmnist_plus_common.release import writer

    raw = tmp_path / "raw"
    records = _busi_tree(raw, per_class=3)
    manifest, _ = _shuffled_manifest(tmp_path, records)
    monkeypatch.setattr(writer, "_DEFLATE", [])
    assert writer.deflate_library()[0].__name__.endswith("isal_zlib")
    isal_report = regenerate("breastmnist", raw, [28, 64], tmp_path / "isal", manifest=manifest, no_checks=True,
                             num_proc=2)
    monkeypatch.setattr(writer, "_DEFLATE", [(__import__("zlib"), -1)])
    zlib_report = regenerate("breastmnist", raw, [28, 64], tmp_path / "zlib", manifest=manifest, no_checks=True)
    for size in (28, 64):
        with zipfile.ZipFile(isal_report.files[size]) as archive:
            assert archive.testzip() is None
        with np.load(isal_report.files[size]) as a, np.load(zlib_report.files[size]) as b:
            assert a.files == b.files
            for name in a.files:
                assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), (size, name)
    medmnist = pytest.importorskip("medmnist")
    for split in ("train", "val", "test"):
        official = medmnist.BreastMNIST(split=split, size=64, root=str(tmp_path / "isal"))
        with np.load(zlib_report.files[64]) as b:
            assert np.array_equal(official.imgs, b[f"{split}_images"]) and np.array_equal(official.labels,
                                                                                           b[f"{split}_labels"])


def test_npz_members_written_with_isal_read_back_exactly(tmp_path):
    from medmnist_plus_common.release.writer import write_npz_members

    rng = np.random.default_rng(5)
    arrays = {"train_images": rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
              "train_labels": rng.integers(0, 9, (50, 1), dtype=np.uint8)}
    path = write_npz_members(str(tmp_path / "x.npz"), {name: (a.shape, [a[:20], a[20:]]) for name, a in arrays.items()})
    with np.load(path) as release:
        for name, array in arrays.items():
            assert np.array_equal(release[name], array)
