"""Getting official release files: a local folder, the official package's ``~/.medmnist``, or a download.

Downloads resume from where they stopped (HTTP Range), retry transient failures (Zenodo answers 429 and 503
under load; ``Retry-After`` is honoured), and land in the cache only after their MD5 matched: a file that fails
the MD5 is deleted, never used, and the error says what to do.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import Future
from http.client import HTTPException
from typing import Callable, Optional

from filelock import FileLock

from ..catalog import ReleaseFile
from ..errors import ChecksumError, DownloadError, ReleaseFileError

logger = logging.getLogger(__name__)

BASE_URL_ENV = "MEDMNIST_PLUS_BASE_URL"  # a mirror serving the release files by name
MEDMNIST_ROOT_ENV = "MEDMNIST_PLUS_MEDMNIST_ROOT"  # where the official package keeps files, if not ~/.medmnist
TRANSIENT_HTTP_STATUS = {408, 425, 429, 500, 502, 503, 504}
RETRIES = 6
BACKOFF_SECONDS = 1.0  # doubled after each failed attempt, at most MAX_WAIT_SECONDS
MAX_WAIT_SECONDS = 60.0
TIMEOUT_SECONDS = 60.0
BLOCK_BYTES = 2**20
# Why a local file's MD5 / row count mismatch is only a warning: builds with verification_mode="no_checks", and
# streaming (it has no verification_mode and writes no cache). Said so, since a streaming user set nothing.
NOT_STRICT = ("a build with verification_mode='no_checks', streaming, or a tool reading the file (montage, audit), "
              "which warn instead of failing; downloads are always MD5-checked")
_EXPLAINED = []


def anyway(what: str) -> str:
    """`` <what> anyway (why).``: why a mismatch is only a warning, said in full once per process, briefly after."""
    why = "checks off: no_checks, streaming or a tool reading the file" if _EXPLAINED else NOT_STRICT
    _EXPLAINED.append(True)
    return f" {what} anyway ({why})."


def md5sum(path: str) -> str:
    digest = hashlib.md5()
    # Unbuffered: no BufferedReader lock is held while reading, should a build fork its workers meanwhile (see
    # PendingChecksum). hashlib releases the GIL while it hashes these large blocks.
    with open(path, "rb", buffering=0) as f:
        for block in iter(lambda: f.read(BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def file_identity(path: str) -> Optional[str]:
    """A local file's identity: its real path, size and mtime (how the path is spelled does not matter); None if
    it is not a file. Keys what is remembered about the file (cache entries, its deflate index)."""
    path = os.path.realpath(os.path.expanduser(str(path)))
    if not os.path.isfile(path):
        return None
    stat = os.stat(path)
    return f"{path}:{stat.st_size}-{stat.st_mtime_ns}"


def downloads_dir(cache_dir: Optional[str] = None) -> str:
    """The datasets download cache of ``cache_dir`` (as a builder given that cache_dir uses), else the default one."""
    if cache_dir:
        return os.path.join(os.path.expanduser(str(cache_dir)), "downloads")
    import datasets  # only when needed: the catalog commands never import it

    return str(datasets.config.DOWNLOADED_DATASETS_PATH)


def index_dir(downloads: str) -> str:
    """Where the deflate access points of release files are kept (see :mod:`.deflate_index`)."""
    return os.path.join(downloads, "medmnist_plus", "index")


def medmnist_root() -> str:
    """The official ``medmnist`` package's default download folder, whose files are reused after an MD5 check."""
    return os.environ.get(MEDMNIST_ROOT_ENV) or os.path.join(os.path.expanduser("~"), ".medmnist")


def release_url(release: ReleaseFile, base_url: Optional[str] = None) -> str:
    base_url = base_url or os.environ.get(BASE_URL_ENV)
    if base_url:
        return f"{base_url.rstrip('/')}/{release.file}"
    return release.url


def locate_release(
    release: ReleaseFile,
    *,
    cache_dir: str,
    data_dir: Optional[str] = None,
    base_url: Optional[str] = None,
    force_download: bool = False,
    strict: bool = True,
    offline: bool = False,
    after_download: Optional[Callable[[str], None]] = None,
) -> str:
    """Return the path of a verified copy of ``release``, downloading it if needed.

    Order: ``data_dir`` (when given, the only place looked at), ``~/.medmnist`` (the official package's
    folder, used when its MD5 matches), this package's download cache, then the network. ``after_download`` is
    called with the path of a file just downloaded and verified (to index it while it is fresh in the page cache).
    """
    memo = md5_memo_dir(cache_dir)
    if data_dir is not None:
        path = release_in_folder(release, data_dir)
        PendingChecksum(release, path, strict, memo).result()
        return path
    official_copy = os.path.join(medmnist_root(), release.file)
    if not force_download and os.path.isfile(official_copy):
        if remembered_md5(official_copy, memo) == release.md5:
            logger.info("Using %s (MD5 verified)", official_copy)
            return official_copy
        logger.warning("Ignoring %s: its MD5 is not the official one (re-download it or delete it).", official_copy)
    # Files are keyed by their MD5, so a corrected upstream file never collides with an old one.
    target = os.path.join(cache_dir, "medmnist_plus", release.md5, release.file)
    if os.path.isfile(target) and not force_download:
        return target
    url = release_url(release, base_url)
    if offline:
        raise DownloadError(
            f"{release.file} is not in the cache ({target}) and offline mode is on (HF_HUB_OFFLINE or "
            f"HF_DATASETS_OFFLINE), so it cannot be downloaded from {url}. Unset it, or pass "
            f"data_dir=<folder with {release.file}>."
        )
    download(url, target, md5=release.md5, force=force_download)
    if after_download is not None:
        after_download(target)
    return target


def md5_memo_dir(cache_dir: str) -> str:
    """Where the MD5s of local files are remembered (see :func:`remembered_md5`)."""
    return os.path.join(cache_dir, "medmnist_plus", "md5")


def remembered_md5(path: str, memo_dir: str) -> str:
    """The MD5 of a local file, hashed once per identity (real path, size, mtime): a file used again unchanged is
    not read again (the quick check of rsync and git). Kept in ``memo_dir``."""
    identity = file_identity(path)
    known = _memo_read(memo_dir, identity)
    return known if known is not None else _memo_write(memo_dir, identity, md5sum(path))


def _memo_path(memo_dir: str, identity: Optional[str]) -> str:
    return os.path.join(memo_dir, hashlib.sha1(str(identity).encode()).hexdigest()[:24] + ".json")


def _memo_read(memo_dir: str, identity: Optional[str]) -> Optional[str]:
    try:
        with open(_memo_path(memo_dir, identity), encoding="utf-8") as f:
            entry = json.load(f)
        if entry.get("identity") == identity:
            return entry["md5"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    return None


def _memo_write(memo_dir: str, identity: Optional[str], digest: str) -> str:
    partial = None
    try:
        os.makedirs(memo_dir, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=memo_dir, suffix=".partial")
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            json.dump({"identity": identity, "md5": digest}, f)
        os.replace(partial, _memo_path(memo_dir, identity))
    except OSError:  # a read-only cache only costs time
        if partial and os.path.exists(partial):
            os.remove(partial)
    return digest


class PendingChecksum:
    """The MD5 check of a local release file. :meth:`result` raises ChecksumError (strict) or warns, once (not
    strict), if the file is not the official one.

    ``in_background``: a file whose MD5 is not remembered yet is hashed by a thread while a build reads its rows
    (about 2 s per GiB, which a first build otherwise waited for on one core), and the build asks :meth:`done` and
    :meth:`result` as it goes. Otherwise, and for a remembered MD5 (a stat), the check is done at once.

    ``num_proc`` workers cannot ask the thread: when a strict check fails, the thread also writes its message to
    :attr:`verdict_path`, which the workers poll (:func:`raise_reported_mismatch`), so they stop within a few rows
    instead of building the whole split first. :meth:`close` removes it.
    """

    def __init__(self, release: ReleaseFile, path: str, strict: bool, memo_dir: str, in_background: bool = False):
        self.release, self.path, self.strict, self._memo_dir = release, path, strict, memo_dir
        self._identity = file_identity(path)
        known = _memo_read(memo_dir, self._identity)
        self._remember, self._said = known is None, False
        self.verdict_path = os.path.join(tempfile.gettempdir(),
                                         f"medmnist-plus-md5-{os.getpid()}-{id(self):x}-{time.monotonic_ns()}.mismatch")
        self._digest: Future = Future()
        self._verdict_lock, self._closed = threading.Lock(), False  # no verdict file is written after close()
        if known is None and in_background:
            # A daemon thread (a ThreadPoolExecutor's would be waited for at exit, even after a failed build).
            threading.Thread(target=self._hash, name=f"md5 of {release.file}", daemon=True).start()
        else:
            self._digest.set_result(known if known is not None else md5sum(path))

    def _hash(self) -> None:
        # Only reads, hashes and (on a strict mismatch) writes the verdict file: no logging and no memo file here
        # (result() writes it), so that nothing a num_proc worker forked meanwhile uses is held by this thread.
        try:
            actual = md5sum(self.path)
        except BaseException as err:  # noqa: BLE001 (handed to result(), raised in the thread that asks)
            self._digest.set_exception(err)
            return
        try:
            if self.strict and actual != self.release.md5:
                self._report_to_workers(self._strict_message(actual))
        finally:
            self._digest.set_result(actual)  # whatever happened to the report, result() never waits forever

    def _report_to_workers(self, message: str) -> None:
        """Write ``message`` to :attr:`verdict_path` (a private temporary file renamed into place: a worker never
        reads half of it), unless the build is already over."""
        with self._verdict_lock:
            if self._closed:
                return
            try:
                handle, temporary = tempfile.mkstemp(prefix="medmnist-plus-md5-", suffix=".tmp",
                                                     dir=os.path.dirname(self.verdict_path))
                with os.fdopen(handle, "w", encoding="utf-8") as f:
                    f.write(message)
                os.replace(temporary, self.verdict_path)
            except OSError:
                pass  # the temporary folder is not writable: workers are not told; the parent fails after the split

    def done(self) -> bool:
        return self._digest.done()

    def result(self) -> None:
        """Wait for the hash; then ChecksumError (strict) or a warning (once) for a file that is not the official one."""
        actual = self._digest.result()
        if not self._said:
            self._said = True
            if self._remember:
                _memo_write(self._memo_dir, self._identity, actual)
            if actual != self.release.md5 and not self.strict:
                logger.warning(self._mismatch(actual) + anyway("Using it"))
        if actual != self.release.md5 and self.strict:
            raise ChecksumError(self._strict_message(actual))

    def close(self) -> None:
        """Remove the verdict file, if a mismatch wrote one, and write none after (the build is over, however it
        ended; the hash may still be running)."""
        with self._verdict_lock:
            self._closed = True
            try:
                os.remove(self.verdict_path)
            except OSError:  # none written (or not removable): nothing to hide the build's own error with
                pass

    def _mismatch(self, actual: str) -> str:
        return f"{self.path}: MD5 {actual} is not the official {self.release.md5} of {self.release.file}."

    def _strict_message(self, actual: str) -> str:
        return (self._mismatch(actual) + " The file is damaged or not the official release: replace it with the "
                "official file. If it is a subset or benchmark file on purpose, build with "
                "verification_mode='no_checks' (CLI: --no-checks).")


def raise_reported_mismatch(verdict_path: str) -> None:
    """In a ``num_proc`` worker: the ChecksumError its parent's MD5 thread found (:class:`PendingChecksum`), if any."""
    try:
        with open(verdict_path, encoding="utf-8") as f:
            message = f.read()
    except FileNotFoundError:
        return
    raise ChecksumError(message)


def release_in_folder(release: ReleaseFile, data_dir: str) -> str:
    """The path of ``release`` in the folder ``data_dir``; a clear error if it is not there (its MD5 is not checked)."""
    data_dir = os.path.expanduser(str(data_dir))
    path = os.path.join(data_dir, release.file)
    if os.path.isfile(data_dir):
        named = (" It is that very file: pass the folder holding it"
                 if os.path.basename(data_dir) == release.file else f" data_dir names the folder that holds {release.file}")
        raise ReleaseFileError(
            f"{data_dir}: is a file, not a folder.{named} (data_dir={os.path.dirname(data_dir) or '.'!r}; CLI: "
            f"--data-dir {os.path.dirname(data_dir) or '.'}).")
    if not os.path.isfile(path):
        if not os.path.isdir(data_dir):
            raise ReleaseFileError(
                f"{data_dir}: no such folder. Pass the folder holding the official file {release.file} "
                f"(https://zenodo.org/records/10519652), or leave out data_dir to download it.")
        present = sorted(f for f in os.listdir(data_dir) if f.endswith(".npz"))
        close = difflib.get_close_matches(release.file, present, n=1, cutoff=0.6)
        rename = f" {close[0]} looks like it: rename it to {release.file}, the official name." if close else ""
        raise ReleaseFileError(
            f"{path}: not found (it has {present}).{rename} Put the official file {release.file} there "
            f"(https://zenodo.org/records/10519652), or leave out data_dir to download it."
        )
    return path


def download(url: str, target: str, md5: Optional[str] = None, force: bool = False) -> str:
    """Download ``url`` to ``target``: resumable, retried, MD5-checked, and atomic (``target`` appears only when done)."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    partial = target + ".incomplete"
    with FileLock(target + ".lock"):
        if os.path.isfile(target) and not force:
            return target  # another process finished it while we waited
        if force and os.path.exists(partial):
            os.remove(partial)
        _fetch_with_retries(url, partial)
        if md5 is not None:
            actual = md5sum(partial)
            if actual != md5:
                os.remove(partial)  # never keep or resume from a file with the wrong content
                raise ChecksumError(
                    f"Downloaded {url} but its MD5 is {actual}, not the published {md5}; the file was deleted "
                    "and nothing was cached. Try again later; if it persists, the server or mirror serves a "
                    f"different file: download it by hand from https://zenodo.org/records/10519652 and pass "
                    "data_dir=<its folder>."
                )
        os.replace(partial, target)
    return target


def _fetch_with_retries(url: str, partial: str) -> None:
    wait = BACKOFF_SECONDS
    for attempt in range(1, RETRIES + 2):
        try:
            _fetch_once(url, partial)
            return
        except urllib.error.HTTPError as err:
            if err.code not in TRANSIENT_HTTP_STATUS:
                raise DownloadError(
                    f"Downloading {url} failed: HTTP {err.code} {err.reason}. "
                    + ("The file is not at that address: check the base URL / mirror. " if err.code == 404 else "")
                    + _what_was_kept(partial)
                ) from err
            failure = f"HTTP {err.code}"
            retry_after = _retry_after_seconds(err.headers.get("Retry-After"))
        except (urllib.error.URLError, HTTPException, ConnectionError, TimeoutError) as err:
            permanent = _permanent_failure(url, err)
            if permanent is not None:
                raise DownloadError(permanent + " " + _what_was_kept(partial)) from err
            failure, retry_after = f"{type(err).__name__}: {err}", None
        if attempt > RETRIES:
            raise DownloadError(
                f"Downloading {url} failed {attempt} times (last: {failure}). {_what_was_kept(partial)} Check your "
                "connection and try again later, or download the file by hand and pass data_dir=<its folder>."
            )
        delay = min(MAX_WAIT_SECONDS, retry_after if retry_after is not None else wait)
        logger.warning("Download of %s failed (%s); retry %d/%d in %.0fs", url, failure, attempt, RETRIES, delay)
        time.sleep(delay)
        wait = min(MAX_WAIT_SECONDS, wait * 2)


def _permanent_failure(url: str, err: BaseException) -> Optional[str]:
    """What is wrong, for failures that waiting cannot fix (no retries); None for those worth retrying."""
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    host = urllib.parse.urlsplit(url).netloc
    if isinstance(reason, socket.gaierror):
        return (f"Downloading {url} failed: the host name {host.rsplit(':', 1)[0]!r} cannot be resolved ({reason}). "
                "You are offline, or the name (a --base-url / MEDMNIST_PLUS_BASE_URL mirror?) is wrong. "
                "Connect to the network and try again, or pass data_dir=<folder with the file>.")
    if isinstance(reason, ConnectionRefusedError):
        return (f"Downloading {url} failed: {host} refused the connection (no server listens there). Check the "
                "address (a --base-url / MEDMNIST_PLUS_BASE_URL mirror?), or pass data_dir=<folder with the file>.")
    return None


def _what_was_kept(partial: str) -> str:
    """The truth about the partial file: kept for resuming, or nothing at all."""
    if os.path.isfile(partial) and os.path.getsize(partial) > 0:
        return (f"The partial file {partial} ({os.path.getsize(partial):,} bytes) is kept and the next attempt "
                "resumes from it.")
    if os.path.isfile(partial):
        os.remove(partial)
    return "Nothing was downloaded or cached."


def _retry_after_seconds(value: Optional[str]) -> Optional[float]:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to the backoff


def _fetch_once(url: str, partial: str) -> None:
    from datasets.utils import tqdm as hf_tqdm

    offset = os.path.getsize(partial) if os.path.exists(partial) else 0
    headers = {"User-Agent": "medmnist-plus"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left to fetch: the MD5 check decides
            return
        raise
    with response:
        if offset and response.status != 206:
            offset = 0  # the server ignored the Range header: start over
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with open(partial, "ab" if offset else "wb") as out, hf_tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, desc=os.path.basename(partial[:-11])
        ) as bar:
            received = 0
            for block in iter(lambda: response.read(BLOCK_BYTES), b""):
                out.write(block)
                received += len(block)
                bar.update(len(block))
        if length is not None and received < int(length):
            raise ConnectionError(f"connection closed after {received} of {length} bytes")
