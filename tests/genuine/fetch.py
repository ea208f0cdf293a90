"""Fetch the genuine files of ``samples.json`` into a folder laid out as ``../shared/data``, MD5-checked.

    python -m tests.genuine.fetch [--dest DIR] [--base-url URL]

Each registered file is downloaded with pooch from its public source (Zenodo for the official release files, a
pinned commit on raw.githubusercontent.com for the raw sources) into a temporary file beside its place, and moved
into place only once its MD5 matched: a failed or wrong download leaves nothing that looks complete (a file already
in place with a wrong MD5 is deleted before it is fetched again). The ``*_rows`` files are not downloaded: they are
rebuilt from the official release file they were copied from (downloaded into ``DIR/.official``, MD5-checked), and
the rebuilt arrays are checked against the MD5s the registry holds for them before the file is moved into place.

``--base-url URL`` (or ``$MEDMNIST_PLUS_GENUINE_BASE_URL``) fetches everything from a mirror instead: a file from
``URL/<its registry path>``, an official release file from ``URL/<its file name>`` (URL-encoded). Files already in
place with the right MD5 are kept, so a second run downloads nothing.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from tests.genuine.samples import SHARED, cache_folder, registry as load_registry

BASE_URL_ENV = "MEDMNIST_PLUS_GENUINE_BASE_URL"
RELEASES_FOLDER = ".official"  # official release files needed only to rebuild the rows files
RETRIES = 2  # pooch's retries after a failed download (a network fault, or an MD5 mismatch)
TIMEOUT_SECONDS = 60


class FetchError(Exception):
    """One file could not be fetched or rebuilt; nothing was left in its place."""


@dataclass
class Report:
    dest: Path
    fetched: list = field(default_factory=list)  # (path, bytes, url)
    present: list = field(default_factory=list)  # paths already in place with the right MD5
    rebuilt: list = field(default_factory=list)  # (path, release)
    failed: list = field(default_factory=list)  # (path, message)

    @property
    def ok(self) -> bool:
        return not self.failed


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def array_digest(array: np.ndarray) -> dict:
    """What the registry records of each array of a rows file: dtype, shape and the MD5 of its bytes."""
    array = np.ascontiguousarray(array)
    return {"dtype": array.dtype.str, "shape": list(array.shape), "md5": hashlib.md5(array.tobytes()).hexdigest()}


def mirror_url(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/{urllib.parse.quote(name)}"


def _pooch(folder: Path, entries: dict, urls: dict, retries: int):
    import pooch

    pooch.get_logger().setLevel("WARNING")  # this module says what it did, once per file
    return pooch.create(path=str(folder), base_url="", registry={name: f"md5:{md5}" for name, md5 in entries.items()},
                        urls=urls, retry_if_failed=retries)


def _download(pup, name: str, url: str, target: Path, md5: str, report: Report, label: str) -> bool:
    """Fetch one file with pooch; True if it is in place with its MD5. A wrong file in place is removed first."""
    import pooch
    import requests

    if target.is_file():
        if md5sum(target) == md5:
            report.present.append(label)
            return True
        target.unlink()
        print(f"removed {label}: its MD5 was not the registered one; fetching it again")
    created = [p for p in reversed(target.parents) if not p.exists()]
    try:
        pup.fetch(name, downloader=pooch.HTTPDownloader(timeout=TIMEOUT_SECONDS, progressbar=False))
    except (ValueError, requests.exceptions.RequestException, OSError) as error:
        for folder in reversed(created):  # folders made for it alone, now empty
            try:
                folder.rmdir()
            except OSError:
                pass
        if isinstance(error, ValueError) and "hash" in str(error).lower():
            why = (f"the file served at {url} is not the registered one (expected MD5 {md5}: {error}); "
                   "it was deleted, nothing was kept. The source changed, or the mirror serves a different file")
        else:
            why = f"downloading {url} failed ({type(error).__name__}: {error}); nothing was kept"
        report.failed.append((label, why))
        print(f"FAILED {label}: {why}", file=sys.stderr)
        return False
    size = target.stat().st_size
    report.fetched.append((label, size, url))
    print(f"fetched {label} ({size:,} bytes, MD5 {md5} verified) from {url}")
    return True


def rebuild_rows(entry: dict, release: Path) -> bytes:
    """The bytes of a rows file rebuilt from the official release file it was copied from (checked, see below)."""
    derived = entry["derived"]
    rows = derived["rows"]
    with np.load(release) as official:
        def member(split, kind):
            return official[f"{split}_{kind}"]

        images = {split: member(split, "images") for split in {r["split"] for r in rows}}
        labels = {split: member(split, "labels") for split in images}
        picked_images = np.stack([images[r["split"]][r["index"]] for r in rows])
        picked_labels = np.stack([labels[r["split"]][r["index"]] for r in rows])
    if derived["format"] == "csv":
        text = io.StringIO()
        writer = csv.writer(text)  # CRLF line ends, as the registered file
        writer.writerow(derived["columns"])
        for row, label in zip(rows, picked_labels):
            writer.writerow([row["split"], row["index"], row["record"], int(label[0])])
        data = text.getvalue().encode()
        if hashlib.md5(data).hexdigest() != entry["md5"]:
            raise FetchError(f"the manifest rebuilt from {release.name} is not the registered one (MD5 "
                             f"{hashlib.md5(data).hexdigest()}, expected {entry['md5']})")
        return data
    want = derived["arrays"]
    arrays = {}
    for name in derived["members"]:
        if name in ("split", "record"):
            arrays[name] = np.array([r[name] for r in rows], dtype=want[name]["dtype"])
        elif name == "index":
            arrays[name] = np.array([r["index"] for r in rows], dtype=want[name]["dtype"])
        elif name == "labels":
            arrays[name] = picked_labels
        else:  # images / volumes
            arrays[name] = picked_images
    wrong = [name for name in derived["members"] if array_digest(arrays[name]) != want[name]]
    if wrong:
        raise FetchError(f"the rows rebuilt from {release.name} differ from the registered ones in "
                         f"{', '.join(wrong)} (dtype, shape or MD5 of the bytes)")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def rows_file_is_right(entry: dict, path: Path) -> bool:
    derived = entry["derived"]
    if derived["format"] == "csv":
        return md5sum(path) == entry["md5"]
    try:
        with np.load(path) as z:
            return list(z.files) == derived["members"] and all(
                array_digest(z[name]) == derived["arrays"][name] for name in derived["members"])
    except Exception:  # unreadable: not right
        return False


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def fetch(dest: Optional[Path] = None, base_url: Optional[str] = None, registry: Optional[dict] = None,
          retries: Optional[int] = None) -> Report:
    """Fetch every file of the registry into ``dest`` (default: the cache folder) and rebuild the rows files."""
    dest = Path(dest if dest is not None else cache_folder()).expanduser().absolute()
    base_url = base_url or os.environ.get(BASE_URL_ENV) or None
    registry = registry if registry is not None else load_registry()
    retries = RETRIES if retries is None else retries
    report = Report(dest)
    downloaded = [e for e in registry["files"] if "derived" not in e]
    derived = [e for e in registry["files"] if "derived" in e]
    by_path = {e["path"]: e for e in downloaded}
    print(f"genuine files into {dest}" + (f" from the mirror {base_url}" if base_url else ""))

    urls = {e["path"]: mirror_url(base_url, e["path"]) if base_url else e["source"]["url"] for e in downloaded}
    pup = _pooch(dest, {e["path"]: e["md5"] for e in downloaded}, urls, retries)
    for entry in downloaded:
        _download(pup, entry["path"], urls[entry["path"]], dest / entry["path"], entry["md5"], report, entry["path"])

    # The official release files the rows files are copied from: a registered file when it is one (breastmnist.npz),
    # else downloaded into .official/.
    releases = {r["file"]: r for r in registry.get("releases", [])}
    needed = {e["derived"]["release"] for e in derived} - set(by_path)
    release_urls = {f: mirror_url(base_url, f) if base_url else releases[f]["url"] for f in needed}
    release_pup = _pooch(dest / RELEASES_FOLDER, {f: releases[f]["md5"] for f in needed}, release_urls,
                         retries)
    available = {}
    for file in sorted(needed):
        target = dest / RELEASES_FOLDER / file
        if _download(release_pup, file, release_urls[file], target, releases[file]["md5"], report,
                     f"{RELEASES_FOLDER}/{file}"):
            available[file] = target
    for path in by_path:
        if (dest / path).is_file() and path not in dict(report.failed):
            available[path] = dest / path

    for entry in derived:
        path, release = dest / entry["path"], entry["derived"]["release"]
        if path.is_file():
            if rows_file_is_right(entry, path):
                report.present.append(entry["path"])
                continue
            path.unlink()
            print(f"removed {entry['path']}: its rows were not the registered ones; rebuilding it")
        if release not in available:
            why = f"not rebuilt: the official {release} it is copied from could not be fetched"
            report.failed.append((entry["path"], why))
            print(f"FAILED {entry['path']}: {why}", file=sys.stderr)
            continue
        try:
            _write_atomically(path, rebuild_rows(entry, available[release]))
        except (FetchError, KeyError, IndexError, ValueError, OSError) as error:
            why = f"not rebuilt from {release}: {error}"
            report.failed.append((entry["path"], why))
            print(f"FAILED {entry['path']}: {why}", file=sys.stderr)
            continue
        rows = ", ".join(f"{r['split']} {r['index']}" for r in entry["derived"]["rows"])
        report.rebuilt.append((entry["path"], release))
        checked = "MD5" if entry["derived"]["format"] == "csv" else "arrays"
        print(f"rebuilt {entry['path']} from {release} (rows {rows}; {checked} verified)")

    total = sum(size for _, size, _ in report.fetched)
    print(f"{len(report.fetched)} downloaded ({total / 1e6:.1f} MB), {len(report.rebuilt)} rebuilt, "
          f"{len(report.present)} already in place, {len(report.failed)} failed")
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.genuine.fetch",
        description="Fetch the genuine files of tests/genuine/samples.json (MD5-checked) for the genuine-data tests.")
    parser.add_argument("--dest", type=Path, default=None,
                        help=f"where to put them (default: {cache_folder()}, or $MEDMNIST_PLUS_GENUINE_DATA)")
    parser.add_argument("--base-url", default=None,
                        help=f"a mirror serving each file at URL/<registry path> (or ${BASE_URL_ENV})")
    parser.add_argument("--retries", type=int, default=RETRIES,
                        help=f"downloads tried again after a failure, 1 s, 2 s ... apart (default {RETRIES})")
    args = parser.parse_args(argv)
    try:
        import pooch  # noqa: F401
    except ImportError:
        print("error: the fetch needs pooch: pip install pooch (the test extra installs it: "
              "pip install -e '.[test]')", file=sys.stderr)
        return 2
    report = fetch(args.dest, args.base_url, retries=args.retries)
    if report.failed:
        print(f"{len(report.failed)} file(s) failed (above); what failed left nothing in place. Run again to retry.",
              file=sys.stderr)
        return 1
    if args.dest is None and SHARED.is_dir():
        print(f"note: {SHARED} exists, and the tests look there first")
    elif args.dest is not None and args.dest.expanduser().absolute() != cache_folder().absolute():
        print(f"note: the tests look in {cache_folder()}; set MEDMNIST_PLUS_GENUINE_DATA={args.dest} to use these")
    return 0


if __name__ == "__main__":
    sys.exit(main())
