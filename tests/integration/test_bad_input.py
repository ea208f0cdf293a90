"""Bad input: a clear error naming the file, what is wrong and what to do, and no cache that looks complete."""

import json
import logging
import os
import tempfile
import threading
import time
import zipfile

import datasets
import numpy as np
import pytest

from builders import MedMNISTPlus
from medmnist_plus_common import ChecksumError, ReleaseFileError, UnknownConfigError
from medmnist_plus_common.catalog import load_catalog
from medmnist_plus_common.release import download

from tests.fakes.releases import official_arrays, write_fake_release
from tests.genuine.samples import SHARED_DATA, require

COUNTS = {"train": 5, "validation": 2, "test": 3}


def build(config, data_dir, cache_dir, **kwargs):
    builder = MedMNISTPlus(config_name=config, data_dir=str(data_dir), cache_dir=cache_dir)
    try:
        builder.download_and_prepare(**kwargs)
    finally:
        assert_no_complete_cache(builder)
    return builder


def assert_no_complete_cache(builder):
    """Whatever happened, a cache folder exists only if it is complete (has its dataset_info.json and shards)."""
    assert not os.path.exists(builder.cache_dir + ".incomplete")
    if os.path.exists(builder.cache_dir):
        files = os.listdir(builder.cache_dir)
        assert "dataset_info.json" in files and any(f.endswith(".arrow") for f in files), files


def fake(tmp_path, flag="bloodmnist", size=28, mutate=None, counts=COUNTS):
    facts = load_catalog()[flag]
    arrays = official_arrays(facts, size, counts)
    if mutate:
        mutate(arrays)
    path, _ = write_fake_release(tmp_path, flag, size, counts, arrays=arrays)
    return path


def test_missing_member(tmp_path, cache_dir):
    path = fake(tmp_path, mutate=lambda a: a.pop("val_labels"))
    with pytest.raises(ReleaseFileError, match=r"bloodmnist\.npz: has no array 'val_labels'.*download it again"):
        build("bloodmnist-28", tmp_path, cache_dir, verification_mode="no_checks")
    assert path.exists()  # the user's file is left alone


def test_truncated_zip(tmp_path, cache_dir):
    path = fake(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReleaseFileError, match=r"bloodmnist\.npz: not a readable \.npz .*truncated or corrupt"):
        build("bloodmnist-28", tmp_path, cache_dir, verification_mode="no_checks")


def test_corrupt_member_data_fails_during_generation_and_leaves_no_cache(tmp_path, cache_dir):
    path = fake(tmp_path, counts={"train": 40, "validation": 2, "test": 3})
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("train_images.npy")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for offset in range(start + info.compress_size // 2, start + info.compress_size // 2 + 64):
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(ReleaseFileError, match=r"bloodmnist\.npz: array 'train_images' is corrupt|ends early"):
        build("bloodmnist-28", tmp_path, cache_dir, verification_mode="no_checks")


@pytest.fixture(params=["hash soon", "hash held"])
def hashes(request, monkeypatch):
    """The threads that hashed a release file (the real MD5). "hash held": a build's hash finishes only once the
    build waits for it, after its last row (the error then comes at the end), "hash soon": as it happens (a small
    file: before the first rows, so the error comes from the row loop or after the first split)."""
    threads, asked, md5sum, result = [], threading.Event(), download.md5sum, download.PendingChecksum.result

    def hash_file(path):
        threads.append(threading.current_thread())
        if request.param == "hash held" and threading.current_thread() is not threading.main_thread():
            assert asked.wait(60)
        return md5sum(path)

    def waited_for(check):
        asked.set()
        return result(check)

    monkeypatch.setattr(download, "md5sum", hash_file)
    monkeypatch.setattr(download.PendingChecksum, "result", waited_for)
    return threads


def official_counts_fake(tmp_path):
    return fake(tmp_path, counts=load_catalog()["breastmnist"].split_counts, flag="breastmnist")


@pytest.mark.parametrize("num_proc", [1, 2])
def test_md5_mismatch_of_a_local_file(tmp_path, cache_dir, hashes, num_proc):
    """The first build hashes the file beside its rows (not on the main thread), yet fails as before and keeps no
    cache; the MD5 is remembered, so the next build fails at once without hashing again."""
    official_counts_fake(tmp_path)
    for attempt in range(2):
        with pytest.raises(ChecksumError, match=r"^\S*breastmnist\.npz: MD5 \w+ is not the official 750601b1\w+ of "
                                                r"breastmnist\.npz\. The file is damaged .*no_checks"):
            build("breastmnist-28", tmp_path, cache_dir, num_proc=num_proc)
        assert len(hashes) == 1 and hashes[0] is not threading.main_thread()


def test_md5_mismatch_stops_num_proc_workers_within_a_few_rows(tmp_path, cache_dir, monkeypatch):
    """Workers cannot ask the parent's MD5 thread: they poll the file it reports a mismatch in, so a build with
    num_proc 2 fails within MD5_POLL_ROWS rows of the hash's end, not after building the train split (546 rows; here
    the hash ends before the workers start). Nothing of the report is left behind."""
    from medmnist_plus_common.hf import builder as builder_module

    official_counts_fake(tmp_path)
    encoded = tmp_path / "encoded"
    encode_sample = builder_module.encode_sample

    def counted(*args, **kwargs):  # runs in the forked workers: one byte per row, appended
        with open(encoded, "ab") as f:
            f.write(b".")
        return encode_sample(*args, **kwargs)

    monkeypatch.setattr(builder_module, "encode_sample", counted)
    split_generators = MedMNISTPlus._split_generators

    def hashed_first(self, dl_manager):  # in the parent, before the workers start: let the hash end (it takes ms)
        generators = split_generators(self, dl_manager)
        for _ in range(1000):
            if self._md5_check.done():
                break
            time.sleep(0.01)
        return generators

    monkeypatch.setattr(MedMNISTPlus, "_split_generators", hashed_first)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the report goes: this test's own
    os.mkdir(tmp_path / "tmp")
    with pytest.raises(ChecksumError, match=r"breastmnist\.npz: MD5 \w+ is not the official 750601b1\w+ .*no_checks"):
        build("breastmnist-28", tmp_path, cache_dir, num_proc=2)
    rows = encoded.stat().st_size if encoded.exists() else 0
    assert rows < 2 * builder_module.MD5_POLL_ROWS < 546, rows
    # the MD5 is remembered now: the next build fails before any row
    with pytest.raises(ChecksumError, match=r"is not the official 750601b1"):
        build("breastmnist-28", tmp_path, cache_dir, num_proc=2)
    assert (encoded.stat().st_size if encoded.exists() else 0) == rows
    assert os.listdir(tmp_path / "tmp") == []


@pytest.mark.parametrize("num_proc", [1, 2])
def test_md5_mismatch_with_no_checks_warns_once(tmp_path, cache_dir, caplog, hashes, num_proc):
    official_counts_fake(tmp_path)
    with caplog.at_level(logging.WARNING):
        builder = build("breastmnist-28", tmp_path, cache_dir, num_proc=num_proc, verification_mode="no_checks")
    warnings = [r.getMessage() for r in caplog.records if "MD5" in r.getMessage()]
    assert len(warnings) == 1 and "is not the official 750601b1" in warnings[0] and "anyway" in warnings[0]
    assert builder.as_dataset(split="train").num_rows == 546 and hashes[0] is not threading.main_thread()


@pytest.mark.parametrize("num_proc", [1, 2])
def test_a_file_with_the_official_md5_builds(tmp_path, cache_dir, release_md5, hashes, num_proc):
    path = official_counts_fake(tmp_path)
    release_md5("breastmnist", 28, download.md5sum(str(path)))  # the test's own hash: hashes[0]
    builder = build("breastmnist-28", tmp_path, cache_dir, num_proc=num_proc)
    assert builder.as_dataset(split="test").num_rows == 156 and len(hashes) == 2
    assert hashes[1] is not threading.main_thread()  # the build's hash ran beside it


def test_streaming_checks_the_md5_first(tmp_path, hashes):
    """Outside a build (streaming, the tools) the MD5 is known before any row is read: hashed on the caller's thread."""
    official_counts_fake(tmp_path)
    next(iter(MedMNISTPlus(config_name="breastmnist-28", data_dir=str(tmp_path)).as_streaming_dataset(split="test")))
    assert hashes == [threading.main_thread()]


def test_wrong_dtype(tmp_path, cache_dir):
    fake(tmp_path, mutate=lambda a: a.update(test_images=a["test_images"].astype(np.float32)))
    with pytest.raises(ReleaseFileError, match=r"test_images\.npy has dtype float32.*uint8"):
        build("bloodmnist-28", tmp_path, cache_dir, verification_mode="no_checks")


def test_channels_first_layout(tmp_path, cache_dir):
    fake(tmp_path, mutate=lambda a: a.update(train_images=np.ascontiguousarray(a["train_images"].transpose(0, 3, 1, 2))))
    with pytest.raises(ReleaseFileError, match=r"train_images\.npy has shape \(5, 3, 28, 28\).*channels-first"):
        build("bloodmnist-28", tmp_path, cache_dir, verification_mode="no_checks")


def test_wrong_channel_count(tmp_path, cache_dir):
    fake(tmp_path, mutate=lambda a: a.update(val_images=a["val_images"][..., :1]))
    with pytest.raises(ReleaseFileError, match=r"val_images\.npy .* 1 channels; BloodMNIST has 3"):
        build("bloodmnist-28", tmp_path, cache_dir, verification_mode="no_checks")


def test_gray_file_for_an_rgb_dataset(tmp_path, cache_dir):
    fake(tmp_path, mutate=lambda a: a.update(val_images=a["val_images"][..., 0].copy()))
    with pytest.raises(ReleaseFileError, match=r"gray-scale; BloodMNIST is RGB"):
        build("bloodmnist-28", tmp_path, cache_dir, verification_mode="no_checks")


def test_file_of_another_size(tmp_path, cache_dir):
    facts = load_catalog()["organmnist3d"]
    arrays = official_arrays(facts, 28, COUNTS)
    write_fake_release(tmp_path, "organmnist3d", 64, COUNTS, arrays=arrays)  # 28^3 data under the 64 name
    with pytest.raises(ReleaseFileError, match=r"organmnist3d_64\.npz: .*looks like size 28, not 64"):
        build("organmnist3d-64", tmp_path, cache_dir, verification_mode="no_checks")


def test_a_3d_file_for_a_2d_dataset_and_back(tmp_path, cache_dir):
    volumes = official_arrays(load_catalog()["organmnist3d"], 28, COUNTS)
    write_fake_release(tmp_path, "breastmnist", 28, COUNTS, arrays=volumes)  # 28^3 volumes under a 2D name
    with pytest.raises(ReleaseFileError, match=r"breastmnist\.npz: .*28x28x28 volumes: a 3D dataset's file, but "
                                              r"BreastMNIST is 2D") as error:
        build("breastmnist-28", tmp_path, cache_dir, verification_mode="no_checks")
    assert "channels" not in str(error.value)
    images = official_arrays(load_catalog()["breastmnist"], 28, COUNTS)
    write_fake_release(tmp_path, "organmnist3d", 28, COUNTS, arrays=images)
    with pytest.raises(ReleaseFileError, match=r"28x28 images: a 2D dataset's file, but OrganMNIST3D is 3D"):
        build("organmnist3d-28", tmp_path, cache_dir, verification_mode="no_checks")


def test_streaming_a_non_official_file_warns_without_blaming_an_unset_option(tmp_path, caplog):
    fake(tmp_path)
    stream = MedMNISTPlus(config_name="bloodmnist-28", data_dir=str(tmp_path)).as_streaming_dataset(split="test")
    with caplog.at_level(logging.WARNING):
        assert [row["index"] for row in stream] == [0, 1, 2]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("MD5" in w for w in warnings) and any("rows, but the official" in w for w in warnings)
    assert all("streaming" in w for w in warnings), warnings  # the reason in full once per process, then brief


def test_non_official_local_file_is_rejected_by_default(tmp_path, cache_dir):
    fake(tmp_path)
    with pytest.raises(ChecksumError):  # default checks: the local file's MD5 fails first
        build("bloodmnist-28", tmp_path, cache_dir)


def test_row_count_check_and_no_checks_switch(tmp_path, cache_dir, caplog, release_md5):
    from medmnist_plus_common.release.download import md5sum

    path = fake(tmp_path)
    release_md5("bloodmnist", 28, md5sum(str(path)))  # MD5 fine: only the row counts differ now
    with pytest.raises(ReleaseFileError, match=r"the train split has 5 rows, but the official BloodMNIST at size 28 "
                                              r"has 11959.*verification_mode='no_checks'"):
        build("bloodmnist-28", tmp_path, cache_dir)
    with caplog.at_level(logging.WARNING):
        builder = build("bloodmnist-28", tmp_path, cache_dir, verification_mode="no_checks")
    assert "Building it anyway" in caplog.text
    assert builder.as_dataset(split="train").num_rows == 5


def test_images_and_labels_disagree_on_rows(tmp_path, cache_dir):
    fake(tmp_path, mutate=lambda a: a.update(test_labels=a["test_labels"][:2]))
    with pytest.raises(ReleaseFileError, match=r"test_images\.npy has 3 rows but test_labels\.npy has 2"):
        build("bloodmnist-28", tmp_path, cache_dir, verification_mode="no_checks")


def test_label_out_of_range(tmp_path, cache_dir):
    def mutate(arrays):
        arrays["train_labels"][3, 0] = 8  # BloodMNIST has classes 0..7

    fake(tmp_path, mutate=mutate)
    with pytest.raises(ReleaseFileError, match=r"train_labels\.npy has values in 0\.\.8 \(first bad row 3\).*0\.\.7"):
        build("bloodmnist-28", tmp_path, cache_dir, verification_mode="no_checks")


def test_multi_hot_value_out_of_range(tmp_path, cache_dir):
    def mutate(arrays):
        arrays["val_labels"][1, 4] = 2

    fake(tmp_path, flag="chestmnist", mutate=mutate)
    with pytest.raises(ReleaseFileError, match=r"val_labels\.npy .*multi-hot values must be 0 or 1"):
        build("chestmnist-28", tmp_path, cache_dir, verification_mode="no_checks")


def test_missing_file_in_data_dir(tmp_path, cache_dir):
    fake(tmp_path, flag="bloodmnist")
    with pytest.raises(ReleaseFileError, match=r"bloodmnist_64\.npz: not found \(it has \['bloodmnist\.npz'\]\)"):
        build("bloodmnist-64", tmp_path, cache_dir)


@pytest.mark.parametrize("name, suggestion", [("organmnist3d_64", "organmnist3d-64"), ("pathmnist-225", "pathmnist-224"),
                                              ("PathMNIST-28", "pathmnist-28")])
def test_unknown_config_names_suggest_the_closest(name, suggestion, cache_dir):
    with pytest.raises(UnknownConfigError, match=rf"Unknown .*{name!r}.*Did you mean '{suggestion}'"):
        MedMNISTPlus(config_name=name, cache_dir=cache_dir)
    with pytest.raises(UnknownConfigError, match=rf"Did you mean '{suggestion}'"):
        datasets.load_dataset("medmnist_plus", name, cache_dir=cache_dir)


def test_a_failed_build_can_be_rerun_once_the_file_is_fixed(tmp_path, cache_dir):
    require("breastmnist.npz")  # skips, saying how to fetch it, when absent
    data = (SHARED_DATA / "breastmnist.npz").read_bytes()
    (tmp_path / "breastmnist.npz").write_bytes(data[:-100])
    with pytest.raises(ReleaseFileError):
        build("breastmnist-28", tmp_path, cache_dir, verification_mode="no_checks")
    (tmp_path / "breastmnist.npz").write_bytes(data)
    builder = build("breastmnist-28", tmp_path, cache_dir)
    assert builder.as_dataset(split="train").num_rows == 546


@pytest.mark.parametrize("layout", ["N1HW", "NHW1"])
def test_a_gray_release_with_a_channel_axis_is_named_as_such(tmp_path, cache_dir, layout):
    def add_axis(arrays):
        for name in [n for n in arrays if n.endswith("_images")]:
            arrays[name] = arrays[name][:, None] if layout == "N1HW" else arrays[name][..., None]

    fake(tmp_path, flag="breastmnist", mutate=add_axis)
    with pytest.raises(ReleaseFileError) as error:
        build("breastmnist-28", tmp_path, cache_dir, verification_mode="no_checks")
    message = str(error.value)
    assert "has a channel axis of 1" in message and "squeeze that axis" in message, message
    assert "28 channels" not in message and "channels;" not in message, message


def test_a_file_given_as_data_dir_says_to_pass_its_folder(tmp_path, cache_dir):
    path = fake(tmp_path, flag="breastmnist")
    with pytest.raises(ReleaseFileError, match=rf"{path}: is a file, not a folder\. It is that very file: pass the "
                                               rf"folder holding it \(data_dir='{tmp_path}'"):
        build("breastmnist-28", path, cache_dir, verification_mode="no_checks")
    with pytest.raises(ReleaseFileError, match=r"no such folder\. Pass the folder holding the official file"):
        build("breastmnist-28", tmp_path / "nowhere", cache_dir, verification_mode="no_checks")


def test_a_file_with_a_near_name_is_suggested(tmp_path, cache_dir):
    path = fake(tmp_path, flag="breastmnist")
    path.rename(tmp_path / "breastmnist_28.npz")
    with pytest.raises(ReleaseFileError, match=r"breastmnist\.npz: not found \(it has \['breastmnist_28\.npz'\]\)\. "
                                               r"breastmnist_28\.npz looks like it: rename it to breastmnist\.npz"):
        build("breastmnist-28", tmp_path, cache_dir, verification_mode="no_checks")


def test_a_subset_built_with_no_checks_is_checked_again_when_reused_without(tmp_path, cache_dir):
    """A finished cache does not waive the checks: the same fake file, built once with no_checks, fails its MD5 when
    asked again with the default checks (load_dataset, export), and an export with --no-checks says not verified."""
    fake(tmp_path, flag="breastmnist")
    build("breastmnist-28", tmp_path, cache_dir, verification_mode="no_checks")
    with pytest.raises(ChecksumError, match=r"breastmnist\.npz: MD5 .* is not the official"):
        build("breastmnist-28", tmp_path, cache_dir)  # reuses the cache folder, yet checks the file
    with pytest.raises(ChecksumError):
        datasets.load_dataset("medmnist_plus", "breastmnist-28", data_dir=str(tmp_path), cache_dir=cache_dir)
    from medmnist_plus_common.publish.push import export

    out = tmp_path / "export"
    with pytest.raises(ChecksumError):
        export(str(out), ["breastmnist-28"], data_dir=str(tmp_path), cache_dir=cache_dir)
    export(str(out), ["breastmnist-28"], data_dir=str(tmp_path), cache_dir=cache_dir, no_checks=True)
    provenance = json.loads((out / "medmnist_plus.json").read_text())
    assert provenance["breastmnist-28"]["verified"] is False
