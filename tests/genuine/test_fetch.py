"""``python -m tests.genuine.fetch`` for real, against a mirror on 127.0.0.1 that serves the files of ../shared/data
under their registry paths: MD5s verified, the layout of ../shared/data reproduced, the rows files rebuilt equal to
../shared's array for array, and a corrupted or missing file refused with nothing left that looks complete.

The official release files the rows are copied from (pneumoniamnist.npz, breastmnist_64.npz, vesselmnist3d.npz)
are not in ../shared/data: the mirror serves stand-ins in the true format and the official shapes (synthetic rows,
with the genuine rows at their official indices), and the registry given to the fetch names their MD5s instead of
the official ones. Nothing here reaches outside this machine.
"""

import copy
import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from medmnist_plus_common.catalog import load_catalog
from medmnist_plus_common.release.writer import OFFICIAL_MEMBER_ORDER, write_npz_members

from tests.genuine import fetch as fetch_module
from tests.genuine.samples import FETCH_HINT, SHARED_DATA, needs, registry

REGISTRY = registry()
DOWNLOADED = [e for e in REGISTRY["files"] if "derived" not in e]
DERIVED = [e for e in REGISTRY["files"] if "derived" in e]
ROOT = Path(__file__).resolve().parents[2]

needs_all = needs(*(e["path"] for e in REGISTRY["files"]))


def md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def files_under(folder):
    """The data files of a folder laid out as ../shared/data (leaving out the READMEs and the hidden .official/)."""
    folder = Path(folder)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and p.suffix != ".md" and not any(part.startswith(".") for part in
                                                                     p.relative_to(folder).parts))


def stand_in_release(entry_file, out):
    """An official release file in the true format and official shapes: synthetic rows, and the genuine rows of
    every rows file copied from it at their official indices."""
    release = next(r for r in REGISTRY["releases"] if r["file"] == entry_file)
    facts = load_catalog()[release["dataset"]]
    shape = (release["size"],) * facts.dims + ((3,) if facts.channels == 3 else ())
    rng = np.random.default_rng(0)
    members = {}
    for split, prefix in (("train", "train"), ("validation", "val"), ("test", "test")):
        count = facts.split_counts[split]
        images = (np.zeros((count, *shape), np.uint8) if facts.dims == 3 else
                  rng.integers(0, 256, (count, *shape), dtype=np.uint8))
        labels = rng.integers(0, 2, (count, 1), dtype=np.uint8)
        for entry in DERIVED:
            if entry["derived"]["release"] != entry_file or entry["derived"]["format"] != "npz":
                continue
            with np.load(SHARED_DATA / entry["path"]) as rows:
                pixels = rows["volumes" if "volumes" in rows.files else "images"]
                for i, (s, index) in enumerate(zip(rows["split"], rows["index"])):
                    if str(s) == prefix:
                        images[index], labels[index] = pixels[i], rows["labels"][i]
        members[f"{prefix}_images"] = (images.shape, [images])
        members[f"{prefix}_labels"] = (labels.shape, [labels])
    write_npz_members(str(out), {name: members[name] for name in OFFICIAL_MEMBER_ORDER})
    return out


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stand-in-releases")
    return {r["file"]: stand_in_release(r["file"], folder / r["file"]) for r in REGISTRY["releases"]}


@pytest.fixture
def mirror(tmp_path, stand_ins):
    """A folder served on 127.0.0.1: every downloaded file of ../shared/data at its registry path (linked), the
    stand-in release files at their file names. Yields (folder, base_url, requests made)."""
    folder = tmp_path / "mirror"
    for entry in DOWNLOADED:
        (folder / entry["path"]).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(SHARED_DATA / entry["path"], folder / entry["path"])
    for name, path in stand_ins.items():
        os.symlink(path, folder / name)
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Handler, directory=str(folder)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}/genuine", requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def stand_in_registry(monkeypatch, stand_ins):
    """The registry, with the stand-in release files' MD5s in place of the official ones; fetch reads this one."""
    patched = copy.deepcopy(REGISTRY)
    for release in patched["releases"]:
        release["md5"] = md5(stand_ins[release["file"]])
    monkeypatch.setattr(fetch_module, "load_registry", lambda: patched)
    monkeypatch.setattr(fetch_module, "RETRIES", 0)
    return patched


def serve_under_prefix(folder):
    """The mirror serves URL/genuine/<path>: move its content under genuine/."""
    inner = folder / "genuine"
    inner.mkdir()
    for child in list(folder.iterdir()):
        if child != inner:
            shutil.move(str(child), str(inner / child.name))
    return inner


@needs_all
def test_the_registry_matches_the_shared_files():
    """Every data file of ../shared/data is registered, with its size and MD5, and nothing else is."""
    assert files_under(SHARED_DATA) == sorted(e["path"] for e in REGISTRY["files"])
    for entry in REGISTRY["files"]:
        path = SHARED_DATA / entry["path"]
        assert (path.stat().st_size, md5(path)) == (entry["bytes"], entry["md5"]), entry["path"]
        if "derived" in entry and entry["derived"]["format"] == "npz":
            assert fetch_module.rows_file_is_right(entry, path), entry["path"]
    catalog = load_catalog()
    for release in REGISTRY["releases"]:  # the catalog's MD5 and URL of each official file
        official = catalog[release["dataset"]].files[release["size"]]
        assert (official.file, official.md5, official.url) == (release["file"], release["md5"], release["url"])
    if (SHARED_DATA / "SOURCES.md").is_file():  # ../shared/data's own list (a fetched cache has none)
        sources = (SHARED_DATA / "SOURCES.md").read_text()
        for entry in DOWNLOADED:
            if "repository" in entry["source"] and "ham10000" not in entry["path"]:  # listed there without MD5s
                assert entry["source"]["path"] in sources and entry["md5"] in sources, entry["path"]


@needs_all
def test_fetch_from_a_loopback_mirror_reproduces_the_shared_layout(tmp_path, mirror, stand_in_registry, capsys):
    folder, base_url, requests = mirror
    serve_under_prefix(folder)
    dest = tmp_path / "cache"
    assert fetch_module.main(["--dest", str(dest), "--base-url", base_url]) == 0
    out = capsys.readouterr().out
    assert files_under(dest) == files_under(SHARED_DATA)
    for entry in DOWNLOADED:  # byte for byte: the MD5 checked by pooch, and again here
        assert md5(dest / entry["path"]) == entry["md5"] == md5(SHARED_DATA / entry["path"])
        assert f"fetched {entry['path']} ({entry['bytes']:,} bytes, MD5 {entry['md5']} verified)" in out
    for entry in DERIVED:  # rebuilt from the (stand-in) official file: the same arrays as ../shared's copy
        mine, theirs = dest / entry["path"], SHARED_DATA / entry["path"]
        if entry["derived"]["format"] == "csv":
            assert mine.read_bytes() == theirs.read_bytes()
        else:
            with np.load(mine) as a, np.load(theirs) as b:
                assert a.files == b.files
                for name in a.files:
                    assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape
                    assert a[name].tobytes() == b[name].tobytes(), (entry["path"], name)
        assert f"rebuilt {entry['path']} from {entry['derived']['release']}" in out
    assert sorted(p.name for p in (dest / ".official").iterdir()) == sorted(r["file"] for r in REGISTRY["releases"])
    assert not [p for p in dest.rglob("*") if "tmp" in p.name or p.name.endswith(".partial")]
    assert f"{len(DOWNLOADED) + 3} downloaded" in out and f"{len(DERIVED)} rebuilt" in out
    assert all(path.startswith("/genuine/") for path in requests if path)

    # A second run downloads nothing and keeps everything; a damaged file in place is replaced.
    served = len(requests)
    assert fetch_module.main(["--dest", str(dest), "--base-url", base_url]) == 0
    assert len(requests) == served
    assert f"{len(REGISTRY['files']) + 3} already in place" in capsys.readouterr().out
    damaged = dest / "raw/busi/benign/benign (15).png"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    rows = dest / "raw/kermany/pneumoniamnist_28_rows.npz"
    with np.load(rows) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["images"][0, 0, 0] ^= 1
    np.savez_compressed(rows, **arrays)
    assert fetch_module.main(["--dest", str(dest), "--base-url", base_url]) == 0
    out = capsys.readouterr().out
    assert "removed raw/busi/benign/benign (15).png: its MD5 was not the registered one" in out
    assert "removed raw/kermany/pneumoniamnist_28_rows.npz: its rows were not the registered ones" in out
    assert md5(damaged) == md5(SHARED_DATA / "raw/busi/benign/benign (15).png")
    assert fetch_module.rows_file_is_right(DERIVED[0], dest / DERIVED[0]["path"])


@needs_all
def test_a_corrupted_or_missing_file_is_refused_and_leaves_nothing(tmp_path, mirror, stand_in_registry, capsys):
    folder, base_url, _ = mirror
    folder = serve_under_prefix(folder)
    bad_png = "raw/busi/malignant/malignant (12).png"
    data = bytearray((SHARED_DATA / bad_png).read_bytes())
    data[5000] ^= 0xFF
    (folder / bad_png).unlink()
    (folder / bad_png).write_bytes(bytes(data))
    bad_release = "vesselmnist3d.npz"  # a corrupted official file: its rows file cannot be rebuilt
    data = bytearray((folder / bad_release).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / bad_release).unlink()
    (folder / bad_release).write_bytes(bytes(data))
    (folder / "raw/kermany/train/NORMAL/Normal-Sample-2.jpeg").unlink()  # a 404
    dest = tmp_path / "cache"
    assert fetch_module.main(["--dest", str(dest), "--base-url", base_url]) == 1
    captured = capsys.readouterr()
    assert f"FAILED {bad_png}: the file served at {base_url}/raw/busi/malignant/malignant%20%2812%29.png is not " \
           "the registered one (expected MD5 ea14f818e6d3ba2f6e8b285f2e1ce16f" in captured.err
    assert "it was deleted, nothing was kept" in captured.err
    assert "FAILED .official/vesselmnist3d.npz: the file served at" in captured.err
    assert "FAILED raw/intra/vesselmnist3d_28_rows.npz: not rebuilt: the official vesselmnist3d.npz it is copied " \
           "from could not be fetched" in captured.err
    assert "FAILED raw/kermany/train/NORMAL/Normal-Sample-2.jpeg: downloading" in captured.err and "404" in captured.err
    assert "3 file(s) failed" not in captured.err and "4 file(s) failed" in captured.err
    failed = {bad_png, ".official/vesselmnist3d.npz", "raw/intra/vesselmnist3d_28_rows.npz",
              "raw/kermany/train/NORMAL/Normal-Sample-2.jpeg"}
    for name in failed:
        assert not (dest / name).exists(), name
    assert not (dest / "raw/kermany/train/NORMAL").exists()  # no empty folder made for it alone
    # nothing else in the cache but complete, verified files (no temporary or partial file)
    leftovers = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}
    assert leftovers == set(files_under(SHARED_DATA)) - failed | {
        f".official/{r['file']}" for r in REGISTRY["releases"]} - failed
    for entry in REGISTRY["files"]:
        if entry["path"] not in failed and "derived" not in entry:
            assert md5(dest / entry["path"]) == entry["md5"]


@pytest.mark.slow
@needs_all
def test_the_command_with_the_real_registry_refuses_the_stand_in_releases(tmp_path, mirror):
    """``python -m tests.genuine.fetch`` as a user runs it, the mirror given by its environment variable: the genuine
    samples pass their MD5s; the stand-in release files do not pass the official MD5s, so the rows files copied from
    them are not made (the manifest, copied from the genuine breastmnist.npz, is)."""
    folder, base_url, _ = mirror
    serve_under_prefix(folder)
    dest = tmp_path / "cache"
    env = dict(os.environ, MEDMNIST_PLUS_GENUINE_BASE_URL=base_url, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "tests.genuine.fetch", "--dest", str(dest), "--retries", "0"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    for release in REGISTRY["releases"]:
        assert f"FAILED .official/{release['file']}: the file served at {base_url}/{release['file']} is not the " \
               f"registered one (expected MD5 {release['md5']}" in result.stderr
    made = set(files_under(dest))
    assert made == {e["path"] for e in DOWNLOADED} | {"raw/busi/breastmnist_rows.csv"}
    assert "rebuilt raw/busi/breastmnist_rows.csv from breastmnist.npz" in result.stdout
    assert not (dest / ".official").exists() or not list((dest / ".official").iterdir())


def test_the_hint_says_how_to_fetch():
    assert "python -m tests.genuine.fetch" in FETCH_HINT and "MB" in FETCH_HINT
