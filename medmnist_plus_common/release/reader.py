"""Reading official MedMNIST+ release files (``.npz``) row by row, with bounded memory.

``np.load(path, mmap_mode="r")`` on an ``.npz`` still inflates a whole member into RAM (12.6 GiB for the
PathMNIST-224 train images). Here a member is read as a stream instead: its ``.npy`` header is parsed, and rows
are inflated in chunks of a few MiB (with ISA-L, or from an access point of :mod:`.deflate_index`; stored members
pass through :mod:`zipfile`). Before a single row is yielded,
:func:`check_release` compares every member's dtype, shape, channel layout and row count with the catalog.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import tokenize
import zipfile
import zlib
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from . import deflate_index
from ..catalog import RELEASE_SPLIT_PREFIX, SPLITS, DatasetFacts
from .download import anyway, file_identity
from ..errors import ReleaseFileError

logger = logging.getLogger(__name__)

CHUNK_BYTES = 2 * 2**20  # rows are read in chunks of about this many bytes
_REDOWNLOAD = "Delete it and download it again (or pass the right file with data_dir)."

# What zipfile and zlib raise on damaged bytes (a directory or local header that names impossible offsets,
# sizes, versions or methods; a deflate stream that does not inflate; a short file): the exceptions are caught
# only around the calls that read the file, and become a ReleaseFileError naming it.
_ZIP_DAMAGE = (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, OSError, OverflowError, ValueError,
               struct.error)
# numpy's .npy header parser on damaged bytes: ValueError for most, but ast.literal_eval raises TypeError on an
# unhashable key, and the fallback filter for Python 2 headers tokenize.TokenError or SyntaxError.
_HEADER_DAMAGE = _ZIP_DAMAGE + (TypeError, SyntaxError, tokenize.TokenError, RecursionError)
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}  # what np.savez(_compressed) writes


@dataclass(frozen=True)
class ArrayHeader:
    member: str
    shape: Tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 0

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize


def member_name(split: str, kind: str) -> str:
    """``("validation", "images")`` -> ``"val_images"``, the array name inside the release file."""
    return f"{RELEASE_SPLIT_PREFIX[split]}_{kind}"


def _read_header(stream) -> Tuple[Tuple[int, ...], bool, np.dtype]:
    """The ``.npy`` header of a member: versions 1.0 and 2.0 (np.save writes 3.0 only for utf-8 field names of
    structured dtypes, which no release has); any other version is a damaged file (ValueError)."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(stream)
    raise ValueError(f".npy format version {version[0]}.{version[1]}, not 1.0 or 2.0")


def _describe(err: BaseException) -> str:
    return str(err) or type(err).__name__  # EOFError and some OSErrors have no message


def _read_exact(stream, nbytes: int, path: str, member: str) -> bytes:
    """Read exactly ``nbytes`` or raise a clear error (a short read means a truncated or corrupt file)."""
    data = stream.read(nbytes)
    if len(data) != nbytes:
        raise ReleaseFileError(
            f"{path}: member {member!r} ends early ({len(data)} of {nbytes} bytes in the last read); "
            f"the file is truncated or corrupt. {_REDOWNLOAD}"
        )
    return data


class ReleaseArchive:
    """An open release ``.npz``. Use as a context manager; members are read by name, never by position.

    ``index_dir``: where the deflate access points of large members are kept (see :mod:`.deflate_index`; recorded
    by :meth:`index_members`, e.g. after a download). With them a read of rows far into a member starts at the
    point before them instead of inflating every row before them.
    """

    def __init__(self, path: str, index_dir: Optional[str] = None):
        self.path = str(path)
        self.index_dir = index_dir
        try:
            self._zip = zipfile.ZipFile(self.path)
        except FileNotFoundError:
            raise ReleaseFileError(f"{self.path}: file not found.") from None
        except _ZIP_DAMAGE as err:
            raise ReleaseFileError(
                f"{self.path}: not a readable .npz (zip) file ({_describe(err)}); it is truncated or corrupt. "
                f"{_REDOWNLOAD}"
            ) from err
        self._members = {info.filename: info for info in self._zip.infolist()}

    def __enter__(self) -> "ReleaseArchive":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    @property
    def array_names(self) -> List[str]:
        return [name[: -len(".npy")] for name in self._members if name.endswith(".npy")]

    def _member(self, name: str) -> str:
        member = f"{name}.npy"
        if member not in self._members:
            raise ReleaseFileError(
                f"{self.path}: has no array {name!r} (it has {sorted(self.array_names)}). "
                f"This is not a complete MedMNIST+ release file. {_REDOWNLOAD}"
            )
        return member

    def _open(self, name: str):
        member = self._member(name)
        info = self._members[member]
        problem = None
        if info.compress_type not in _METHODS:
            problem = f"its zip directory gives compression method {info.compress_type}, not stored or deflated"
        elif info.flag_bits & 0x1:
            problem = "its zip directory marks it encrypted"
        if problem:
            raise ReleaseFileError(f"{self.path}: cannot read array {name!r}: {problem}; the file is corrupt. "
                                   f"{_REDOWNLOAD}")
        try:
            stream = self._zip.open(member)
        except _ZIP_DAMAGE as err:
            raise ReleaseFileError(
                f"{self.path}: cannot open array {name!r} ({_describe(err)}); the file is corrupt. {_REDOWNLOAD}"
            ) from err
        try:
            shape, fortran_order, dtype = _read_header(stream)
            if any(length < 0 for length in shape):
                raise ValueError(f"shape {shape} has a negative length")
        except _HEADER_DAMAGE as err:
            stream.close()
            raise ReleaseFileError(
                f"{self.path}: cannot read the header of array {name!r} ({_describe(err)}); the file is corrupt. "
                f"{_REDOWNLOAD}"
            ) from err
        return stream, ArrayHeader(member, tuple(shape), np.dtype(dtype), fortran_order)

    def has_array(self, name: str) -> bool:
        return f"{name}.npy" in self._members

    def row_indices(self, split: str) -> Optional[np.ndarray]:
        """The official index of each row when the file says (``<split>_index``, written by ``regenerate`` for a
        partial manifest); None for official files, whose row position is the index."""
        name = member_name(split, "index")
        return self.read_array(name).astype(np.int64) if self.has_array(name) else None

    def split_chunks(self, split: str) -> Iterator[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """A whole split in chunks of rows: ``(official indices, labels, pixels)`` (see :meth:`row_indices`)."""
        labels, indices, position = self.read_array(member_name(split, "labels")), self.row_indices(split), 0
        for pixels in self.iter_chunks(member_name(split, "images"), [(0, None)]):
            stop = position + len(pixels)
            index = indices[position:stop] if indices is not None else np.arange(position, stop, dtype=np.int64)
            yield index, labels[position:stop], pixels
            position = stop

    def header(self, name: str) -> ArrayHeader:
        stream, header = self._open(name)
        stream.close()
        return header

    def read_array(self, name: str) -> np.ndarray:
        """Read a whole (small) array, such as the labels of a split."""
        chunks = list(self.iter_chunks(name, [(0, None)]))
        if not chunks:
            header = self.header(name)
            return np.empty(header.shape, dtype=header.dtype)
        return np.concatenate(chunks, axis=0)

    def iter_chunks(self, name: str, row_ranges: Sequence[Tuple[int, int | None]]) -> Iterator[np.ndarray]:
        """Yield the rows of ``row_ranges`` (ascending ``(start, stop)`` pairs, ``stop=None`` = to the end) in chunks.

        One pass over the member. A deflate stream cannot seek: rows between ranges are inflated and dropped,
        unless the member has an index of access points (see the class), where a range far ahead starts at the
        point before it. Reading the whole member also checks its CRC-32.
        """
        stream, header = self._open(name)
        if header.fortran_order:
            stream.close()
            raise ReleaseFileError(f"{self.path}: array {name!r} is stored in Fortran order; releases are C order.")
        ranges, position = [], 0
        for start, stop in row_ranges:  # checked before reading: a bad range is the caller's bug, not the file's
            stop = header.rows if stop is None else stop
            if not position <= start <= stop <= header.rows:
                stream.close()
                raise ValueError(f"bad row range {(start, stop)} for {header.rows} rows at row {position}")
            ranges.append((start, stop))
            position = stop
        row_bytes = max(header.row_bytes, 1)
        chunk_rows = max(1, CHUNK_BYTES // row_bytes)
        position = 0
        index = None
        try:
            if self._members[header.member].compress_type == zipfile.ZIP_DEFLATED:
                data_start = stream.tell()  # the .npy header's length
                stream.close()
                if self._indexable(header):
                    index = self._usable_index(self._index_file(header.member), header.member)
                stream = self._member_reader(header, data_start, 0, index)
            for start, stop in ranges:
                if index is not None and (start - position) * row_bytes > 2 * deflate_index.SPAN:
                    stream.close()  # far ahead: start again at the access point before the range
                    stream = self._member_reader(header, data_start, start, index)
                    position = start
                while position < start:  # skip forward without holding the skipped rows
                    step = min(chunk_rows, start - position)
                    _read_exact(stream, step * row_bytes, self.path, name)
                    position += step
                while position < stop:
                    step = min(chunk_rows, stop - position)
                    data = _read_exact(stream, step * header.row_bytes, self.path, name)
                    yield np.frombuffer(data, dtype=header.dtype).reshape((step,) + header.shape[1:])
                    position += step
            if position == header.rows and stream.read(1):
                raise ReleaseFileError(
                    f"{self.path}: array {name!r} has bytes after its {header.rows} rows; the file is corrupt. "
                    f"{_REDOWNLOAD}"
                )
        except ReleaseFileError:
            raise
        except _ZIP_DAMAGE as err:
            raise self._corrupt(name, err) from err
        finally:
            stream.close()

    def has_access_points(self, name: str) -> bool:
        """Whether a read of rows far into array ``name`` can start near them (a stored member, or a deflated one
        with recorded access points) instead of inflating every row before them."""
        stream, header = self._open(name)
        stream.close()
        if self._members[header.member].compress_type != zipfile.ZIP_DEFLATED:
            return True
        return self._indexable(header) and self._usable_index(self._index_file(header.member), header.member) is not None

    def _indexable(self, header: ArrayHeader) -> bool:
        info = self._members[header.member]
        return (info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > deflate_index.SPAN
                and deflate_index.available())

    def _index_file(self, member: str) -> Optional[str]:
        """``<index_dir>/<file key>-<version key>-<array>.npz``: the file key names the file (its real path), the
        version key its identity (size, mtime), so the index of a replaced file can be found and removed."""
        identity = file_identity(self.path) if self.index_dir else None
        if identity is None:
            return None
        file_key = hashlib.sha1(os.path.realpath(self.path).encode()).hexdigest()[:16]
        version_key = hashlib.sha1(identity.encode()).hexdigest()[:12]
        return os.path.join(self.index_dir, f"{file_key}-{version_key}-{member[:-len('.npy')]}.npz")

    def _usable_index(self, index_file: Optional[str], member: str) -> Optional[deflate_index.MemberIndex]:
        """The saved index of ``member`` if it is readable and describes the member as it is now; else None (and an
        unusable file is removed, so the next full read records a good one)."""
        if not index_file or not os.path.isfile(index_file):
            return None
        try:
            index = deflate_index.MemberIndex.load(index_file)
            if index.fits(self.path, self._members[member]):
                return index
            problem = "it describes another version of the member"
        except Exception as err:  # noqa: BLE001 (any damage to a cache file only costs speed)
            problem = f"{type(err).__name__}: {err}"
        logger.info("Ignoring the deflate index %s (%s); it is recorded again.", index_file, problem)
        try:
            os.remove(index_file)
        except OSError:
            pass
        return None

    def _member_reader(self, header: ArrayHeader, data_start: int, row: int,
                       index: Optional[deflate_index.MemberIndex]):
        """The member's bytes from ``row`` on: from the access point before it (with an index), else inflated from
        the member's start with ISA-L."""
        info, offset = self._members[header.member], data_start + row * header.row_bytes
        if index is None:
            return deflate_index.SequentialMemberReader(self.path, info, offset)
        return deflate_index.DeflatedMemberReader(self.path, info, offset, index=index)

    def _corrupt(self, name: str, err: BaseException) -> ReleaseFileError:
        """The error for an array whose bytes do not inflate or fail their CRC-32."""
        return ReleaseFileError(f"{self.path}: array {name!r} is corrupt ({_describe(err)}). {_REDOWNLOAD}")

    def raise_if_damaged(self, *names: str) -> None:
        """Read these arrays' members to their end: a member whose bytes are damaged (its deflate stream or CRC-32
        fails) raises the error that says so. For a header that looks wrong, which a damaged member explains better
        than a mismatched file (its CRC-32 is checked only at its end)."""
        for name in names:
            try:
                with self._zip.open(self._member(name)) as stream:
                    while stream.read(CHUNK_BYTES):
                        pass
            except _ZIP_DAMAGE as err:
                raise self._corrupt(name, err) from err

    def index_members(self, names: Sequence[str]) -> None:
        """Record the access points of these arrays now (one pass over each), if they have none yet."""
        for name in names:
            stream, header = self._open(name)
            stream.close()
            index_file = self._index_file(header.member)
            if index_file and self._indexable(header) and self._usable_index(index_file, header.member) is None:
                try:
                    index = deflate_index.build_index(self.path, self._members[header.member])
                except _ZIP_DAMAGE as err:
                    raise self._corrupt(name, err) from err
                _save_index(index, index_file)


def index_release(path: str, index_dir: str) -> None:
    """Record the access points of a release file's image arrays (one pass; skipped where they exist)."""
    with ReleaseArchive(path, index_dir) as archive:
        archive.index_members([name for name in archive.array_names if name.endswith("_images")])


def _save_index(index: deflate_index.MemberIndex, index_file: str) -> None:
    """Save ``index``, and remove the indexes of earlier versions of the same file and array (the cache does not
    grow with every replaced file)."""
    folder, name = os.path.split(index_file)
    file_key, _, array = name.split("-", 2)
    try:
        os.makedirs(folder, exist_ok=True)
        index.save(index_file)
        for other in os.listdir(folder):
            if other != name and other.startswith(file_key + "-") and other.split("-", 2)[-1] == array:
                os.remove(os.path.join(folder, other))
    except OSError as err:  # a read-only cache only costs speed
        logger.debug("could not save the deflate index %s (%s)", index_file, err)


def check_release(path: str, facts: DatasetFacts, size: int, strict: bool = True) -> Dict[str, int]:
    """Check a release file against the catalog before anything is built; return the row count of each split.

    Shapes, dtypes, channel layout and label values must always match. A row count that differs from the
    catalog is an error when ``strict`` and a warning otherwise (``verification_mode="no_checks"``, for
    subsets and benchmark files).
    """
    what = f"{facts.title} at size {size}"
    counts, differing = {}, []
    with ReleaseArchive(path) as archive:
        for split in SPLITS:
            images = archive.header(member_name(split, "images"))
            labels = archive.header(member_name(split, "labels"))
            try:
                _check_images(path, images, facts, size, what)
                _check_labels_header(path, labels, facts, what)
                if labels.rows != images.rows:
                    raise ReleaseFileError(
                        f"{path}: {images.member} has {images.rows} rows but {labels.member} has {labels.rows}; "
                        f"the file is inconsistent. {_REDOWNLOAD}"
                    )
            except ReleaseFileError:  # a damaged member can show a wrong header: then say it is damaged
                archive.raise_if_damaged(member_name(split, "labels"), member_name(split, "images"))
                raise
            expected = facts.split_counts[split]
            if images.rows != expected:
                message = (
                    f"{path}: the {split} split has {images.rows} rows, but the official {what} has {expected}."
                )
                if strict:
                    raise ReleaseFileError(
                        message + " If this is a subset or benchmark file on purpose, build it with "
                        "verification_mode='no_checks' (CLI: --no-checks); otherwise use the official file."
                    )
                differing.append(split)
            _check_label_values(path, archive.read_array(member_name(split, "labels")), labels.member, facts)
            counts[split] = images.rows
    if differing:  # one warning for the file, not one per split
        logger.warning(f"{path}: the splits have {', '.join(f'{s} {counts[s]:,}' for s in differing)} rows, but the "
                       f"official {what} has {', '.join(f'{s} {facts.split_counts[s]:,}' for s in differing)}."
                       + anyway("Building it"))
    return counts


def _check_images(path: str, header: ArrayHeader, facts: DatasetFacts, size: int, what: str) -> None:
    expected = facts.image_shape(size)
    if header.dtype != np.uint8:
        raise ReleaseFileError(
            f"{path}: {header.member} has dtype {header.dtype}, but {what} images are uint8. "
            "Use the official release file, or convert the array to uint8 (0-255) first."
        )
    if header.shape[1:] == expected:
        return
    layout = "N x D x H x W" if facts.dims == 3 else ("N x H x W" if facts.channels == 1 else "N x H x W x 3")
    hint = ""
    if facts.dims == 2 and facts.channels == 3 and header.shape[1:] == (3, size, size):
        hint = " The array is channels-first; the release stores channels last."
    elif facts.dims == 2 and facts.channels == 1 and header.shape[1:] in ((1, size, size), (size, size, 1)):
        hint = (" It has a channel axis of 1 (saved as N x 1 x H x W or N x H x W x 1); the release stores gray "
                "images as N x H x W: squeeze that axis (array[:, 0] or array[..., 0]) and save again.")
    elif facts.dims == 2 and len(header.shape) == 4 and header.shape[1] == header.shape[2] == header.shape[3]:
        hint = (f" It holds {header.shape[1]}x{header.shape[2]}x{header.shape[3]} volumes: a 3D dataset's file, "
                f"but {facts.title} is 2D. Use the file of this config (`medmnist-plus info {facts.flag}`).")
    elif facts.dims == 3 and len(header.shape) in (3, 4) and header.shape[1:3] == (size, size):
        hint = (f" It holds {'x'.join(map(str, header.shape[1:]))} images: a 2D dataset's file, but {facts.title} "
                f"is 3D. Use the file of this config (`medmnist-plus info {facts.flag}`).")
    elif facts.dims == 2 and len(header.shape) == 4 and header.shape[-1] != facts.channels:
        hint = f" It has {header.shape[-1]} channels; {facts.title} has {facts.channels}."
    elif facts.dims == 2 and facts.channels == 3 and len(header.shape) == 3:
        hint = f" It is gray-scale; {facts.title} is RGB."
    elif len(header.shape) > 1 and header.shape[1] != size:
        hint = f" This looks like size {header.shape[1]}, not {size}: check the file for this config."
    raise ReleaseFileError(
        f"{path}: {header.member} has shape {header.shape}, but {what} needs {layout} = "
        f"(N, {', '.join(map(str, expected))}).{hint}"
    )


def _check_labels_header(path: str, header: ArrayHeader, facts: DatasetFacts, what: str) -> None:
    if header.dtype.kind not in "ui":
        raise ReleaseFileError(f"{path}: {header.member} has dtype {header.dtype}; labels must be integers.")
    if header.shape[1:] != facts.label_shape():
        raise ReleaseFileError(
            f"{path}: {header.member} has shape {header.shape}, but {what} labels are "
            f"(N, {facts.label_shape()[0]}). Use the official release file."
        )


def _check_label_values(path: str, labels: np.ndarray, member: str, facts: DatasetFacts) -> None:
    if labels.size == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    allowed = 1 if facts.is_multilabel else facts.num_classes - 1
    if low < 0 or high > allowed:
        bad_row = int(np.argwhere((labels < 0) | (labels > allowed))[0][0])
        kind = "multi-hot values must be 0 or 1" if facts.is_multilabel else f"classes are 0..{allowed}"
        raise ReleaseFileError(
            f"{path}: {member} has values in {low}..{high} (first bad row {bad_row}), but {facts.title} {kind}. "
            "The labels do not belong to this dataset: check the file."
        )


def shard_ranges(rows: int, shards: int, processes: int = 1, skip_share: float = 0.0) -> List[Tuple[int, int]]:
    """Split ``rows`` into up to ``shards`` contiguous ranges (the unit of ``num_proc`` parallelism).

    ``processes`` (dividing ``shards``) each take a run of consecutive shards. A process that must first inflate
    and drop the rows before its own, each costing ``skip_share`` of a row's build, gets fewer rows, so that all
    finish together: process k takes ``t * (1 - skip_share) ** k`` rows (``t`` such that they sum to ``rows``)."""
    shards = max(1, min(shards, rows))
    if processes > 1 and shards % processes == 0 and skip_share > 0:
        shares = (1 - skip_share) ** np.arange(processes)
        ends = np.concatenate([[0], np.cumsum(shares) / shares.sum() * rows])
        bounds = np.concatenate([np.linspace(a, b, shards // processes + 1)[:-1] for a, b in zip(ends, ends[1:])]
                                + [[rows]])
    else:
        bounds = np.linspace(0, rows, shards + 1)
    bounds = np.round(bounds).astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a] or [(0, 0)]
