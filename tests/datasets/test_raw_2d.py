"""Regenerating the nine 2D datasets from raw collections in their true on-disk format (issue 8).

Every expectation here is computed independently of the recipes: a few lines of PIL per the rule measured on
genuine sources (open -> convert -> centered crop with offset int(round((long - short) / 2.0)) -> bilinear resize
-> a quality-75 JPEG round trip for JPEG sources only), labels and split sizes from each collection's layout
and the MedMNIST paper's split rule. The collections are written by ``tests.fakes.raw_collections`` with
real image dimensions and file formats; the builds go through the real builders and the Arrow cache.
"""

import io
import os
import warnings
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

import builders
import medmnist_plus_common  # noqa: F401  (installs the load_dataset hook)
from medmnist_plus_common.catalog import SPLITS, load_catalog
from tests.fakes.raw_collections import collection_root, write_raw_collection

# The synthetic PathMNIST collection has a TIFF with a malformed header (as NCT-CRC-HE-100K has); PIL warns when
# the tests' own expectation reads it (the recipe silences it).
pytestmark = pytest.mark.filterwarnings("ignore:Metadata Warning, tag 282:UserWarning")

FLAGS = ("pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist", "breastmnist",
         "bloodmnist", "tissuemnist")

# What each dataset's recipe text and collection say, written out here (not read from the recipes):
# PIL mode, crop ("square": the short edge's centered square; (w, h): a fixed centered window; None: none),
# whether the source (and so the stored result) is JPEG, and the paper's split rule: ("part", test part) = that
# part of the collection is the test split and the rest is divided 9:1; "7:1:2" = a random 7:1:2 split.
SPEC = {
    "pathmnist": ("RGB", "square", False, ("part", "test")),
    "chestmnist": ("L", "square", False, "7:1:2"),
    "dermamnist": ("RGB", "square", True, "7:1:2"),
    "octmnist": ("L", "square", True, ("part", "test")),
    "pneumoniamnist": ("L", "square", True, ("part", "test")),
    "retinamnist": ("RGB", "square", True, ("part", "validation")),
    "breastmnist": ("L", "square", False, "7:1:2"),
    "bloodmnist": ("RGB", (200, 200), True, "7:1:2"),
    "tissuemnist": ("L", None, False, "7:1:2"),
}


# -- the independent expectation ---------------------------------------------------------------------------


def expected_image(path, flag, size):
    """The row a record should become, from the rule measured on genuine sources (plain PIL and numpy)."""
    mode, crop, jpeg, _ = SPEC[flag]
    path = Path(path)
    if flag == "tissuemnist":  # a stack of 7 slices of 32x32 -> its maximum projection
        if path.suffix == ".npy":
            stack = np.load(path)
        else:
            image = Image.open(path)
            stack = []
            for page in range(image.n_frames):
                image.seek(page)
                stack.append(np.array(image))
            stack = np.stack(stack)
        if stack.dtype == np.uint16:
            stack = stack >> 8
        image = Image.fromarray(stack.max(axis=0).astype(np.uint8), "L")
    else:
        image = Image.open(path)
        image.load()
        if image.mode != mode:
            image = image.convert(mode)
    width, height = image.size
    if crop == "square":
        side = min(width, height)
        box_w = box_h = side
    elif crop is None:
        box_w, box_h = width, height
    else:
        box_w, box_h = crop
    left, top = int(round((width - box_w) / 2.0)), int(round((height - box_h) / 2.0))
    image = image.crop((left, top, left + box_w, top + box_h))
    image = image.resize((size, size), Image.BILINEAR)
    if jpeg:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=75)
        image = Image.open(io.BytesIO(buffer.getvalue()))
        image.load()
    return np.asarray(image)


def expected_split_sizes(flag, records):
    """Split sizes by the paper's rule for these records (Python's round, as written in the paper's ratios)."""
    rule = SPEC[flag][3]
    if rule == "7:1:2":
        n = len(records)
        val, test = int(round(n * 0.1)), int(round(n * 0.2))
        return {"train": n - val - test, "validation": val, "test": test}
    test = sum(1 for _, _, part in records if part == rule[1])
    pool = len(records) - test
    val = int(round(pool * 0.1))
    return {"train": pool - val, "validation": val, "test": test}


def label_value(flag, label):
    return list(label) if load_catalog()[flag].is_multilabel else int(label)


def row_label(flag, row):
    return list(row["label"]) if load_catalog()[flag].is_multilabel else int(row["label"])


def check_rows(flag, split_rows, records, root, size):
    """Every row equals the expectation of exactly one record; splits, sizes and indices follow the rule.

    Without a manifest the train/validation assignment is a seeded shuffle, so rows are matched to records by
    their exact pixels and label (a bijection); the test split of collections with a test part is that part,
    record for record in name order.
    """
    rule = SPEC[flag][3]
    expected = {rec: (expected_image(root / rec, flag, size), label_value(flag, label), part)
                for rec, label, part in records}
    by_content = {}
    for rec, (pixels, label, part) in expected.items():
        by_content.setdefault((pixels.tobytes(), str(label)), []).append(rec)
    sizes = expected_split_sizes(flag, records)
    assert {split: len(rows) for split, rows in split_rows.items()} == {s: n for s, n in sizes.items() if n}
    used = []
    for split, rows in split_rows.items():
        assert [row["index"] for row in rows] == list(range(len(rows))), split
        matched = []
        for row in rows:
            pixels = np.asarray(row["image"])
            assert pixels.dtype == np.uint8
            key = (pixels.tobytes(), str(row_label(flag, row)))
            candidates = [rec for rec in by_content.get(key, []) if rec not in used]
            assert candidates, f"{flag} {split} row {row['index']}: matches no record's expected image and label"
            matched.append(candidates[0])
            used.append(candidates[0])
            assert pixels.shape == expected[candidates[0]][0].shape
        if rule != "7:1:2":
            test_part = rule[1]
            parts = {expected[rec][2] for rec in matched}
            assert parts == ({test_part} if split == "test" else {"train"}), (split, parts)
        if split == "test" and rule != "7:1:2":
            assert matched == sorted(rec for rec, _, part in records if part == rule[1])
        assert matched == sorted(matched), f"{split}: indices follow the record names"
    assert sorted(used) == sorted(expected)


def all_rows(dataset_dict):
    return {split: list(dataset_dict[split]) for split in SPLITS if split in dataset_dict}


# -- fixtures and helpers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def collections(tmp_path_factory):
    """The nine synthetic collections, written once: flag -> (data_dir, collection root, records)."""
    base = tmp_path_factory.mktemp("raw")
    out = {}
    for flag in FLAGS:
        records = write_raw_collection(flag, base / flag, seed=FLAGS.index(flag))
        out[flag] = (base / flag, collection_root(flag, base / flag), records)
    return out


def copy_collection(flag, tmp_path, counts=None, seed=0):
    """A private synthetic collection (for tests that damage it)."""
    data_dir = tmp_path / f"{flag}-raw"
    records = write_raw_collection(flag, data_dir, counts, seed=seed)
    return data_dir, collection_root(flag, data_dir), records


def assert_no_complete_cache(builder):
    """Whatever happened, a cache folder exists only if it is complete (its dataset_info.json and shards)."""
    if os.path.exists(builder.cache_dir):
        files = os.listdir(builder.cache_dir)
        assert "dataset_info.json" in files and any(f.endswith(".arrow") for f in files), files


def builder_class(flag):
    return builders.BUILDERS[flag]


def build_raw(flag, data_dir, cache_dir, config="28", verification_mode="no_checks", **config_kwargs):
    builder = builder_class(flag)(config_name=config, source="raw", data_dir=str(data_dir), cache_dir=cache_dir,
                                  **config_kwargs)
    try:
        builder.download_and_prepare(verification_mode=verification_mode)
    finally:
        assert_no_complete_cache(builder)
    return builder


def write_manifest(path, rows, header=("split", "index", "record", "label")):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(header) + "\n")
        for row in rows:
            f.write(",".join(f'"{c}"' if "," in str(c) else str(c) for c in row) + "\n")
    return path


# -- every dataset, through its real builder ---------------------------------------------------------------


@pytest.mark.parametrize("flag", FLAGS)
def test_raw_build_of_each_2d_dataset_equals_the_recipe_computed_independently(flag, collections, cache_dir):
    data_dir, root, records = collections[flag]
    builder = build_raw(flag, data_dir, cache_dir)
    check_rows(flag, all_rows(builder.as_dataset()), records, root, 28)
    features = builder.info.features
    if load_catalog()[flag].is_multilabel:
        assert len(records[0][1]) == 14
    else:
        assert features["label"].num_classes == load_catalog()[flag].num_classes


def test_the_collections_are_in_their_true_format_and_dimensions(collections):
    """The synthetic sources are what the recipes will meet in the real collections."""
    sizes = {flag: Counter() for flag in FLAGS}
    formats = {flag: set() for flag in FLAGS}
    modes = {flag: set() for flag in FLAGS}
    for flag in FLAGS:
        _, root, records = collections[flag]
        for rec, _, _ in records:
            if rec.endswith(".npy"):
                formats[flag].add("NPY")
                continue
            with Image.open(root / rec) as image:
                sizes[flag][image.size] += 1
                formats[flag].add(image.format)
                modes[flag].add(image.mode)
    assert set(sizes["pathmnist"]) == {(224, 224)} and formats["pathmnist"] == {"TIFF"}
    assert set(sizes["chestmnist"]) == {(1024, 1024)} and modes["chestmnist"] == {"L", "RGBA"}
    assert set(sizes["dermamnist"]) == {(600, 450)} and formats["dermamnist"] == {"JPEG"}
    assert all(384 <= w <= 1536 and 277 <= h <= 512 for w, h in sizes["octmnist"]) and modes["octmnist"] == {"L", "RGB"}
    assert min(min(s) for s in sizes["pneumoniamnist"]) == 127 and modes["pneumoniamnist"] == {"L", "RGB"}
    diffs = {abs(w - h) % 4 for w, h in sizes["pneumoniamnist"]}
    assert {1, 3} <= diffs
    assert set(sizes["retinamnist"]) == {(1824, 1736)}
    assert all(449 <= min(s) and max(s) <= 701 and s[0] != s[1] for s in sizes["breastmnist"])
    assert {abs(w - h) % 4 for w, h in sizes["breastmnist"]} >= {1, 3}
    assert set(sizes["bloodmnist"]) == {(360, 363)}
    assert formats["tissuemnist"] == {"TIFF", "NPY"} and set(sizes["tissuemnist"]) == {(32, 32)}
    # records that are not records: BUSI masks, Retina's grade 5, CSV rows without images
    data_dir, root, records = collections["breastmnist"]
    assert any("_mask" in p.name for p in root.rglob("*.png")) and not any("_mask" in r for r, _, _ in records)
    assert "5" in (collections["retinamnist"][1] / "regular-fundus-training" / "regular-fundus-training.csv").read_text()
    chest_table = (collections["chestmnist"][1] / "Data_Entry_2017.csv").read_text()
    assert "No Finding" in chest_table and any("|" in line.split(",")[1] for line in chest_table.splitlines()[1:])
    # one TIFF of the PathMNIST collection has a malformed header that PIL reads anyway (with a warning)
    odd = []
    for rec, _, _ in collections["pathmnist"][2]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Image.open(collections["pathmnist"][1] / rec) as image:
                image.load()
        odd += [rec for w in caught if "tag 282" in str(w.message)]
    assert len(odd) == 1


@pytest.mark.parametrize("flag, size", [("bloodmnist", 64), ("pneumoniamnist", 128), ("breastmnist", 224)])
def test_official_sizes_above_28(flag, size, collections, cache_dir):
    data_dir, root, records = collections[flag]
    builder = build_raw(flag, data_dir, cache_dir, config=str(size))
    check_rows(flag, all_rows(builder.as_dataset()), records, root, size)


def test_load_dataset_umbrella_name_with_raw_source(collections, cache_dir):
    data_dir, root, records = collections["dermamnist"]
    dataset = datasets.load_dataset("medmnist_plus", "dermamnist-64", source="raw", data_dir=str(data_dir),
                                    cache_dir=cache_dir, verification_mode="no_checks")
    check_rows("dermamnist", all_rows(dataset), records, root, 64)


def test_any_size_config_on_umbrella_and_per_dataset_builder(collections, cache_dir):
    data_dir, root, records = collections["pathmnist"]
    umbrella = builders.MedMNISTPlus(config_name="pathmnist-96", source="raw", data_dir=str(data_dir),
                                     cache_dir=cache_dir)
    umbrella.download_and_prepare(verification_mode="no_checks")
    rows = all_rows(umbrella.as_dataset())
    check_rows("pathmnist", rows, records, root, 96)
    own = build_raw("pathmnist", data_dir, cache_dir, config="96")
    own_rows = all_rows(own.as_dataset())
    for split in rows:
        assert [np.asarray(r["image"]).tobytes() for r in own_rows[split]] == \
            [np.asarray(r["image"]).tobytes() for r in rows[split]]
    assert np.asarray(rows["test"][0]["image"]).shape == (96, 96, 3)


def test_streaming_a_raw_source_gives_the_same_rows(collections, cache_dir):
    data_dir, root, records = collections["octmnist"]
    builder = builder_class("octmnist")(config_name="28", source="raw", data_dir=str(data_dir), cache_dir=cache_dir)
    streamed = {split: list(builder.as_streaming_dataset(split=split)) for split in SPLITS}
    check_rows("octmnist", {s: r for s, r in streamed.items() if r}, records, root, 28)
    assert not os.path.exists(builder.cache_dir) or not any(
        f.endswith(".arrow") for f in os.listdir(builder.cache_dir))


def test_streaming_any_size(collections):
    data_dir, root, records = collections["tissuemnist"]
    builder = builders.MedMNISTPlus(config_name="tissuemnist-40", source="raw", data_dir=str(data_dir))
    rows = {split: list(builder.as_streaming_dataset(split=split)) for split in SPLITS}
    check_rows("tissuemnist", rows, records, root, 40)


def test_raw_builds_are_labelled_regenerated(collections, cache_dir):
    data_dir, _, _ = collections["bloodmnist"]
    builder = build_raw("bloodmnist", data_dir, cache_dir)
    description = builder.info.description
    assert "REGENERATED" in description and "NOT the official indices" in description
    assert "REGENERATED" in builder.as_dataset(split="train").info.description
    provenance = builder.provenance()
    assert provenance["source"] == "raw" and provenance["official_indices"] is False
    assert "NOT the official indices" in provenance["indices"]


def test_two_raw_builds_with_the_same_seed_agree_and_another_seed_differs(collections, tmp_path):
    data_dir, _, _ = collections["chestmnist"]
    first = build_raw("chestmnist", data_dir, str(tmp_path / "a"))
    again = build_raw("chestmnist", data_dir, str(tmp_path / "b"))
    other = build_raw("chestmnist", data_dir, str(tmp_path / "c"), split_seed=1)

    def fingerprint(builder):
        return {split: [np.asarray(r["image"]).tobytes() for r in rows]
                for split, rows in all_rows(builder.as_dataset()).items()}

    assert fingerprint(first) == fingerprint(again)
    assert fingerprint(first) != fingerprint(other)


# -- the collections' other real layouts ---------------------------------------------------------------------


def test_both_kermany_collections_in_one_celldata_folder_are_told_apart(tmp_path, cache_dir):
    """Mendeley's archive unpacks to CellData/{OCT,chest_xray}: each builder finds its own collection in it."""
    oct_records = write_raw_collection("octmnist", tmp_path / "oct", {"train": 1, "test": 1})
    xray_records = write_raw_collection("pneumoniamnist", tmp_path / "xray", {"train": 2, "test": 1}, seed=1)
    (tmp_path / "data" / "CellData").mkdir(parents=True)
    (tmp_path / "oct" / "OCT").rename(tmp_path / "data" / "CellData" / "OCT")
    (tmp_path / "xray" / "chest_xray").rename(tmp_path / "data" / "CellData" / "chest_xray")
    for flag, records, sub in (("octmnist", oct_records, "OCT"), ("pneumoniamnist", xray_records, "chest_xray")):
        builder = build_raw(flag, tmp_path / "data", cache_dir)
        check_rows(flag, all_rows(builder.as_dataset()), records, tmp_path / "data" / "CellData" / sub, 28)
        assert builder.provenance()["data_dir"] == str(tmp_path / "data" / "CellData" / sub)


def test_kaggle_val_folder_of_the_chest_xrays_is_part_of_the_source_train_part(tmp_path, cache_dir):
    """Kaggle's copy moved 16 train images into val/: they belong to the pool divided 9:1, not to the test split."""
    data_dir, root, records = copy_collection("pneumoniamnist", tmp_path, {"train": 4, "test": 1})
    moved = []
    for rec, label, part in list(records):
        if part == "train" and rec.endswith(("0001.jpeg", "_1.jpeg", "_3.jpeg")):
            new = rec.replace("train/", "val/", 1)
            (root / new).parent.mkdir(parents=True, exist_ok=True)
            (root / rec).rename(root / new)
            moved.append(new)
            records[records.index((rec, label, part))] = (new, label, "train")
    assert moved
    builder = build_raw("pneumoniamnist", data_dir, cache_dir)
    check_rows("pneumoniamnist", all_rows(builder.as_dataset()), records, root, 28)


def test_raw_build_with_two_processes_equals_the_recipe(tmp_path, cache_dir):
    data_dir, root, records = copy_collection("tissuemnist", tmp_path, 20)  # 160 records: several shards
    builder = builder_class("tissuemnist")(config_name="28", source="raw", data_dir=str(data_dir),
                                           cache_dir=cache_dir)
    builder.download_and_prepare(verification_mode="no_checks", num_proc=2)
    check_rows("tissuemnist", all_rows(builder.as_dataset()), records, root, 28)


def test_tissue_class_folders_named_by_label_name_are_found(tmp_path, cache_dir):
    """The TissueMNIST instructions allow class folders named by the catalog's label names instead of 0-7."""
    data_dir, root, records = copy_collection("tissuemnist", tmp_path, 1)
    names = load_catalog()["tissuemnist"].labels
    renamed = []
    for rec, label, part in records:
        folder = root / names[label]
        folder.mkdir(exist_ok=True)
        new = f"{names[label]}/{rec.split('/', 1)[1]}"
        (root / rec).rename(root / new)
        renamed.append((new, label, part))
    for label in range(8):
        (root / str(label)).rmdir()
    builder = build_raw("tissuemnist", data_dir, cache_dir)
    check_rows("tissuemnist", all_rows(builder.as_dataset()), renamed, root, 28)


# -- regenerate(): the release-file path agrees with the builder path --------------------------------------


@pytest.mark.parametrize("flag", FLAGS)
def test_regenerated_release_files_of_each_2d_dataset_equal_the_recipe(flag, collections, tmp_path):
    """``regenerate`` (each record read once for all sizes, rows written as an official .npz) gives, at every
    size, the rows the independent expectation gives, under the same split rule as the builder."""
    from medmnist_plus_common.tools.regenerate import regenerate

    data_dir, root, records = collections[flag]
    report = regenerate(flag, data_dir, [28, 64], tmp_path / "out", no_checks=True)
    assert sorted(report.files) == [28, 64] and not report.official_indices
    facts = load_catalog()[flag]
    for size, path in report.files.items():
        assert Path(path).name == (f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz")
        with np.load(path) as release:
            split_rows = {}
            for split, member in (("train", "train"), ("validation", "val"), ("test", "test")):
                images, labels = release[f"{member}_images"], release[f"{member}_labels"]
                assert images.dtype == np.uint8 and images.shape[1:] == facts.image_shape(size)
                assert f"{member}_index" not in release.files  # dense 0..n-1 without a manifest
                if len(images):
                    split_rows[split] = [{"index": i, "image": images[i],
                                          "label": labels[i].tolist() if facts.is_multilabel else int(labels[i, 0])}
                                         for i in range(len(images))]
        check_rows(flag, split_rows, records, root, size)


def test_load_dataset_by_flag_at_any_size_and_streaming(collections, cache_dir):
    data_dir, root, records = collections["bloodmnist"]
    built = datasets.load_dataset("bloodmnist", "100", source="raw", data_dir=str(data_dir), cache_dir=cache_dir,
                                  verification_mode="no_checks")
    check_rows("bloodmnist", all_rows(built), records, root, 100)
    streamed = datasets.load_dataset("medmnist_plus", "bloodmnist-28", source="raw", data_dir=str(data_dir),
                                     streaming=True)
    check_rows("bloodmnist", {split: list(rows) for split, rows in streamed.items()}, records, root, 28)


def test_a_changed_raw_collection_is_rebuilt(tmp_path, cache_dir):
    data_dir, root, records = copy_collection("bloodmnist", tmp_path, 2)
    first = build_raw("bloodmnist", data_dir, cache_dir)
    assert sum(first.as_dataset()[s].num_rows for s in first.as_dataset()) == 16
    more = write_raw_collection("bloodmnist", data_dir, 4, seed=9)  # the user adds images to the collection
    again = build_raw("bloodmnist", data_dir, cache_dir)
    assert sum(again.as_dataset()[s].num_rows for s in again.as_dataset()) == len({r for r, _, _ in records + more})
