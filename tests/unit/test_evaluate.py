"""The evaluator: MedMNIST's AUC / ACC per task kind, checked against scikit-learn computed independently.

Ground truth comes from real release files (fake ones in the official format, and the genuine BreastMNIST file
when ../shared/data is present), an exported folder and the test Hub; predictions from numpy, CSV, .npz and a
``datasets`` dataset, always matched by ``index``.
"""

import json

import datasets
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from medmnist_plus_common.catalog import load_catalog
from medmnist_plus_common.cli.main import main
from medmnist_plus_common.evaluate import EvaluationError, evaluate, metrics, roc_auc

from tests.fakes.releases import official_arrays, write_fake_release
from tests.genuine.samples import SHARED_DATA

# One config per task kind; the test split is large enough to hold every class.
TASKS = {
    "bloodmnist-28": "multi-class",
    "retinamnist-28": "ordinal",
    "pneumoniamnist-28": "binary",
    "chestmnist-28": "multi-label",
}
TEST_ROWS = 64


def labelled_arrays(config, seed=0):
    """Fake release arrays whose test split holds every class (and, multi-label, every label on and off)."""
    flag, size = config.rsplit("-", 1)
    facts = load_catalog()[flag]
    arrays = official_arrays(facts, int(size), {"train": 4, "validation": 2, "test": TEST_ROWS}, seed=seed)
    rng = np.random.default_rng(seed)
    if facts.is_multilabel:
        labels = (rng.random((TEST_ROWS, facts.num_classes)) < 0.3).astype(np.uint8)
        labels[0], labels[1] = 1, 0
    else:
        labels = rng.permutation(np.arange(TEST_ROWS) % facts.num_classes).astype(np.uint8)[:, None]
    arrays["test_labels"] = labels
    return facts, arrays


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate") / "release"
    out = {}
    for i, config in enumerate(TASKS):
        facts, arrays = labelled_arrays(config, seed=i)
        write_fake_release(root, facts.flag, 28, None, arrays=arrays)
        out[config] = (facts, arrays["test_labels"])
    return root, out


def sklearn_figures(task, labels, scores):
    """The expected (auc, acc), computed with scikit-learn from MedMNIST's definitions."""
    if task == "multi-label":
        auc = roc_auc_score(labels, scores, average="macro")  # mean of the per-label AUCs
        acc = np.mean([accuracy_score(labels[:, i], scores[:, i] > 0.5) for i in range(labels.shape[1])])
    elif task == "binary":
        positive = scores[:, -1]
        auc = roc_auc_score(labels[:, 0], positive)
        acc = accuracy_score(labels[:, 0], positive > 0.5)
    else:  # multi-class and ordinal: mean of the one-vs-rest AUCs of each class column, argmax accuracy
        auc = np.mean([roc_auc_score(labels[:, 0] == i, scores[:, i]) for i in range(scores.shape[1])])
        acc = accuracy_score(labels[:, 0], scores.argmax(1))
        if np.allclose(scores.sum(1), 1):  # probabilities: sklearn's own one-vs-rest macro AUC agrees
            assert roc_auc_score(labels[:, 0], scores, multi_class="ovr", average="macro") == pytest.approx(auc)
    return auc, acc


def random_scores(facts, rows, seed, ties=False):
    rng = np.random.default_rng(seed)
    width = 2 if facts.task == "binary" else facts.num_classes
    scores = rng.random((rows, width)) + 1e-3
    if ties:  # coarse scores: many exact ties, which AUC must count one half
        scores = np.round(scores * 4) / 4 + 1e-3
    if facts.task == "binary":
        scores[:, 0] = 1 - scores[:, 1]
    elif not ties:  # class probabilities
        scores /= scores.sum(1, keepdims=True)
    return scores


def perfect_scores(facts, labels):
    if facts.is_multilabel:
        return labels.astype(np.float64)
    width = 2 if facts.task == "binary" else facts.num_classes
    return np.eye(width)[labels[:, 0]]


def write_csv(path, index, scores, header=True):
    with open(path, "w") as f:
        if header:
            f.write("index," + ",".join(f"score_{i}" for i in range(scores.shape[1])) + "\n")
        for i, row in zip(index, scores):
            f.write(f"{i}," + ",".join(repr(float(v)) for v in row) + "\n")
    return path


def test_auc_matches_sklearn_with_and_without_ties():
    rng = np.random.default_rng(3)
    for trial in range(300):
        rows = int(rng.integers(2, 80))
        truth = rng.integers(0, 2, rows)
        if truth.min() == truth.max():
            continue
        scores = rng.integers(0, 4, rows) / 3 if trial % 2 else rng.normal(size=rows)
        assert roc_auc(truth, scores) == pytest.approx(roc_auc_score(truth, scores), abs=1e-12)
    assert roc_auc([0, 0, 1, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5  # all tied: chance
    with pytest.raises(EvaluationError, match="no positive example"):
        roc_auc([0, 0, 0], [0.1, 0.2, 0.3])


@pytest.mark.parametrize("config", list(TASKS))
@pytest.mark.parametrize("ties", [False, True])
def test_random_predictions_from_a_shuffled_csv_match_sklearn(config, ties, releases, tmp_path):
    root, truth = releases
    facts, labels = truth[config]
    assert facts.task == TASKS[config]
    scores = random_scores(facts, TEST_ROWS, seed=11, ties=ties)
    order = np.random.default_rng(5).permutation(TEST_ROWS)  # rows out of index order: aligned by index
    path = write_csv(tmp_path / "predictions.csv", order, scores[order])
    result = evaluate(config, "test", str(path), data_dir=str(root))
    auc, acc = sklearn_figures(facts.task, labels, scores)
    assert result.task == facts.task and result.n == TEST_ROWS
    assert result.auc == pytest.approx(auc, abs=1e-12)
    assert result.acc == pytest.approx(acc, abs=1e-12)
    assert 0.2 < result.auc < 0.8  # random scores: the figure is not trivially 0 or 1


@pytest.mark.parametrize("config", list(TASKS))
def test_perfect_predictions_score_one(config, releases):
    root, truth = releases
    facts, labels = truth[config]
    result = evaluate(config, "test", perfect_scores(facts, labels), data_dir=str(root))
    assert (result.auc, result.acc) == (1.0, 1.0)
    assert sklearn_figures(facts.task, labels, perfect_scores(facts, labels) + 1e-9) == pytest.approx((1.0, 1.0))


def test_binary_takes_the_positive_class_column_alone(releases, tmp_path):
    root, truth = releases
    facts, labels = truth["pneumoniamnist-28"]
    scores = random_scores(facts, TEST_ROWS, seed=2)
    two = evaluate("pneumoniamnist-28", "test", scores, data_dir=str(root))
    one = evaluate("pneumoniamnist-28", "test", scores[:, 1], data_dir=str(root))
    assert (one.auc, one.acc) == (two.auc, two.acc)
    assert one.auc == pytest.approx(roc_auc_score(labels[:, 0], scores[:, 1]))


def test_npz_and_datasets_inputs_are_aligned_by_index(releases, tmp_path):
    root, truth = releases
    facts, labels = truth["bloodmnist-28"]
    scores = random_scores(facts, TEST_ROWS, seed=4)
    expected = evaluate("bloodmnist-28", "test", scores, data_dir=str(root))
    order = np.arange(TEST_ROWS)[::-1]
    np.savez(tmp_path / "p.npz", index=order, scores=scores[order])
    from_npz = evaluate("bloodmnist-28", "test", str(tmp_path / "p.npz"), data_dir=str(root))
    lists = datasets.Dataset.from_dict({"index": order.tolist(), "scores": scores[order].tolist()})
    columns = datasets.Dataset.from_dict({"index": order, **{f"score_{i}": scores[order, i] for i in range(8)}})
    assert (from_npz.auc, from_npz.acc) == (expected.auc, expected.acc)
    for dataset in (lists, columns):
        result = evaluate("bloodmnist-28", "test", dataset, data_dir=str(root))
        assert (result.auc, result.acc) == (expected.auc, expected.acc)
    # the same rows without their index would be scored in the wrong order: a different figure
    assert evaluate("bloodmnist-28", "test", scores[order], data_dir=str(root)).acc != expected.acc or expected.acc == 0


@pytest.mark.parametrize("change, message", [
    (lambda i, s: (i[1:], s[1:]), r"1 example\(s\) of bloodmnist-28 test have no prediction \(index 0\)"),
    (lambda i, s: (np.r_[i, 5], np.r_[s, s[:1]]), r"1 index value\(s\) appear more than once \(5\)"),
    (lambda i, s: (np.r_[i, 64, 70], np.r_[s, s[:2]]), r"2 index value\(s\) are not examples of bloodmnist-28 test \(64, 70\)"),
    (lambda i, s: (i, s[:, :7]), r"has 8 classes, so scores are N x 8; these are N x 7"),
])
def test_misaligned_or_misshaped_predictions_are_clear_errors(change, message, releases, tmp_path):
    root, truth = releases
    facts, _ = truth["bloodmnist-28"]
    index, scores = change(np.arange(TEST_ROWS), random_scores(facts, TEST_ROWS, seed=1))
    path = write_csv(tmp_path / "bad.csv", index, scores)
    with pytest.raises(EvaluationError, match=message) as info:
        evaluate("bloodmnist-28", "test", str(path), data_dir=str(root))
    assert str(path) in str(info.value)


def test_wrong_width_for_binary_and_multilabel(releases):
    root, truth = releases
    with pytest.raises(EvaluationError, match="binary, so scores are N x 2 .* or N x 1"):
        evaluate("pneumoniamnist-28", "test", np.zeros((TEST_ROWS, 3)), data_dir=str(root))
    with pytest.raises(EvaluationError, match="has 14 labels, so scores are N x 14; these are N x 13"):
        evaluate("chestmnist-28", "test", np.zeros((TEST_ROWS, 13)), data_dir=str(root))
    with pytest.raises(EvaluationError, match="has 10 rows of scores but chestmnist-28 test has 64 examples"):
        evaluate("chestmnist-28", "test", np.zeros((10, 14)), data_dir=str(root))


def test_ground_truth_is_the_file_of_the_config_size(tmp_path):
    """The official Evaluator opens <flag>.npz (28 px) whatever the size; here each size reads its own file."""
    facts, arrays28 = labelled_arrays("bloodmnist-28", seed=1)
    _, arrays64 = labelled_arrays("bloodmnist-28", seed=2)
    arrays64 = {**official_arrays(facts, 64, {"train": 4, "validation": 2, "test": TEST_ROWS}),
                "test_labels": arrays64["test_labels"]}
    write_fake_release(tmp_path, "bloodmnist", 28, None, arrays=arrays28)
    write_fake_release(tmp_path, "bloodmnist", 64, None, arrays=arrays64)
    assert not np.array_equal(arrays28["test_labels"], arrays64["test_labels"])
    perfect64 = perfect_scores(facts, arrays64["test_labels"])
    assert evaluate("bloodmnist-64", "test", perfect64, data_dir=str(tmp_path)).acc == 1.0
    assert evaluate("bloodmnist-28", "test", perfect64, data_dir=str(tmp_path)).acc < 0.5


def test_cli_prints_the_figures_and_writes_json(releases, tmp_path, capsys):
    root, truth = releases
    facts, labels = truth["chestmnist-28"]
    scores = random_scores(facts, TEST_ROWS, seed=9)
    path = write_csv(tmp_path / "p.csv", np.arange(TEST_ROWS), scores, header=False)
    out = tmp_path / "figures.json"
    code = main(["evaluate", "chestmnist-28", "--split", "test", "--predictions", str(path), "--data-dir", str(root),
                 "--json", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    figures = json.loads(out.read_text())
    auc, acc = sklearn_figures("multi-label", labels, scores)
    assert figures["auc"] == pytest.approx(auc) and figures["acc"] == pytest.approx(acc)
    assert (figures["task"], figures["n"]) == ("multi-label", TEST_ROWS)
    assert captured.out.strip().splitlines()[-1].startswith(f"chestmnist-28 test: AUC {auc:.4f}  ACC {acc:.4f}")


def test_cli_errors_are_one_paragraph_without_traceback(releases, tmp_path, capsys):
    root, _ = releases
    path = write_csv(tmp_path / "p.csv", np.arange(TEST_ROWS), np.zeros((TEST_ROWS, 3)))
    code = main(["evaluate", "bloodmnist-28", "--predictions", str(path), "--data-dir", str(root)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and f"{path}: BloodMNIST (multi-class) has 8 classes" in err
    assert main(["evaluate", "bloodmnist-28", "--predictions", str(tmp_path / "none.csv"), "--data-dir", str(root)]) == 2
    assert "none.csv: predictions file not found" in capsys.readouterr().err
    code = main(["evaluate", "bloodmnist-28", "--predictions", str(path), "--data-dir", str(root), "--verbose"])
    assert code == 2 and "Traceback" in capsys.readouterr().err  # --verbose adds it


def test_labels_from_an_exported_folder(releases, tmp_path):
    from medmnist_plus_common.publish.push import export

    root, truth = releases
    facts, labels = truth["retinamnist-28"]
    out = tmp_path / "medmnist_plus"
    export(str(out), ["retinamnist-28"], data_dir=str(root), cache_dir=str(tmp_path / "cache"), no_checks=True,
           max_shard_size="5KB")
    scores = random_scores(facts, TEST_ROWS, seed=8)
    result = evaluate("retinamnist-28", "test", scores, data_dir=str(out))
    assert (result.auc, result.acc) == pytest.approx(sklearn_figures("ordinal", labels, scores))


@pytest.mark.slow
def test_labels_from_the_hub(releases, hub_repo_id, tmp_path):
    from medmnist_plus_common.publish.push import push

    root, truth = releases
    facts, labels = truth["chestmnist-28"]
    push(hub_repo_id, ["chestmnist-28"], data_dir=str(root), cache_dir=str(tmp_path / "cache"), no_checks=True)
    scores = random_scores(facts, TEST_ROWS, seed=12)
    result = evaluate("chestmnist-28", "test", scores, repo=hub_repo_id)
    assert (result.auc, result.acc) == pytest.approx(sklearn_figures("multi-label", labels, scores))


def test_metrics_function_matches_medmnist_definitions_directly():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 50)
    labels[:3] = [0, 1, 2]
    scores = rng.random((50, 3))
    auc, acc = metrics("multi-class", labels, scores)
    assert auc == pytest.approx(np.mean([roc_auc_score(labels == i, scores[:, i]) for i in range(3)]))
    assert acc == pytest.approx(accuracy_score(labels, scores.argmax(1)))


def test_dummy_predictions_have_the_right_width_for_every_config(tmp_path):
    """Every config's dummy scores pass the width check (the official dummy is one class short)."""
    from medmnist_plus_common.evaluate import check_width, dummy_predictions

    catalog = load_catalog()
    for config in catalog.config_names():
        facts, _ = catalog.parse_config_name(config)
        index, scores = dummy_predictions(config, "val")
        check_width(facts, scores, config)
        assert len(index) == len(scores) == facts.split_counts["validation"]
        assert scores.shape[1] == (2 if facts.task == "binary" else facts.num_classes)
    # scored on the genuine file when present (index-aligned, full width)
    path = SHARED_DATA / "adrenalmnist3d.npz"
    if path.is_file():
        index, scores = dummy_predictions("adrenalmnist3d-28", "test", seed=1)
        order = np.random.default_rng(0).permutation(len(index))
        with np.load(path) as arrays:
            labels = arrays["test_labels"]
        result = evaluate("adrenalmnist3d-28", "test", str(write_csv(tmp_path / "d.csv", index[order], scores[order])),
                          data_dir=str(SHARED_DATA))
        assert (result.auc, result.acc) == pytest.approx(sklearn_figures("binary", labels, scores), abs=1e-12)
