"""`medmnist-plus audit` on the genuine BreastMNIST release: its known pair (train[115] and test[76] are the same
image, labelled 0 and 1) is found as an exact, cross-split group with conflicting labels. Skips without the file."""

import json

import pytest

from medmnist_plus_common.cli.main import main
from tests.genuine.samples import FETCH_HINT, SHARED_DATA


def test_the_genuine_breastmnist_pair_is_found(tmp_path, capsys):
    if not (SHARED_DATA / "breastmnist.npz").exists():
        pytest.skip(FETCH_HINT)
    out = tmp_path / "audit.json"
    code = main(["audit", "breastmnist-28", "--data-dir", str(SHARED_DATA), "--cache-dir", str(tmp_path / "cache"),
                 "--json", str(out)])  # the official file: its MD5 is checked
    printed = capsys.readouterr()
    result = json.loads(out.read_text())
    assert code == 1, printed.err
    known = {("train", 115), ("test", 76)}
    pair = [g for g in result["exact_groups"] if {(m["split"], m["index"]) for m in g["members"]} == known]
    assert len(pair) == 1 and pair[0]["cross_split"] and pair[0]["label_conflict"]
    assert sorted(m["label"] for m in pair[0]["members"]) == [0, 1]
    assert result["rows"] == {"train": 546, "validation": 78, "test": 156}
