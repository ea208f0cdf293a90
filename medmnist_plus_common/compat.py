"""A drop-in for the classes of the official ``medmnist`` package (3.0.2), backed by medmnist-plus builds.

Code written for ``medmnist`` runs on our builds by changing one import::

    from medmnist_plus_common import compat as medmnist   # was: import medmnist
    train = medmnist.PathMNIST(split="train", size=224, download=True, transform=to_tensor)

What is the same as ``medmnist`` 3.0.2:

- the 18 classes (``PathMNIST`` ... ``SynapseMNIST3D``, and the aliases ``OrganMNISTAxial``/``Coronal``/
  ``Sagittal``), ``INFO`` (same keys and values, made from our catalog), ``Evaluator`` and ``DEFAULT_ROOT``;
- the constructor ``(split, transform=None, target_transform=None, download=False, as_rgb=False, root=...,
  size=None, mmap_mode=None)``: ``split`` is ``"train"``, ``"val"`` or ``"test"``, ``root`` the folder holding the
  official file (``<flag>.npz`` at 28 px, ``<flag>_<size>.npz`` otherwise), ``size`` None/28, 64, 128, 224 (3D:
  28, 64);
- the items: 2D a PIL image (``mode`` L or RGB as in the file, RGB with ``as_rgb``), 3D a float64 array in
  [0, 1] of shape (C, D, H, W) (C = 3 with ``as_rgb``, else 1); the target an int numpy array of shape (L,)
  (L = 1, or 14 for ChestMNIST); then ``transform`` / ``target_transform``. ``len``, ``flag``, ``info``, ``size``,
  ``size_flag``, ``split``, ``root``, ``repr`` (word for word) and ``labels`` (the release's label array).

What differs:

- **Memory.** Items are read from the memory-mapped Arrow cache of a build (:func:`medmnist_plus_common.load`),
  not from the whole split loaded into RAM, so ``imgs`` does not exist and ``mmap_mode`` is accepted and ignored
  (not needed; ``medmnist`` ignores it on ``.npz`` files too). The first construction of a dataset and size
  builds that cache from the file (one pass; every split at once); later constructions open it at once.
- **Checks.** The file's MD5 is checked (once per version of the file), and its shapes and labels are checked
  while it is built; a file that is not the official one (a subset...) needs ``verification_mode="no_checks"``.
- **Downloads.** ``download=True`` downloads a missing file into ``root`` with medmnist-plus's download: resumed
  after an interruption, retried, MD5-checked before it appears (no torchvision needed). ``root`` is created if
  missing. A missing file with ``download=False`` is a :class:`DatasetNotFoundError` (a ``RuntimeError``, as in
  ``medmnist``) naming the file and what to do. The default root is ``~/.medmnist`` (or
  ``$MEDMNIST_PLUS_MEDMNIST_ROOT``).
- **Not provided:** ``save`` and ``montage`` (use ``medmnist-plus montage``), ``imgs`` (see above).
- Extra keyword-only arguments go to the build: ``cache_dir``, ``verification_mode``, ``image_storage``
  (``"raw"`` reads 2D pixels without PNG decoding), ``num_proc``, and ``base_url`` (a mirror for ``download``).

``Evaluator(flag, split, size=None, root=...)`` reads the labels of the file of that size in ``root`` (as
``medmnist`` 3.0.2 does; 2.x, before the larger sizes existed, always read ``<flag>.npz``) and
``evaluate(y_score)`` returns ``Metrics(AUC, ACC)`` (a namedtuple, unpacks as ``auc, acc``) computed by
:func:`medmnist_plus_common.evaluate.metrics`: the same definitions as ``medmnist``'s ``getAUC``/``getACC``
(scikit-learn is not used; AUC from ranks, equal to scikit-learn's up to float rounding). Where ``medmnist``'s
``Evaluator`` differs: it checks nothing but the row count (an ``assert``), so scores of the wrong width give a
number or an IndexError, where ours name the width needed; a class absent from the split is a scikit-learn
ValueError there, an error naming the class here; ``size="28"`` (a string) makes it look for ``<flag>_28.npz``,
which does not exist; its ``get_dummy_prediction`` is one class short. ``parse_and_evaluate`` is not provided:
``medmnist-plus evaluate`` scores the CSV files that ``evaluate(y_score, save_folder)`` writes.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections import namedtuple
from typing import Optional

import numpy as np

from . import load, load_catalog
from .catalog import RELEASE_SPLIT_PREFIX
from .errors import DownloadError, MedMNISTPlusError
from .hf import internals
from .release.download import download as _fetch
from .release.download import medmnist_root, release_url

# As medmnist's: ~/.medmnist, expanded ($MEDMNIST_PLUS_MEDMNIST_ROOT if set); root=None reads it at each call.
DEFAULT_ROOT = medmnist_root()
HOMEPAGE = "https://github.com/MedMNIST/MedMNIST/"
# medmnist's names for the catalog's task kinds, and for its splits (the only naming differences).
TASK_NAMES = {"multi-class": "multi-class", "binary": "binary-class", "ordinal": "ordinal-regression",
              "multi-label": "multi-label, binary-class"}
SPLIT_NAMES = {release: split for split, release in RELEASE_SPLIT_PREFIX.items()}  # the release files' names

Metrics = namedtuple("Metrics", ["AUC", "ACC"])

try:  # like medmnist's classes, a torch Dataset (ConcatDataset via +) when torch is installed
    from torch.utils.data import Dataset as _Base
except ImportError:  # pragma: no cover - exercised without torch
    _Base = object


class DatasetNotFoundError(MedMNISTPlusError, RuntimeError):
    """The official file is not in ``root`` and ``download`` is False (``medmnist`` raises RuntimeError too)."""


def _info(facts) -> dict:
    """``medmnist.INFO[flag]`` of one dataset, from the catalog."""
    info = {"python_class": facts.title, "description": facts.description}
    for size, release in sorted(facts.files.items()):
        suffix = "" if size == 28 else f"_{size}"
        info["url" + suffix] = release.url
        info["MD5" + suffix] = release.md5
    info["task"] = TASK_NAMES[facts.task]
    info["label"] = {str(i): name for i, name in enumerate(facts.labels)}
    info["n_channels"] = facts.channels
    info["n_samples"] = {name: facts.split_counts[split] for name, split in SPLIT_NAMES.items()}
    info["license"] = facts.license
    return info


INFO = {facts.flag: _info(facts) for facts in load_catalog()}


def _root(root) -> str:
    return medmnist_root() if root is None else os.path.expanduser(os.fspath(root))


def _size(facts, size) -> int:
    size = 28 if size is None else size
    if size not in facts.files:
        raise ValueError(f"{facts.title} has no size {size!r}: the official sizes are "
                         f"{', '.join(map(str, facts.sizes))} (None means 28).")
    return int(size)


def _split(split) -> str:
    if split not in SPLIT_NAMES:
        raise ValueError(f"split must be 'train', 'val' or 'test' (as in medmnist), not {split!r}.")
    return split


def _missing(facts, size: int, root: str, download_hint: bool) -> DatasetNotFoundError:
    release = facts.files[size]
    path = os.path.join(root, release.file)
    if os.path.isdir(root):
        present = sorted(name for name in os.listdir(root) if name.endswith(".npz"))
        where = f"that folder holds {present}" if present else "that folder holds no .npz file"
    else:
        where = "that folder does not exist"
    todo = "pass download=True to download it there (MD5-checked, resumable), or " if download_hint else ""
    return DatasetNotFoundError(
        f"{path}: not found ({where}). {facts.title} at size {size} reads the official file {release.file} from "
        f"root. To fix it: {todo}put the file there ({release.url}, MD5 {release.md5}), or pass root=<the folder "
        "that holds it>.")


class MedMNIST(_Base):
    """One split of one MedMNIST+ dataset at one size, item by item as ``medmnist`` 3.0.2 serves it."""

    flag = ...
    available_sizes = ()

    def __init__(self, split, transform=None, target_transform=None, download=False, as_rgb=False,
                 root=None, size=None, mmap_mode=None, *, cache_dir: Optional[str] = None,
                 verification_mode=None, image_storage: str = "png", num_proc: Optional[int] = None,
                 base_url: Optional[str] = None):
        facts = load_catalog()[self.flag]
        self.size = _size(facts, size)
        self.size_flag = "" if self.size == 28 else f"_{self.size}"
        self.info = INFO[self.flag]
        self.split = _split(split)
        self.root = _root(root)
        self.transform, self.target_transform, self.as_rgb = transform, target_transform, as_rgb
        self.mmap_mode = mmap_mode  # accepted, not needed: items come from a memory-mapped cache
        self._base_url = base_url
        if download:
            self.download()
        if not os.path.isfile(os.path.join(self.root, facts.files[self.size].file)):
            raise _missing(facts, self.size, self.root, download_hint=True)
        build = {"cache_dir": cache_dir, "num_proc": num_proc, "verification_mode": verification_mode}
        if image_storage != "png":
            build["image_storage"] = image_storage
        self._dataset = load(facts.config_name(self.size), split=SPLIT_NAMES[self.split], data_dir=self.root,
                             **build)
        self._open()

    def _open(self) -> None:
        """The Arrow table of the split (memory-mapped) and the row of each release index."""
        import datasets

        self._table = internals.arrow_table(self._dataset)
        self._column = "volume" if "volume" in self._dataset.features else "image"
        feature = self._dataset.features[self._column]
        self._png = isinstance(feature, datasets.Image)
        self._shape = None if self._png else tuple(feature.shape)
        index = self._table.column("index").to_numpy()
        in_order = bool(np.array_equal(index, np.arange(len(index))))
        self._rows = None if in_order else np.argsort(index, kind="stable")

    def __getstate__(self):  # for DataLoader workers that are not forked: the cache is reopened, not copied
        state = dict(self.__dict__)
        for key in ("_table", "_rows"):
            state.pop(key)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._open()

    def download(self) -> None:
        """Download the official file into ``root`` unless it is there: resumable, retried, MD5-checked."""
        release = load_catalog()[self.flag].files[self.size]
        path = os.path.join(self.root, release.file)
        if not os.path.isfile(path):
            url = release_url(release, self._base_url)
            if internals.offline():
                raise DownloadError(f"{path}: not found, and offline mode is on (HF_HUB_OFFLINE or "
                                    f"HF_DATASETS_OFFLINE), so it cannot be downloaded from {url}. Unset it, or put "
                                    "the file there.")
            os.makedirs(self.root, exist_ok=True)
            _fetch(url, path, md5=release.md5)

    def __len__(self) -> int:
        return self._table.num_rows

    @property
    def labels(self) -> np.ndarray:
        """The split's labels as the release stores them: N x L uint8 (L = 1, or 14 for ChestMNIST)."""
        import pyarrow as pa

        column = self._table.column("label").combine_chunks()
        if pa.types.is_fixed_size_list(column.type):
            values = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)
        else:
            values = column.to_numpy(zero_copy_only=False).reshape(-1, 1)
        return (values if self._rows is None else values[self._rows]).astype(np.uint8)

    @property
    def imgs(self):
        raise AttributeError(
            f"{type(self).__name__}.imgs is not provided: it would hold the whole split in memory, which this "
            "drop-in avoids. Read items (dataset[i]), or batches with medmnist_plus_common.training.batch_loader.")

    def _row(self, index: int):
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"{type(self).__name__} indices must be integers, not {type(index).__name__}.")
        count = len(self)
        position = int(index) + count if index < 0 else int(index)
        if not 0 <= position < count:
            raise IndexError(f"index {index} is out of range for {count} examples.")
        row = position if self._rows is None else int(self._rows[position])
        table = self._table.slice(row, 1)
        target = np.asarray(table.column("label").to_pylist()[0]).reshape(-1).astype(int)
        return table.column(self._column).chunk(0), target

    def __repr__(self) -> str:
        """Adapted from torchvision (as in medmnist)."""
        head = f"Dataset {self.__class__.__name__} of size {self.size} ({self.flag}{self.size_flag})"
        body = [f"Number of datapoints: {self.__len__()}", f"Root location: {self.root}", f"Split: {self.split}",
                f"Task: {self.info['task']}", f"Number of channels: {self.info['n_channels']}",
                f"Meaning of labels: {self.info['label']}", f"Number of samples: {self.info['n_samples']}",
                f"Description: {self.info['description']}", f"License: {self.info['license']}"]
        return "\n".join([head] + ["    " + line for line in body])

    def _finish(self, img, target):
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


def _fixed_shape(chunk, shape) -> np.ndarray:
    """The one row of a sliced Array2D/Array3D Arrow chunk as a uint8 array (a view of the mapped cache)."""
    values = chunk.storage if hasattr(chunk, "storage") else chunk
    for _ in shape:
        values = values.flatten()
    return values.to_numpy(zero_copy_only=False).reshape(shape)


class MedMNIST2D(MedMNIST):
    available_sizes = [28, 64, 128, 224]

    def __getitem__(self, index):
        """``(PIL image, target)`` (without transforms): the target an int array of shape (L,)."""
        from PIL import Image

        cell, target = self._row(index)
        if self._png:
            pixels = np.asarray(Image.open(io.BytesIO(cell[0]["bytes"].as_py())))
        else:  # image_storage="raw": C x H x W uint8
            pixels = _fixed_shape(cell, self._shape).transpose(1, 2, 0)
            pixels = pixels[:, :, 0] if pixels.shape[2] == 1 else np.ascontiguousarray(pixels)
        img = Image.fromarray(pixels)
        if self.as_rgb:
            img = img.convert("RGB")
        return self._finish(img, target)


class MedMNIST3D(MedMNIST):
    available_sizes = [28, 64]

    def __getitem__(self, index):
        """``(volume, target)`` (without transforms): C x D x H x W float64 in [0, 1] (C = 3 with as_rgb)."""
        cell, target = self._row(index)
        volume = _fixed_shape(cell, self._shape)
        img = np.stack([volume / 255.0] * (3 if self.as_rgb else 1), axis=0)
        return self._finish(img, target)


def _dataset_class(facts):
    base = MedMNIST3D if facts.dims == 3 else MedMNIST2D
    doc = f"{facts.title} ({facts.task}, {len(facts.labels)} labels), as ``medmnist.{facts.title}``."
    return type(facts.title, (base,), {"flag": facts.flag, "__doc__": doc, "__module__": __name__})


for _facts in load_catalog():
    globals()[_facts.title] = _dataset_class(_facts)
del _facts

# medmnist's backward-compatible aliases
OrganMNISTAxial = globals()["OrganAMNIST"]
OrganMNISTCoronal = globals()["OrganCMNIST"]
OrganMNISTSagittal = globals()["OrganSMNIST"]


class Evaluator:
    """``medmnist.Evaluator``: AUC and ACC of scores for one split, computed by medmnist-plus's evaluator."""

    def __init__(self, flag, split, size=None, root=None, *, cache_dir: Optional[str] = None):
        from .evaluate import ground_truth

        facts = load_catalog()[flag]
        self.flag, self.split, self.root = flag, _split(split), _root(root)
        self.size = _size(facts, None if size is None else int(size))
        self.size_flag = "" if self.size == 28 else f"_{self.size}"
        self.info = INFO[flag]
        self._facts = facts
        if not os.path.isfile(os.path.join(self.root, facts.files[self.size].file)):
            raise _missing(facts, self.size, self.root, download_hint=False)
        _, labels, _ = ground_truth(facts.config_name(self.size), SPLIT_NAMES[self.split], data_dir=self.root,
                                    cache_dir=cache_dir)
        self.labels = labels.reshape(len(labels), -1)

    def evaluate(self, y_score, save_folder=None, run=None) -> Metrics:
        """``Metrics(AUC, ACC)`` of ``y_score`` (N x K, rows in the split's order); with ``save_folder``, the
        scores are also written as medmnist does (``<flag><size_flag>_<split>_[AUC]..._[ACC]...@<run>.csv``)."""
        from .evaluate import EvaluationError, check_width, metrics

        scores = np.asarray(y_score, dtype=np.float64)
        scores = scores[:, None] if scores.ndim == 1 else scores
        where = f"y_score for {self.flag}{self.size_flag} {self.split}"
        if scores.ndim != 2 or len(scores) != len(self.labels):
            raise EvaluationError(f"{where}: shape {np.shape(y_score)}, but the split has {len(self.labels)} "
                                  "examples: give one row of scores per example, in the split's order.")
        check_width(self._facts, scores, where)
        result = Metrics(*metrics(self._facts.task, self.labels, scores, self._facts.labels))
        if save_folder is not None:
            path = os.path.join(save_folder, self.get_standard_evaluation_filename(result, run))
            with open(path, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows([i, *map(repr, row)] for i, row in enumerate(scores.tolist()))
        return result

    def get_standard_evaluation_filename(self, metrics: Metrics, run=None) -> str:
        text = "_".join(f"[{k}]{v:.3f}" for k, v in zip(metrics._fields, metrics, strict=True))
        return f"{self.flag}{self.size_flag}_{self.split}_{text}@{time.time() if run is None else run}.csv"


__all__ = ["INFO", "HOMEPAGE", "DEFAULT_ROOT", "Evaluator", "Metrics", "MedMNIST", "MedMNIST2D", "MedMNIST3D",
           "DatasetNotFoundError", "OrganMNISTAxial", "OrganMNISTCoronal", "OrganMNISTSagittal"]
__all__ += [facts.title for facts in load_catalog()]
