"""Deflate access points: rows read from any point equal the zip member's rows, and a worker given rows in the
middle of a member does not inflate the rows before them (issue 11)."""

import hashlib
import os
import shutil
import zipfile
import zlib

import numpy as np
import pytest

from builders import TissueMNIST
from medmnist_plus_common.release import deflate_index
from medmnist_plus_common.catalog import SPLITS, load_catalog
from medmnist_plus_common.release.download import remembered_md5
from medmnist_plus_common.errors import ReleaseFileError
from medmnist_plus_common.release.reader import ReleaseArchive, index_release, member_name
from medmnist_plus_common.hf.sources import MIN_ROWS_PER_SHARD, OfficialSource

from tests.fakes.releases import assert_matches_release, write_fake_release

pytestmark = pytest.mark.skipif(not deflate_index.available(), reason="the system zlib cannot be loaded")

MANY = {"train": 1100, "validation": 300, "test": 520}
SPAN = 64 * 1024


@pytest.fixture
def small_span(monkeypatch):
    monkeypatch.setattr(deflate_index, "SPAN", SPAN)  # test-sized members get many access points


@pytest.fixture
def release(tmp_path):
    return write_fake_release(tmp_path / "release", "tissuemnist", 28, MANY, seed=5)


def read_all(reader, step=100_003):
    out = bytearray()
    while chunk := reader.read(step):
        out += chunk
    return bytes(out)


def test_every_offset_reads_the_member_bytes(release, tmp_path):
    path, _ = release
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("train_images.npy")
        member = archive.read(info)
    index = deflate_index.build_index(str(path), info, span=SPAN)
    assert len(index.out) >= 10 and index.out == sorted(index.out)
    assert any(index.bits), "no point starts inside a byte: inflatePrime is not exercised"
    index.save(str(tmp_path / "index.npz"))
    loaded = deflate_index.MemberIndex.load(str(tmp_path / "index.npz"))
    assert (loaded.out, loaded.start, loaded.bits, loaded.windows) == (index.out, index.start, index.bits, index.windows)
    offsets = [0, 1, SPAN - 1, SPAN, index.out[3], index.out[3] + 1, index.out[-1] - 1, len(member) - 7, len(member)]
    offsets += list(np.random.default_rng(0).integers(0, len(member), 12))
    for offset in offsets:
        with deflate_index.DeflatedMemberReader(str(path), info, int(offset), loaded) as reader:
            assert read_all(reader) == member[int(offset):], offset


def test_the_sequential_reader_reads_from_any_offset_and_checks_the_member(release, tmp_path):
    path, _ = release
    with zipfile.ZipFile(path) as archive:
        infos = [archive.getinfo(name) for name in ("train_images.npy", "train_labels.npy")]
        members = [archive.read(info) for info in infos]
    for info, member in zip(infos, members):
        for offset in (0, 1, 7, len(member) // 3, len(member) - 1, len(member)):
            for step in (1, 4097, 100_003, len(member) + 5):
                if step == 1 and len(member) - offset > 50_000:
                    continue
                with deflate_index.SequentialMemberReader(str(path), info, offset) as reader:
                    assert read_all(reader, step) == member[offset:], (info.filename, offset, step)
    info = infos[0]
    start = deflate_index.data_offset(str(path), info)
    original = path.read_bytes()
    for name, damaged, error in [
        ("flipped", original[:start + info.compress_size // 2] + bytes([original[start + info.compress_size // 2] ^ 0x55])
         + original[start + info.compress_size // 2 + 1:], "corrupt"),
        ("truncated", original[:start + info.compress_size // 2], "ends early"),
    ]:
        bad = tmp_path / f"{name}.npz"
        bad.write_bytes(damaged)
        with pytest.raises(zlib.error, match=error):
            with deflate_index.SequentialMemberReader(str(bad), info) as reader:
                read_all(reader)


def test_a_corrupt_member_gives_no_index(release, tmp_path):
    path, _ = release
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("train_images.npy")
    data = bytearray(path.read_bytes())
    start = deflate_index.data_offset(str(path), info)
    data[start + info.compress_size // 2] ^= 0x55
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(zlib.error):
        deflate_index.build_index(str(bad), info, span=SPAN)


def test_rows_after_the_first_point_are_read_without_inflating_the_rows_before(release, tmp_path, small_span):
    path, arrays = release
    index_dir = str(tmp_path / "index")
    images = member_name("train", "images")
    with ReleaseArchive(str(path), index_dir) as archive:
        assert np.array_equal(archive.read_array(images), arrays[images])
        assert not os.path.exists(index_dir), "a read records no points (ISA-L's inflate is faster than zlib's)"
        archive.index_members([images])
    assert any(name.endswith("-train_images.npz") for name in os.listdir(index_dir))

    # Damage the first compressed bytes of the member, keeping the file's size and mtime (its identity):
    # rows far into the member still read, since the reader starts at the access point before them.
    stat = os.stat(path)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(images + ".npy")
    index_file = os.path.join(index_dir, next(n for n in os.listdir(index_dir) if n.endswith("-train_images.npz")))
    second_point = deflate_index.MemberIndex.load(index_file).start[1]
    damaged = 8192  # after the bytes that hold the .npy header, before the member's second access point
    assert damaged + 64 < second_point
    with open(path, "r+b") as f:
        f.seek(deflate_index.data_offset(str(path), info) + damaged)
        f.write(b"\xff" * 64)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with ReleaseArchive(str(path), index_dir) as archive:
        late = np.concatenate(list(archive.iter_chunks(images, [(900, 1000), (1050, None)])))
        assert np.array_equal(late, np.concatenate([arrays[images][900:1000], arrays[images][1050:]]))
        # a range far after the previous one starts again at its access point (random access for previews)
        jumped = np.concatenate(list(archive.iter_chunks(images, [(0, 3), (900, 910)])))
        assert np.array_equal(jumped, np.concatenate([arrays[images][0:3], arrays[images][900:910]]))
        with pytest.raises(ReleaseFileError, match="corrupt"):
            list(archive.iter_chunks(images, [(0, 300)]))
    with ReleaseArchive(str(path)) as archive:  # without the index, the damage is met on the way
        with pytest.raises(ReleaseFileError, match="corrupt"):
            list(archive.iter_chunks(images, [(900, 1000)]))


def test_shards_are_planned_for_num_proc_by_whether_processes_can_start_at_their_rows(release, tmp_path, small_span):
    path, _ = release
    facts = load_catalog()["tissuemnist"]
    index_dir = str(tmp_path / "index")
    source = OfficialSource(facts, 28, str(path), strict=False, index_dir=index_dir)
    skewed = source.plan(num_proc=2)["train"]  # no access points: the second process inflates the first's rows
    run = len(skewed) // 2
    first, second = skewed[run - 1][1] - skewed[0][0], skewed[-1][1] - skewed[run][0]
    assert first + second == MANY["train"] and second < first
    index_release(str(path), index_dir)
    for num_proc in (2, 3):
        plan = source.plan(num_proc=num_proc)
        for split in SPLITS:
            shards = plan[split]
            if MANY[split] < 2 * MIN_ROWS_PER_SHARD:  # too small for two shards: one (datasets uses one process)
                assert len(shards) == 1
                continue
            assert len(shards) % num_proc == 0, (split, len(shards))
            # datasets gives each process an equal run of consecutive shards: equal rows, within one shard's rows
            run = len(shards) // num_proc
            per_process = [sum(b - a for a, b in shards[k * run:(k + 1) * run]) for k in range(num_proc)]
            assert sum(per_process) == MANY[split]
            assert max(per_process) - min(per_process) <= max(b - a for a, b in shards), (split, per_process)


def test_a_build_without_points_reads_from_the_start_and_a_build_with_them_uses_them(release, tmp_path, small_span):
    path, arrays = release
    folder = str(path.parent)
    cache = tmp_path / "cache"
    index_dir = cache / "downloads" / "medmnist_plus" / "index"
    first = TissueMNIST(config_name="28", data_dir=folder, cache_dir=str(cache))
    first.download_and_prepare(num_proc=2, verification_mode="no_checks")
    assert not index_dir.exists() or not os.listdir(index_dir)  # a local file's first build records none
    assert_matches_release(first.as_dataset(), arrays, load_catalog()["tissuemnist"])
    shutil.rmtree(first.cache_dir)

    index_release(str(path), str(index_dir))
    names = sorted(os.listdir(index_dir))
    assert [n.split("-", 2)[2] for n in names] == ["test_images.npz", "train_images.npz", "val_images.npz"]
    # Damage the train member's first bytes, keeping the file's identity: the second process starts at its access
    # point, so it builds its rows; the first process meets the damage (proof that the points were used).
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member_name("train", "images") + ".npy")
    original = path.read_bytes()

    def damage():
        data = bytearray(original)
        data[deflate_index.data_offset(str(path), info) + 8192] ^= 0xFF
        path.write_bytes(bytes(data))

    _keep_identity(path, damage)
    source = OfficialSource(load_catalog()["tissuemnist"], 28, str(path), strict=False, index_dir=str(index_dir))
    late = source.plan(num_proc=2)["train"][-1]
    rows = [index for _, (index, _, _) in source.rows("train", [late])]
    assert rows == list(range(*late))
    with pytest.raises(ReleaseFileError, match="corrupt"):
        list(source.rows("train", [source.plan(num_proc=2)["train"][0]]))
    _keep_identity(path, lambda: path.write_bytes(original))
    second = TissueMNIST(config_name="28", data_dir=folder, cache_dir=str(cache))
    second.download_and_prepare(num_proc=2, verification_mode="no_checks")
    built = second.as_dataset()
    assert_matches_release(built, arrays, load_catalog()["tissuemnist"])
    for split in SPLITS:
        assert built[split]["index"][:] == list(range(MANY[split]))


def test_a_downloaded_release_is_indexed(tmp_path, file_server, release_md5, small_span):
    from medmnist_plus_common.release.download import md5sum

    path, arrays = write_fake_release(tmp_path / "upstream", "tissuemnist", 28, MANY, seed=6)
    file_server.files[path.name] = path.read_bytes()
    release_md5("tissuemnist", 28, md5sum(str(path)))
    cache = tmp_path / "cache"
    builder = TissueMNIST(config_name="28", base_url=file_server.base_url, cache_dir=str(cache))
    builder.download_and_prepare(num_proc=2, verification_mode="no_checks")  # a subset: row counts differ
    index_dir = cache / "downloads" / "medmnist_plus" / "index"
    assert len([n for n in os.listdir(index_dir) if n.endswith("_images.npz")]) == 3
    assert_matches_release(builder.as_dataset(), arrays, load_catalog()["tissuemnist"])


def test_index_release_skips_members_it_has(release, tmp_path, small_span):
    path, _ = release
    index_dir = tmp_path / "index"
    index_release(str(path), str(index_dir))
    before = {n: os.stat(index_dir / n).st_mtime_ns for n in os.listdir(index_dir)}
    assert len(before) == 3
    index_release(str(path), str(index_dir))
    assert {n: os.stat(index_dir / n).st_mtime_ns for n in os.listdir(index_dir)} == before


def test_a_file_is_hashed_again_when_it_changes(tmp_path):
    path = tmp_path / "file.npz"
    memo = str(tmp_path / "md5")
    path.write_bytes(b"first content")
    first = remembered_md5(str(path), memo)
    assert first == remembered_md5(str(path), memo) == hashlib.md5(b"first content").hexdigest()
    stat = os.stat(path)
    path.write_bytes(b"other content, longer")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert remembered_md5(str(path), memo) != first


def _index_file(index_dir, member):
    return os.path.join(index_dir, next(n for n in os.listdir(index_dir) if n.endswith(f"-{member}.npz")))


def _index_file_copy(tmp_path, data):
    copy = tmp_path / "index-copy.npz"
    copy.write_bytes(data)
    return str(copy)


def _keep_identity(path, change):
    """Change the file's bytes, keeping its size and mtime (what the index is keyed by)."""
    stat = os.stat(path)
    change()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _indexed_train_images(release, tmp_path):
    """The release's train images indexed in an index_dir: (index_dir, member name, its index file)."""
    path, _ = release
    index_dir = str(tmp_path / "index")
    images = member_name("train", "images")
    with ReleaseArchive(str(path), index_dir) as archive:
        archive.index_members([images])
    return index_dir, images, _index_file(index_dir, "train_images")


def test_damage_after_an_access_point_is_found_by_the_span_crcs(release, tmp_path, small_span):
    """A reader that starts at an access point never sees the member's CRC-32: each span it passes is checked."""
    path, arrays = release
    index_dir, images, index_file = _indexed_train_images(release, tmp_path)
    index = deflate_index.MemberIndex.load(index_file)
    assert len(index.crcs) == len(index.out) and index.fits(str(path), zipfile.ZipFile(path).getinfo(images + ".npy"))
    original = path.read_bytes()
    points = range(2, len(index.out) - 1, 2)
    assert len(points) >= 3
    for point in points:  # one flipped bit in the middle of a span, then a read from the point before that span
        flip = index.data_offset + (index.start[point] + index.start[point + 1]) // 2

        def damage(at=flip):
            data = bytearray(original)
            data[at] ^= 0x10
            path.write_bytes(bytes(data))

        _keep_identity(path, damage)
        first_row = index.out[point - 1] // arrays[images][0].nbytes + 1
        with ReleaseArchive(str(path), index_dir) as archive:
            with pytest.raises(ReleaseFileError, match="corrupt"):
                list(archive.iter_chunks(images, [(first_row, None)]))
    _keep_identity(path, lambda: path.write_bytes(original))


def test_an_unusable_index_is_ignored_and_recorded_again(release, tmp_path, small_span):
    path, arrays = release
    index_dir, images, index_file = _indexed_train_images(release, tmp_path)
    good = open(index_file, "rb").read()

    open(index_file, "wb").close()  # empty (e.g. a crash while it was written)
    with ReleaseArchive(str(path), index_dir) as archive:
        # read from the member's start (not blamed on the release); the unusable file is removed
        assert np.array_equal(np.concatenate(list(archive.iter_chunks(images, [(700, None)]))), arrays[images][700:])
        assert not os.path.exists(index_file)
        archive.index_members([images])  # and recorded again on request
    assert deflate_index.MemberIndex.load(index_file).out == deflate_index.MemberIndex.load(
        _index_file_copy(tmp_path, good)).out

    # The index of another file saved under this file's identity (a copy that kept size and mtime): not used.
    other, _ = write_fake_release(tmp_path / "other", "tissuemnist", 28, MANY, seed=9)
    with zipfile.ZipFile(other) as archive:
        stale = deflate_index.build_index(str(other), archive.getinfo(images + ".npy"))
    stale.save(index_file)
    with ReleaseArchive(str(path), index_dir) as archive:
        assert np.array_equal(np.concatenate(list(archive.iter_chunks(images, [(700, None)]))), arrays[images][700:])


def test_the_index_of_a_replaced_file_is_replaced(release, tmp_path, small_span):
    path, _ = release
    index_dir, images, old_index = _indexed_train_images(release, tmp_path)
    _, arrays = write_fake_release(path.parent, "tissuemnist", 28, MANY, seed=11)  # a new version, same path
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with ReleaseArchive(str(path), index_dir) as archive:
        assert np.array_equal(archive.read_array(images), arrays[images])
        archive.index_members([images])
    names = [n for n in os.listdir(index_dir) if n.endswith("-train_images.npz")]
    assert len(names) == 1 and os.path.join(index_dir, names[0]) != old_index
