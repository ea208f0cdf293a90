"""MedMNIST's evaluation metrics (AUC and accuracy per task kind), with predictions aligned by ``index``.

The figures are those of ``medmnist/evaluator.py`` (``getAUC`` / ``getACC``):

- **multi-class** and **ordinal**: AUC = mean over classes i of the one-vs-rest AUC of ``scores[:, i]``;
  ACC = mean of ``argmax(scores, 1) == label``. Scores: N x (number of classes).
- **binary**: AUC of the positive-class score ``scores[:, -1]``; ACC = mean of ``(scores[:, -1] > 0.5) == label``.
  Scores: N x 2 (as MedMNIST's) or N x 1 / N (the positive-class probability alone).
- **multi-label** (ChestMNIST): AUC = mean over labels of the AUC of ``scores[:, i]`` against ``label[:, i]``;
  ACC = mean over all N x 14 entries of ``(scores > 0.5) == label``.

AUC is computed here with numpy (Mann-Whitney U from average ranks, so tied scores count one half), so
scikit-learn is not needed at run time; the tests check every figure against scikit-learn.

The ground truth is read from the release file of the config's own size (as the official ``Evaluator`` of
``medmnist`` 3.0.2 does). Unlike the official one, predictions are matched to examples by their ``index``, never
by row order: a missing, duplicated or unknown index, or scores of the wrong width,
is an error naming what to fix.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np

from .catalog import ConfigRef, DatasetFacts, config_ref
from .errors import MedMNISTPlusError

THRESHOLD = 0.5


class EvaluationError(MedMNISTPlusError, ValueError):
    """Predictions that cannot be scored: unreadable, misaligned with the split, or of the wrong width."""


@dataclass
class Evaluation:
    auc: float
    acc: float
    task: str
    n: int
    config: str = ""
    split: str = ""

    def summary(self) -> str:
        return f"{self.config} {self.split}: AUC {self.auc:.4f}  ACC {self.acc:.4f}  ({self.task}, n={self.n:,})"


# ------------------------------------------------------------------------------------------------- metrics


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``, ties sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    first = np.r_[True, ordered[1:] != ordered[:-1]]
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = ((starts + 1 + ends) / 2.0)[np.cumsum(first) - 1]
    return ranks


def roc_auc(truth, scores, what: str = "the labels") -> float:
    """Area under the ROC curve of ``scores`` for the binary ``truth`` (ties count one half)."""
    truth = np.asarray(truth).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positives = int(truth.sum())
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        missing = "positive" if positives == 0 else "negative"
        raise EvaluationError(
            f"AUC is undefined for {what}: the split has no {missing} example of it ({truth.size} rows). "
            "Evaluate on a split that contains every class (the official splits do)."
        )
    ranks = _average_ranks(scores)
    return float((ranks[truth].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def metrics(task: str, labels: np.ndarray, scores: np.ndarray, label_names=None) -> Tuple[float, float]:
    """``(auc, acc)`` as MedMNIST defines them for ``task``; ``labels`` (N,) ids or (N, L) multi-hot."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    names = list(label_names) if label_names is not None else None

    def name(i):
        return f"label {i} ({names[i]})" if names else f"label {i}"

    if task == "multi-label":
        labels = labels.reshape(len(labels), -1)
        auc = np.mean([roc_auc(labels[:, i], scores[:, i], name(i)) for i in range(labels.shape[1])])
        acc = np.mean((scores > THRESHOLD) == labels.astype(bool))
    elif task == "binary":
        labels = labels.reshape(-1)
        positive = scores[:, -1] if scores.ndim == 2 else scores
        auc = roc_auc(labels, positive, "the positive class")
        acc = np.mean((positive > THRESHOLD) == labels.astype(bool))
    elif task in ("multi-class", "ordinal"):
        labels = labels.reshape(-1)
        auc = np.mean([roc_auc(labels == i, scores[:, i], f"class {i}" + (f" ({names[i]})" if names else ""))
                       for i in range(scores.shape[1])])
        acc = np.mean(np.argmax(scores, axis=1) == labels)
    else:
        raise EvaluationError(f"Unknown task kind {task!r}; MedMNIST has multi-class, ordinal, binary, multi-label.")
    return float(auc), float(acc)


# --------------------------------------------------------------------------------------------- predictions


def read_predictions(predictions, index=None, where: Optional[str] = None) -> Tuple[Optional[np.ndarray], np.ndarray]:
    """``(index or None, scores)`` from an array, a ``.csv``/``.npy``/``.npz`` file or a ``datasets`` dataset.

    - array (N x K, or N): rows in index order (row i is example i) unless ``index`` is given;
    - ``.csv``: ``index,score_0,...,score_{K-1}``, one row per example, an optional header line;
    - ``.npy``: an N x K array, in index order; ``.npz``: arrays ``index`` and ``scores``;
    - ``datasets.Dataset``: columns ``index`` and ``scores`` (one list per row) or ``score_0`` ... ``score_{K-1}``.
    """
    if isinstance(predictions, (str, os.PathLike)):
        return _read_prediction_file(os.fspath(predictions))
    if hasattr(predictions, "column_names") and not isinstance(predictions, np.ndarray):
        return _from_dataset(predictions, where or "the predictions dataset")
    scores = _as_scores(predictions, where or "the predictions array")
    return (None if index is None else _as_index(index, where or "the index array")), scores


def _as_scores(values, where: str) -> np.ndarray:
    try:
        scores = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise EvaluationError(f"{where}: scores are not numbers ({err}). Give one row of floats per example.") from None
    if scores.ndim == 1:
        scores = scores[:, None]
    if scores.ndim != 2:
        raise EvaluationError(f"{where}: scores have shape {scores.shape}; expected N x K (one row per example).")
    bad = ~np.isfinite(scores)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise EvaluationError(f"{where}: score row {row} holds NaN or infinity. Every score must be a finite number.")
    return scores


def _as_index(values, where: str) -> np.ndarray:
    index = np.asarray(values)
    if index.ndim != 1 or (index.size and index.dtype.kind not in "iu"):
        if index.ndim == 1 and index.dtype.kind == "f" and np.all(index == np.round(index)):
            return index.astype(np.int64)
        raise EvaluationError(f"{where}: the index must be one integer per row (got {index.dtype}, shape {index.shape}).")
    return index.astype(np.int64)


def _read_prediction_file(path: str) -> Tuple[Optional[np.ndarray], np.ndarray]:
    if not os.path.isfile(path):
        raise EvaluationError(f"{path}: predictions file not found. Pass a .csv (index,score_0,...), .npy or .npz file.")
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix == ".npy":
            return None, _as_scores(np.load(path, allow_pickle=False), path)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                if "index" not in arrays.files or "scores" not in arrays.files:
                    raise EvaluationError(f"{path}: needs arrays 'index' and 'scores' (it has {arrays.files}).")
                return _as_index(arrays["index"], path), _as_scores(arrays["scores"], path)
        if suffix in (".csv", ".txt"):
            return _read_csv(path)
    except (OSError, ValueError) as err:
        if isinstance(err, EvaluationError):
            raise
        raise EvaluationError(f"{path}: cannot read the predictions ({err}).") from None
    raise EvaluationError(f"{path}: unknown predictions format {suffix!r}; use .csv (index,score_0,...), .npy or .npz.")


def _read_csv(path: str) -> Tuple[np.ndarray, np.ndarray]:
    index, rows, width = [], [], None
    with open(path, newline="", encoding="utf-8") as f:
        for line_number, row in enumerate(csv.reader(f), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if line_number == 1 and not _is_number(row[0]):
                if row[0].strip().lower() != "index":
                    raise EvaluationError(f"{path}: the header's first column is {row[0]!r}; it must be 'index' "
                                          "(columns: index,score_0,...,score_{K-1}).")
                continue
            if width is None:
                width = len(row)
            if len(row) != width or len(row) < 2:
                raise EvaluationError(f"{path}: line {line_number} has {len(row)} columns, expected {width or 'index + scores'} "
                                      "(index,score_0,...,score_{K-1}).")
            try:
                value = float(row[0])
                if value != int(value):
                    raise ValueError(row[0])
                index.append(int(value))
                rows.append([float(cell) for cell in row[1:]])
            except ValueError:
                raise EvaluationError(f"{path}: line {line_number} is not an integer index and numeric scores: "
                                      f"{','.join(row)[:120]!r}.") from None
    if not rows:
        raise EvaluationError(f"{path}: holds no predictions (expected lines index,score_0,...).")
    return np.asarray(index, dtype=np.int64), _as_scores(rows, path)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _from_dataset(dataset, where: str) -> Tuple[np.ndarray, np.ndarray]:
    columns = list(dataset.column_names or [])
    if "index" not in columns:
        raise EvaluationError(f"{where}: needs an 'index' column (it has {columns}).")
    score_columns = sorted((c for c in columns if c.startswith("score_") and c[6:].isdigit()), key=lambda c: int(c[6:]))
    if not ("scores" in columns or score_columns):
        raise EvaluationError(f"{where}: needs a 'scores' column (a list per row) or columns score_0, score_1, ... "
                              f"(it has {columns}).")
    data = dataset.with_format("numpy")[:] if hasattr(dataset, "num_rows") else _collect(dataset)
    if "scores" in columns:
        scores = [np.asarray(row, dtype=np.float64) for row in data["scores"]]
        if len({row.shape for row in scores}) > 1:
            raise EvaluationError(f"{where}: the 'scores' lists have different lengths; give K scores per row.")
    else:
        scores = np.stack([np.asarray(data[c], dtype=np.float64) for c in score_columns], axis=1)
    return _as_index(np.asarray(data["index"]), where), _as_scores(scores, where)


def _collect(iterable_dataset) -> dict:
    out = {}
    for row in iterable_dataset:
        for key, value in row.items():
            out.setdefault(key, []).append(value)
    return out


def check_width(facts: DatasetFacts, scores: np.ndarray, where: str) -> None:
    width = scores.shape[1]
    if facts.task == "binary":
        if width not in (1, 2):
            raise EvaluationError(f"{where}: {facts.title} is binary, so scores are N x 2 (class 0, class 1) or N x 1 "
                                  f"(the positive-class probability); these are N x {width}.")
    elif width != facts.num_classes:
        kind = "labels" if facts.is_multilabel else "classes"
        raise EvaluationError(f"{where}: {facts.title} ({facts.task}) has {facts.num_classes} {kind}, so scores are "
                              f"N x {facts.num_classes}; these are N x {width}. One column per "
                              f"{kind[:-1] if kind == 'labels' else 'class'}, in the order of `medmnist-plus info {facts.flag}`.")


def _some(values, limit: int = 5) -> str:
    values = [int(v) for v in values[:limit + 1]]
    return ", ".join(map(str, values[:limit])) + (", ..." if len(values) > limit else "")


def align_predictions(truth_index: np.ndarray, pred_index: Optional[np.ndarray], scores: np.ndarray, where: str,
          split_text: str) -> np.ndarray:
    """``scores`` reordered to ``truth_index``; a missing, duplicated or unknown index is an error."""
    truth_index = np.asarray(truth_index, dtype=np.int64)
    if pred_index is None:  # a bare array: row i is example i
        if len(scores) != len(truth_index):
            raise EvaluationError(
                f"{where}: has {len(scores)} rows of scores but {split_text} has {len(truth_index)} examples. A bare "
                "array must hold one row per example in index order; or give the index (CSV index,score_0,...).")
        pred_index = np.arange(len(scores), dtype=np.int64)
    if len(pred_index) != len(scores):
        raise EvaluationError(f"{where}: {len(pred_index)} index values for {len(scores)} rows of scores.")
    unique, counts = np.unique(pred_index, return_counts=True)
    problems = []
    duplicated = unique[counts > 1]
    if duplicated.size:
        problems.append(f"{duplicated.size} index value(s) appear more than once ({_some(duplicated)})")
    extra = np.setdiff1d(unique, truth_index)
    if extra.size:
        problems.append(f"{extra.size} index value(s) are not examples of {split_text} ({_some(extra)})")
    missing = np.setdiff1d(truth_index, unique)
    if missing.size:
        problems.append(f"{missing.size} example(s) of {split_text} have no prediction (index {_some(missing)})")
    if problems:
        raise EvaluationError(f"{where}: " + "; ".join(problems) + ". Give exactly one prediction per example of the "
                              "split, keyed by its `index` column.")
    order = np.argsort(pred_index, kind="mergesort")
    return scores[order[np.searchsorted(pred_index[order], truth_index)]]


def score_width(facts: DatasetFacts) -> int:
    """Columns of a full score matrix: one per class (binary: 2, as MedMNIST's) or per label (multi-label: 14)."""
    return 2 if facts.task == "binary" else facts.num_classes


def dummy_predictions(config: Union[str, ConfigRef], split: str = "test", seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """``(index, scores)``: random scores of the right width for every example of ``split`` (catalog row count),
    e.g. to try the evaluator or a submission pipeline. (The official evaluator's dummy is one class short.)"""
    from .tools.rows import split_name

    facts = config_ref(config, any_size=False).facts
    rows = facts.split_counts[split_name(split)]
    scores = np.random.default_rng(seed).random((rows, score_width(facts)))
    if not facts.is_multilabel:
        scores /= scores.sum(1, keepdims=True)  # class probabilities
    return np.arange(rows, dtype=np.int64), scores


# ---------------------------------------------------------------------------------------------- ground truth


def ground_truth(config: Union[str, ConfigRef], split: str, *, data_dir: Optional[str] = None, repo: Optional[str] = None,
                 cache_dir: Optional[str] = None, base_url: Optional[str] = None,
                 progress=None) -> Tuple[np.ndarray, np.ndarray, str]:
    """``(index, labels, where)`` of a split: from the release file of this config's size, or a repo/export."""
    from .tools.rows import is_exported_folder, open_split, split_name

    ref = config_ref(config, any_size=False)  # parsed once (or given parsed), passed on
    facts, size, config = ref.facts, ref.size, ref.name
    split = split_name(split)
    if repo is not None or is_exported_folder(data_dir, config):
        source = open_split(ref, split, data_dir=data_dir, repo=repo, cache_dir=cache_dir)
        indices, labels = [], []
        for rows in source.batches(batch_size=1024, pixels=False):
            indices.append(rows.index)
            labels.append(rows.label)
            if progress:
                progress(f"labels read: {sum(map(len, indices)):,} rows")
        if not indices:
            raise EvaluationError(f"{source.describe()}: the split is empty.")
        return np.concatenate(indices), np.concatenate(labels), source.describe()
    from .hf import internals
    from .release.download import downloads_dir, locate_release
    from .release.reader import ReleaseArchive, member_name

    path = locate_release(facts.files[size], cache_dir=downloads_dir(cache_dir), data_dir=data_dir,
                          base_url=base_url, strict=False, offline=internals.offline())
    with ReleaseArchive(path) as archive:
        labels = archive.read_array(member_name(split, "labels"))
    labels = labels.astype(np.uint8) if facts.is_multilabel else labels.reshape(-1).astype(np.int64)
    return np.arange(len(labels), dtype=np.int64), labels, f"{path} ({member_name(split, 'labels')})"


def evaluate(config: Union[str, ConfigRef], split: str, predictions, *, index=None, data_dir: Optional[str] = None,
             repo: Optional[str] = None, cache_dir: Optional[str] = None, base_url: Optional[str] = None,
             progress=None) -> Evaluation:
    """Score ``predictions`` (see :func:`read_predictions`) on ``split`` of ``config`` as MedMNIST does."""
    from .tools.rows import split_name

    ref = config_ref(config, any_size=False)
    facts, config = ref.facts, ref.name
    split = split_name(split)
    where = os.fspath(predictions) if isinstance(predictions, (str, os.PathLike)) else "the predictions"
    pred_index, scores = read_predictions(predictions, index=index, where=where)
    check_width(facts, scores, where)
    truth_index, labels, truth_where = ground_truth(ref, split, data_dir=data_dir, repo=repo, cache_dir=cache_dir,
                                                    base_url=base_url, progress=progress)
    aligned = align_predictions(truth_index, pred_index, scores, where, f"{config} {split}")
    auc, acc = metrics(facts.task, labels, aligned, facts.labels)
    return Evaluation(auc=auc, acc=acc, task=facts.task, n=int(len(labels)), config=config, split=split)


# ------------------------------------------------------------------------------------------------------ CLI
