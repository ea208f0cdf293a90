"""The streaming .npz reader against numpy's own reading: deflate and stored members, chunks, row ranges."""

import numpy as np
import pytest

from medmnist_plus_common.release import reader as release
from medmnist_plus_common.catalog import SPLITS, load_catalog
from medmnist_plus_common.release.reader import ReleaseArchive, check_release, shard_ranges
from medmnist_plus_common.release.synthetic import read_synthetic_arrays, write_synthetic_release
from medmnist_plus_common.release.writer import OFFICIAL_MEMBER_ORDER

from tests.fakes.releases import official_arrays


@pytest.fixture(params=["savez_compressed", "savez"])
def npz(request, tmp_path):
    """A release written by numpy itself, compressed (deflate) or stored, members in a non-official order."""
    facts = load_catalog()["dermamnist"]
    arrays = official_arrays(facts, 64, {"train": 37, "validation": 5, "test": 11})
    path = tmp_path / "dermamnist_64.npz"
    shuffled = {name: arrays[name] for name in reversed(list(arrays))}
    getattr(np, request.param)(path, **shuffled)
    return path, arrays


def test_rows_in_small_chunks_equal_numpy(npz, monkeypatch):
    path, arrays = npz
    monkeypatch.setattr(release, "CHUNK_BYTES", 5 * 64 * 64 * 3)  # 5 rows per chunk
    with ReleaseArchive(path) as archive:
        chunks = list(archive.iter_chunks("train_images", [(0, None)]))
        assert [len(c) for c in chunks] == [5] * 7 + [2]
        assert np.array_equal(np.concatenate(chunks), arrays["train_images"])
        assert np.array_equal(archive.read_array("test_labels"), arrays["test_labels"])
        assert archive.header("val_images").shape == (5, 64, 64, 3)


def test_row_ranges_skip_forward(npz, monkeypatch):
    path, arrays = npz
    monkeypatch.setattr(release, "CHUNK_BYTES", 3 * 64 * 64 * 3)
    ranges = [(2, 9), (9, 10), (20, 37)]
    with ReleaseArchive(path) as archive:
        got = np.concatenate(list(archive.iter_chunks("train_images", ranges)))
    expected = np.concatenate([arrays["train_images"][a:b] for a, b in ranges])
    assert np.array_equal(got, expected)


def test_check_release_reads_members_by_name(npz):
    path, _ = npz
    counts = check_release(str(path), load_catalog()["dermamnist"], 64, strict=False)
    assert counts == {"train": 37, "validation": 5, "test": 11}


def test_shard_ranges_cover_every_row_once():
    for rows, shards in [(0, 4), (1, 4), (10, 3), (1100, 4), (7, 32)]:
        ranges = shard_ranges(rows, shards)
        covered = [i for a, b in ranges for i in range(a, b)]
        assert covered == list(range(rows))
        assert len(ranges) <= max(1, shards)


def test_shards_for_processes_that_skip_give_later_processes_fewer_rows():
    for rows, shards, processes, share in [(7007, 32, 2, 0.2), (7007, 32, 2, 0.4), (1003, 4, 2, 0.4),
                                           (12000, 30, 3, 0.25), (10, 4, 2, 0.4)]:
        ranges = shard_ranges(rows, shards, processes, share)
        assert [i for a, b in ranges for i in range(a, b)] == list(range(rows))
        if rows < shards:
            continue
        assert len(ranges) == shards
        run = shards // processes
        per_process = [(ranges[k * run][0], ranges[(k + 1) * run - 1][1]) for k in range(processes)]
        # Each process's time: the rows before its first (inflated and dropped) plus its own rows: all equal.
        times = [start * share + (stop - start) for start, stop in per_process]
        assert max(times) - min(times) <= processes * 2, (rows, shards, processes, share, per_process)
        assert per_process[0][1] - per_process[0][0] > per_process[-1][1] - per_process[-1][0]
    assert shard_ranges(7007, 32, 2, 0.0) == shard_ranges(7007, 32)


@pytest.mark.parametrize("flag, size", [("chestmnist", 64), ("vesselmnist3d", 28)])
def test_streaming_writer_produces_what_numpy_reads(tmp_path, flag, size):
    facts = load_catalog()[flag]
    counts = {"train": 9, "validation": 3, "test": 4}
    path = write_synthetic_release(str(tmp_path / facts.files[size].file), facts, size, counts, seed=5)
    arrays = read_synthetic_arrays(path)
    assert list(arrays) == [name for name in OFFICIAL_MEMBER_ORDER]
    for split in SPLITS:
        images = arrays[f"{release.RELEASE_SPLIT_PREFIX[split]}_images"]
        assert images.dtype == np.uint8 and images.shape == (counts[split],) + facts.image_shape(size)
        assert images.std() > 5  # image-like content, not a constant
    assert check_release(path, facts, size, strict=False) == counts
    assert not (tmp_path / (facts.files[size].file + ".partial")).exists()
