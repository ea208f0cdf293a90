"""StreamedRelease, the writer regenerate streams its rows into: rows deflated by workers or arrays deflated in the
file's own stream, 2D RGB and 3D rows, records dropped after a split's header, and a copy that fails midway."""

import zipfile

import numpy as np
import pytest

from medmnist_plus_common.catalog import SPLITS, load_catalog
from medmnist_plus_common.release import writer
from medmnist_plus_common.release.reader import member_name
from medmnist_plus_common.release.writer import DeflatedRow, StreamedRelease

PLANNED = {"train": 5, "validation": 2, "test": 3}


def _rows(facts, size, count, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count,) + facts.image_shape(size), dtype=np.uint8)


def _labels(facts, counts):
    return {member_name(split, "labels"): ((counts[split],) + facts.label_shape(),
                                           [np.zeros((counts[split],) + facts.label_shape(), np.uint8)])
            for split in SPLITS}


def _stream(tmp_path, flag, size, precompressed, drop):
    """Write PLANNED rows per split, leaving out the rows of ``drop`` ({split: [row numbers]}); the arrays kept."""
    facts = load_catalog()[flag]
    release = StreamedRelease(str(tmp_path / f"{flag}_{size}.npz"), facts, size, PLANNED, precompressed=precompressed)
    kept = {}
    try:
        for number, split in enumerate(SPLITS):
            release.begin_split(split)
            rows = _rows(facts, size, PLANNED[split], seed=number)
            kept[split] = rows[[i for i in range(len(rows)) if i not in drop.get(split, [])]]
            for row in kept[split]:
                # a worker sends the row's bytes deflated; one process passes the array
                release.write(DeflatedRow.of(row.tobytes()) if precompressed else row)
            release.end_split()
        counts = {split: len(kept[split]) for split in SPLITS}
        path = release.finish(_labels(facts, counts))
    finally:
        release.discard()
    return path, kept


@pytest.mark.parametrize("precompressed", [False, True], ids=["one process", "rows deflated by workers"])
@pytest.mark.parametrize("flag, size", [("pathmnist", 28), ("vesselmnist3d", 28)])
@pytest.mark.parametrize("drop", [{}, {"train": [0, 3]}, {"validation": [0, 1]}], ids=["all kept", "train", "all of val"])
def test_rows_arrive_as_numpy_reads_them(tmp_path, flag, size, precompressed, drop):
    path, kept = _stream(tmp_path, flag, size, precompressed, drop)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None  # every member's CRC-32 checks
        assert [info.filename for info in archive.infolist()] == [f"{name}.npy" for name in writer.OFFICIAL_MEMBER_ORDER]
    with np.load(path) as release:
        for split in SPLITS:
            images = release[member_name(split, "images")]
            assert images.shape == kept[split].shape and np.array_equal(images, kept[split])
    assert [p.name for p in tmp_path.iterdir()] == [f"{flag}_{size}.npz"]  # no partial file, no scratch copy


def test_a_copy_that_fails_midway_leaves_nothing(tmp_path, monkeypatch):
    """After a drop the file is written again from the partial file's rows; if that fails (here: the disk fills
    while the second split is copied), neither the release nor either partial file is left behind."""
    original = writer.StreamedRelease._rows_written

    def failing(self, split, chunk_bytes=16 * 2**20):
        if split == "validation":
            raise OSError(28, "No space left on device")
        yield from original(self, split, chunk_bytes)

    monkeypatch.setattr(writer.StreamedRelease, "_rows_written", failing)
    with pytest.raises(OSError, match="No space left"):
        _stream(tmp_path, "pathmnist", 28, False, {"train": [1]})
    assert list(tmp_path.iterdir()) == []


def test_finish_refuses_a_split_that_was_never_begun(tmp_path):
    facts = load_catalog()["pathmnist"]
    release = StreamedRelease(str(tmp_path / "pathmnist.npz"), facts, 28, PLANNED, precompressed=False)
    try:
        release.begin_split("train")
        release.end_split()
        with pytest.raises(ValueError, match="no image member for validation, test"):
            release.finish(_labels(facts, {"train": 0, "validation": 0, "test": 0}))
    finally:
        release.discard()
    assert list(tmp_path.iterdir()) == []
