"""`medmnist-plus audit`: planted exact and near duplicates (within and across splits, with conflicting labels) are
found in 2D gray, 2D RGB, multi-label and 3D fake releases, the same from the release file, a local build and an
export (whose card states the counts); exit status 0/1/2; the JSON layout; the near search finds every close pair.
The genuine BreastMNIST file's known pair: tests/genuine/test_audit_breastmnist.py."""

import json

import numpy as np
import pytest

from medmnist_plus_common.catalog import load_catalog
from medmnist_plus_common.cli.main import main
from medmnist_plus_common.hf.sources import write_regenerated_provenance
from medmnist_plus_common.publish.push import export
from medmnist_plus_common.release.reader import member_name
from medmnist_plus_common.tools import near_duplicates as near

from tests.fakes.releases import official_arrays, write_fake_release

COUNTS = {"train": 12, "validation": 6, "test": 6}
CONFIGS = ["pneumoniamnist-28", "bloodmnist-28", "chestmnist-28", "organmnist3d-28"]


def flip_low_bits(pixels, seed):
    """The same image with the lowest bit of a tenth of its values flipped: a near duplicate, not an exact one."""
    mask = np.random.default_rng(seed).random(pixels.shape) < 0.1
    return pixels ^ mask.astype(np.uint8)


def other_label(facts, label):
    return 1 - label if facts.is_multilabel else (label + 1) % facts.num_classes


def planted(config):
    """Fake release arrays with planted duplicates, and the groups expected: {kind: [{(split, index), ...}]}."""
    flag, size = config.rsplit("-", 1)
    facts = load_catalog()[flag]
    arrays = official_arrays(facts, int(size), COUNTS, seed=5)
    images = {split: arrays[member_name(split, "images")] for split in COUNTS}
    labels = {split: arrays[member_name(split, "labels")] for split in COUNTS}
    images["train"][3] = images["train"][1]  # exact, within train, same label
    labels["train"][3] = labels["train"][1]
    images["test"][2] = images["train"][5]  # exact, across splits, conflicting label
    labels["test"][2] = other_label(facts, labels["train"][5])
    images["validation"][1] = flip_low_bits(images["train"][7], 1)  # near, across splits, same label
    labels["validation"][1] = labels["train"][7]
    images["train"][10] = flip_low_bits(images["train"][9], 2)  # near, within train, conflicting label
    labels["train"][10] = other_label(facts, labels["train"][9])
    expected = {"exact": [{("train", 1), ("train", 3)}, {("train", 5), ("test", 2)}],
                "near": [{("train", 7), ("validation", 1)}, {("train", 9), ("train", 10)}]}
    flags = {frozenset(expected["exact"][0]): (False, False), frozenset(expected["exact"][1]): (True, True),
             frozenset(expected["near"][0]): (True, False), frozenset(expected["near"][1]): (False, True)}
    return arrays, expected, flags


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    plants = {}
    for config in CONFIGS:
        flag, size = config.rsplit("-", 1)
        arrays, expected, flags = planted(config)
        write_fake_release(root / "release", flag, int(size), COUNTS, arrays=arrays)
        plants[config] = (arrays, expected, flags)
    return root, plants


def run_audit(args, tmp_path, capsys):
    out = tmp_path / "audit.json"
    code = main(["audit", *args, "--json", str(out)])
    printed = capsys.readouterr()
    return code, json.loads(out.read_text()) if out.exists() else None, printed


def members(group):
    return {(m["split"], m["index"]) for m in group["members"]}


def check_found(result, config, plants):
    arrays, expected, flags = plants[config]
    facts = load_catalog()[config.rsplit("-", 1)[0]]
    for kind in ("exact", "near"):
        found = [members(group) for group in result[f"{kind}_groups"]]
        assert sorted(map(sorted, found)) == sorted(map(sorted, expected[kind])), (config, kind)
        for group in result[f"{kind}_groups"]:
            assert (group["cross_split"], group["label_conflict"]) == flags[frozenset(members(group))]
            assert group["rows"] == len(group["members"])
            for member in group["members"]:  # each member's label is the release's
                label = arrays[member_name(member["split"], "labels")][member["index"]]
                assert member["label"] == (label.tolist() if facts.is_multilabel else int(label[0]))
            if kind == "near":
                assert 0 < group["max_distance"] <= result["near_search"]["threshold"]
                assert group["members"][0]["distance"] == 0
    summary = result["summary"]
    for kind in ("exact", "near"):
        groups = result[f"{kind}_groups"]
        assert summary[f"{kind}_groups"] == len(groups)
        assert summary[f"{kind}_rows"] == sum(len(g["members"]) for g in groups)
        assert summary[f"{kind}_cross_split"] == sum(g["cross_split"] for g in groups)
        assert summary[f"{kind}_label_conflict"] == sum(g["label_conflict"] for g in groups)
    assert result["rows"] == COUNTS


@pytest.mark.parametrize("config", CONFIGS)
def test_planted_duplicates_are_found_in_the_release_file(config, releases, tmp_path, capsys):
    root, plants = releases
    code, result, printed = run_audit([config, "--data-dir", str(root / "release"), "--cache-dir",
                                       str(root / "cache"), "--no-checks"], tmp_path, capsys)
    assert code == 1, printed.err  # cross-split groups exist
    assert result["config"] == config and str(root / "release") in result["source"]
    check_found(result, config, plants)
    assert "CROSS-SPLIT LABEL CONFLICT: train[5]" in printed.out


@pytest.mark.parametrize("config", ["bloodmnist-28", "organmnist3d-28"])
def test_a_build_and_an_export_give_the_same_groups(config, releases, tmp_path, capsys):
    root, plants = releases
    common = ["--data-dir", str(root / "release"), "--cache-dir", str(root / "cache"), "--no-checks"]
    _, from_file, _ = run_audit([config, *common], tmp_path, capsys)
    code, from_build, printed = run_audit([config, *common, "--build"], tmp_path, capsys)
    assert code == 1 and "local build" in from_build["source"], printed.err
    out = tmp_path / "medmnist_plus"
    export(str(out), [config], num_shards=1, data_dir=str(root / "release"), cache_dir=str(root / "cache"),
           no_checks=True)
    code, from_export, printed = run_audit([config, "--data-dir", str(out)], tmp_path, capsys)
    assert code == 1 and "exported folder" in from_export["source"], printed.err
    check_found(from_export, config, plants)
    for other in (from_build, from_export):
        assert other["exact_groups"] == from_file["exact_groups"]
        assert other["near_groups"] == from_file["near_groups"]
        assert other["summary"] == from_file["summary"]
    # the export's card states the exact-duplicate counts the audit finds
    summary = from_file["summary"]
    counts = {"groups": summary["exact_groups"], "rows": summary["exact_rows"],
              "cross_split": summary["exact_cross_split"], "label_conflict": summary["exact_label_conflict"]}
    assert json.loads((out / "medmnist_plus.json").read_text())[config]["duplicates"] == counts
    card = (out / "README.md").read_text()
    assert "## Duplicates" in card
    assert f"| `{config}` | {counts['groups']} | {counts['rows']} | {counts['cross_split']} | " \
           f"{counts['label_conflict']} |" in card


def test_exit_status_0_without_cross_split_groups_and_near_off(releases, tmp_path, capsys):
    root, _ = releases
    facts = load_catalog()["pneumoniamnist"]
    arrays = official_arrays(facts, 28, COUNTS, seed=8)
    arrays[member_name("train", "images")][4] = arrays[member_name("train", "images")][2]  # within train only
    write_fake_release(tmp_path / "within", "pneumoniamnist", 28, COUNTS, arrays=arrays)
    code, result, printed = run_audit(["pneumoniamnist-28", "--data-dir", str(tmp_path / "within"), "--cache-dir",
                                       str(root / "cache"), "--no-checks"], tmp_path, capsys)
    assert code == 0, printed.err
    assert [members(g) for g in result["exact_groups"]] == [{("train", 2), ("train", 4)}]
    assert "no duplicates across splits" in printed.out
    # --near 0: exact duplicates only (the planted near pairs of the other file are not looked for)
    code, result, _ = run_audit(["bloodmnist-28", "--data-dir", str(root / "release"), "--cache-dir",
                                 str(root / "cache"), "--no-checks", "--near", "0"], tmp_path, capsys)
    assert code == 1 and result["near_groups"] == [] and not result["near_search"]["enabled"]
    assert len(result["exact_groups"]) == 2


def test_errors_exit_2_with_one_paragraph(releases, tmp_path, capsys):
    root, _ = releases
    (tmp_path / "empty").mkdir()  # a folder without the release file
    code = main(["audit", "pneumoniamnist-28", "--data-dir", str(tmp_path / "empty"), "--cache-dir",
                 str(root / "cache"), "--no-checks"])
    err = capsys.readouterr().err
    assert code == 2 and "pneumoniamnist.npz: not found" in err and "Traceback" not in err
    code = main(["audit", "pneumoniamnist-28", "--data-dir", str(root / "release"), "--near", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "--near must be between 0" in err
    # an unofficial file without --no-checks: the MD5 check fails and says what to do
    code = main(["audit", "pneumoniamnist-28", "--data-dir", str(root / "release"), "--cache-dir",
                 str(root / "cache")])
    err = capsys.readouterr().err
    assert code == 2 and "--no-checks" in err


def test_a_derived_file_is_audited_as_such(releases, tmp_path, capsys):
    root, plants = releases
    arrays, _, _ = plants["organmnist3d-28"]
    path, _ = write_fake_release(tmp_path / "derived", "organmnist3d", 28, COUNTS, arrays=arrays)
    write_regenerated_provenance(tmp_path / "derived", {path.name: {"source": "derived", "indices": "official"}})
    code, result, printed = run_audit(["organmnist3d-28", "--data-dir", str(tmp_path / "derived"), "--cache-dir",
                                       str(root / "cache"), "--no-checks"], tmp_path, capsys)  # a subset: 12 train rows
    assert code == 1, printed.err
    assert "derived" in result["source"]
    check_found(result, "organmnist3d-28", plants)


@pytest.mark.parametrize("cluster", [False, True])
def test_the_near_search_finds_every_pair_a_brute_force_finds(cluster):
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8)
    rows[::3] = rows[0] if cluster else rows[::3]  # a crowd of near-identical rows in one cell
    rows[1::7] = rows[1::7] // 2 + rows[2::7][: len(rows[1::7])] // 2  # some rows half of another
    rows = np.stack([flip_low_bits(r, k) if k % 3 == 0 else r for k, r in enumerate(rows)])
    signer = near.Signer((28, 28), 2)
    z, _ = signer.sign(rows)
    for threshold in (0.03, 0.3, 0.8):
        found = near.search(signer, z, threshold)
        i, j = np.triu_indices(len(z), 1)
        brute = near.distances(z, i, j) <= threshold
        expected = set(zip(i[brute].tolist(), j[brute].tolist()))
        assert set(zip(found.pairs_i.tolist(), found.pairs_j.tolist())) == expected
        assert found.complete and found.compared <= len(i)
    capped = near.search(signer, z, 0.8, max_comparisons=10)
    assert not capped.complete and capped.compared >= 10


def test_the_thumbnail_does_not_depend_on_the_size():
    """One picture at 28, 64 and 224 px (box-resized from 448 px) has nearly the same signature."""
    from PIL import Image

    rng = np.random.default_rng(1)
    base = Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).resize((448, 448), Image.BILINEAR)
    signatures = []
    for size in (28, 64, 224):
        pixels = np.asarray(base.resize((size, size), Image.BOX))[None]
        signatures.append(near.Signer((size, size), 2).sign(pixels)[0])
    for other in signatures[1:]:
        assert np.abs(other.astype(np.float32) - signatures[0]).mean() < near.DEFAULT_THRESHOLD
