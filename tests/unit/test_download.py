"""Downloads over real HTTP from a server on 127.0.0.1: success, MD5 failure, transient errors, resume."""

import os
import tempfile

import datasets
import pytest

from builders import MedMNISTPlus
from medmnist_plus_common import ChecksumError, DownloadError
from medmnist_plus_common.release import download
from medmnist_plus_common.catalog import load_catalog
from medmnist_plus_common.release.download import md5sum

from tests.fakes.releases import assert_matches_release, write_fake_release

COUNTS = {"train": 6, "validation": 3, "test": 3}


@pytest.fixture
def served_release(tmp_path, file_server, release_md5):
    """A fake pneumoniamnist-64 release served by the local server and published in the catalog."""
    path, arrays = write_fake_release(tmp_path / "upstream", "pneumoniamnist", 64, COUNTS)
    file_server.files[path.name] = path.read_bytes()
    release_md5("pneumoniamnist", 64, md5sum(str(path)))
    return path, arrays


def cached_files(cache_dir):
    return sorted(os.path.relpath(os.path.join(d, f), cache_dir) for d, _, fs in os.walk(cache_dir) for f in fs)


def test_download_verifies_caches_and_builds(served_release, file_server, cache_dir):
    path, arrays = served_release
    built = datasets.load_dataset("medmnist_plus", "pneumoniamnist-64", base_url=file_server.base_url,
                                  cache_dir=cache_dir, verification_mode="no_checks")
    assert_matches_release(built, arrays, load_catalog()["pneumoniamnist"])
    stored = [f for f in cached_files(cache_dir) if f.endswith("pneumoniamnist_64.npz")]
    assert len(stored) == 1 and md5sum(os.path.join(cache_dir, stored[0])) == md5sum(str(path))
    assert not [f for f in cached_files(cache_dir) if f.endswith(".incomplete")]

    # A second builder (another config id: no_checks off) reuses the downloaded file: no new request.
    requests_before = len(file_server.requests)
    streamed = MedMNISTPlus(config_name="pneumoniamnist-64", base_url=file_server.base_url,
                            cache_dir=cache_dir).as_streaming_dataset(split="test")
    assert [row["index"] for row in streamed] == [0, 1, 2]
    assert len(file_server.requests) == requests_before


def test_md5_mismatch_is_never_used_or_cached(served_release, file_server, cache_dir):
    path, _ = served_release
    body = bytearray(path.read_bytes())
    body[len(body) // 2] ^= 0xFF
    file_server.files[path.name] = bytes(body)
    builder = MedMNISTPlus(config_name="pneumoniamnist-64", base_url=file_server.base_url, cache_dir=cache_dir)
    with pytest.raises(ChecksumError, match=r"pneumoniamnist_64\.npz.*MD5 .* not the published .*nothing was cached"):
        builder.download_and_prepare(verification_mode="no_checks")
    leftovers = [f for f in cached_files(cache_dir) if not f.endswith(".lock")]
    assert not [f for f in leftovers if f.endswith(".npz") or f.endswith(".incomplete")]
    assert not os.path.exists(builder.cache_dir)


@pytest.mark.parametrize("status", [503, 429, 502])
def test_transient_server_errors_are_retried(served_release, file_server, cache_dir, status):
    path, arrays = served_release
    file_server.plan[path.name] = [status, status, "ok"]
    built = datasets.load_dataset("medmnist_plus", "pneumoniamnist-64", base_url=file_server.base_url,
                                  cache_dir=cache_dir, verification_mode="no_checks", split="train")
    assert built.num_rows == COUNTS["train"]
    assert [name for name, _ in file_server.requests] == [path.name] * 3


def test_interrupted_download_resumes_with_range(served_release, file_server, tmp_path):
    path, _ = served_release
    file_server.plan[path.name] = ["drop", "ok"]
    target = tmp_path / "dl" / path.name
    download.download(f"{file_server.base_url}/{path.name}", str(target), md5=md5sum(str(path)))
    assert target.read_bytes() == path.read_bytes()
    (first, first_range), (second, second_range) = file_server.requests
    assert first_range is None
    assert second_range is not None and int(second_range[len("bytes="):-1]) > 0


def test_partial_file_from_an_earlier_run_is_resumed(served_release, file_server, tmp_path):
    path, _ = served_release
    body = path.read_bytes()
    target = tmp_path / "dl" / path.name
    target.parent.mkdir()
    (tmp_path / "dl" / (path.name + ".incomplete")).write_bytes(body[:1000])
    download.download(f"{file_server.base_url}/{path.name}", str(target), md5=md5sum(str(path)))
    assert target.read_bytes() == body
    assert file_server.requests == [(path.name, "bytes=1000-")]


def test_not_found_fails_at_once_with_advice(file_server, tmp_path):
    with pytest.raises(DownloadError, match=r"HTTP 404.*check the base URL.*Nothing was downloaded or cached"):
        download.download(f"{file_server.base_url}/nothing.npz", str(tmp_path / "nothing.npz"))
    assert len(file_server.requests) == 1
    assert not (tmp_path / "nothing.npz").exists()


def test_persistent_errors_give_up_and_keep_nothing_complete(served_release, file_server, tmp_path, monkeypatch):
    path, _ = served_release
    monkeypatch.setattr(download, "RETRIES", 2)
    file_server.plan[path.name] = [503] * 5
    target = tmp_path / "dl" / path.name
    with pytest.raises(DownloadError, match=r"failed 3 times \(last: HTTP 503\)") as error:
        download.download(f"{file_server.base_url}/{path.name}", str(target), md5=md5sum(str(path)))
    assert not target.exists()
    assert "Nothing was downloaded or cached" in str(error.value) and "partial" not in str(error.value)
    assert not os.path.exists(str(target) + ".incomplete")


def test_a_partial_file_said_to_be_kept_is_kept(served_release, file_server, tmp_path, monkeypatch):
    path, _ = served_release
    monkeypatch.setattr(download, "RETRIES", 1)
    file_server.plan[path.name] = ["drop", 503, 503]
    target = tmp_path / "dl" / path.name
    with pytest.raises(DownloadError, match=r"failed 2 times.*The partial file .*\.incomplete \([\d,]+ bytes\) is "
                                            r"kept") as error:
        download.download(f"{file_server.base_url}/{path.name}", str(target), md5=md5sum(str(path)))
    kept = int(str(error.value).split(".incomplete (")[1].split(" bytes")[0].replace(",", ""))
    assert os.path.getsize(str(target) + ".incomplete") == kept > 0


@pytest.fixture
def no_waiting(monkeypatch):
    """Record the backoff sleeps instead of sleeping."""
    sleeps = []
    monkeypatch.setattr(download.time, "sleep", sleeps.append)
    return sleeps


def test_an_unresolvable_host_fails_at_once(tmp_path, monkeypatch, no_waiting):
    import socket

    real_getaddrinfo = socket.getaddrinfo
    lookups = []

    def getaddrinfo(host, *args, **kwargs):  # no DNS query leaves the machine: this name never resolves
        if host == "mirror.medmnist-plus.invalid":
            lookups.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with pytest.raises(DownloadError, match=r"'mirror\.medmnist-plus\.invalid' cannot be resolved.*offline.*data_dir"
                       ) as error:
        download.download("http://mirror.medmnist-plus.invalid/x/bloodmnist.npz", str(tmp_path / "bloodmnist.npz"))
    assert lookups == ["mirror.medmnist-plus.invalid"] and no_waiting == []  # one attempt, no backoff
    assert "Nothing was downloaded or cached" in str(error.value) and "partial" not in str(error.value)
    assert os.listdir(tmp_path) == ["bloodmnist.npz.lock"]


def test_a_refused_connection_fails_at_once(tmp_path, no_waiting):
    with pytest.raises(DownloadError, match=r"127\.0\.0\.1:9 refused the connection.*data_dir"):
        download.download("http://127.0.0.1:9/closed/bloodmnist.npz", str(tmp_path / "bloodmnist.npz"))
    assert no_waiting == []


def test_offline_mode_refuses_to_download(served_release, file_server, cache_dir, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    builder = MedMNISTPlus(config_name="pneumoniamnist-64", base_url=file_server.base_url, cache_dir=cache_dir)
    with pytest.raises(DownloadError, match=r"offline mode is on \(HF_HUB_OFFLINE or HF_DATASETS_OFFLINE\)"):
        builder.download_and_prepare(verification_mode="no_checks")
    assert file_server.requests == []


def test_official_url_is_used_without_a_mirror(monkeypatch):
    release = load_catalog()["organmnist3d"].files[64]
    monkeypatch.delenv("MEDMNIST_PLUS_BASE_URL")
    assert download.release_url(release) == "https://zenodo.org/records/10519652/files/organmnist3d_64.npz?download=1"
    monkeypatch.setenv("MEDMNIST_PLUS_BASE_URL", "http://127.0.0.1:1/mirror/")
    assert download.release_url(release) == "http://127.0.0.1:1/mirror/organmnist3d_64.npz"
    assert download.release_url(release, "http://127.0.0.1:2/x/") == "http://127.0.0.1:2/x/organmnist3d_64.npz"


def test_a_mismatch_found_after_the_build_ended_leaves_no_report_file(tmp_path, monkeypatch):
    """The MD5 thread reports a strict mismatch to num_proc workers in a file; once the build is over (close(), e.g.
    after it failed for another reason) a hash that ends later writes none, and one written before is removed."""
    import threading

    release = load_catalog()["breastmnist"].files[28]
    path = tmp_path / release.file
    path.write_bytes(b"not the official file")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the report goes: this test's own
    os.mkdir(tmp_path / "tmp")
    for ends_after_close in (True, False):
        hashing = threading.Event()
        monkeypatch.setattr(download, "md5sum", lambda p: (hashing.wait(30), md5sum(p))[1])
        memo = str(tmp_path / f"memo-{ends_after_close}")
        check = download.PendingChecksum(release, str(path), strict=True, memo_dir=memo, in_background=True)
        if not ends_after_close:
            hashing.set()
            while not check.done():
                threading.Event().wait(0.01)
            with pytest.raises(ChecksumError, match="is not the official"):
                download.raise_reported_mismatch(check.verdict_path)  # what a worker sees
        check.close()
        hashing.set()
        while not check.done():
            threading.Event().wait(0.01)
        assert not os.path.exists(check.verdict_path)
        assert not [name for name in os.listdir(os.path.dirname(check.verdict_path))
                    if name.startswith("medmnist-plus-md5-")]
        download.raise_reported_mismatch(check.verdict_path)  # no report: nothing raised
        with pytest.raises(ChecksumError, match="is not the official"):
            check.result()  # the parent still fails the build
