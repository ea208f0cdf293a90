"""The one writer of the official release format: ``.npz`` files of deflated ``.npy`` members with the official
names (``train_images`` ... ``test_labels``), written row by row so a file of many GiB never sits in memory, and
published under its name only when complete (``.partial`` until then, removed on failure).

Two ways in: :func:`write_npz_members` (members from chunks of rows: derive, the demo's synthetic sample, the
tests) and :class:`StreamedRelease` (rows as a regeneration makes them: deflated by worker processes, or raw from
one process). The zip internals the latter needs (zipfile's member writer fields, CRC-32 combination) stay in this
module.

Deflate: ISA-L (``isal.isal_zlib``, level 1) where installed, else zlib at its default level (said once). Both
write standard raw deflate, which ``np.load``, ``zipfile`` and the official ``medmnist`` package read like any
other. On realistic release rows (uint8 pixels at 28-224 px; ``benchmarks/png_encodings.py``) ISA-L deflates
8-10x faster than zlib at level 6 (numpy's ``savez_compressed`` and zipfile's default) for about 10 % more bytes.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import zipfile
import zlib
from dataclasses import dataclass
from typing import Dict, Iterator, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..catalog import SPLITS, DatasetFacts
from .deflate_index import crc32
from .reader import member_name

logger = logging.getLogger(__name__)
ISAL_LEVEL = 1  # levels 2 and 3: 1-2 % fewer bytes, 10-25 % slower (measured on realistic rows)
_DEFLATE = []  # (library, level), chosen once per process (a forked worker inherits the parent's choice)


def deflate_library():
    """``(module, level)``: ``isal.isal_zlib`` at :data:`ISAL_LEVEL`, or ``zlib`` at its default (said once)."""
    if not _DEFLATE:
        try:
            from isal import isal_zlib

            _DEFLATE.append((isal_zlib, ISAL_LEVEL))
        except ImportError:
            logger.warning("isal is not installed: release files are deflated with zlib, 8-10x slower. "
                           "pip install isal for ISA-L's deflate.")
            _DEFLATE.append((zlib, zlib.Z_DEFAULT_COMPRESSION))
    return _DEFLATE[0]


def raw_compressobj():
    """A compressor of a raw deflate stream (no zlib header), as zip members hold (:func:`deflate_library`)."""
    library, level = deflate_library()
    return library.compressobj(level, library.DEFLATED, -15)


def _use_fast_deflate(member, block_per_write: bool = False) -> None:
    """Give a zip member just opened for writing (ZIP_DEFLATED, nothing written) :func:`raw_compressobj`'s
    compressor; zipfile only calls ``compress`` and ``flush`` on it. Without the private field, zlib stays.

    ``block_per_write``: end a deflate block after each write (one row), so each row gets Huffman codes of its own:
    ISA-L's level 1 writes 1-6 % fewer bytes of release rows that way than in blocks spanning rows (as many as
    when workers deflate each row on its own), for about 15 us a row."""
    if isinstance(getattr(member, "_compressor", None), type(zlib.compressobj())) and \
            getattr(member, "_file_size", None) == 0:
        member._compressor = _BlockPerWrite(raw_compressobj()) if block_per_write else raw_compressobj()


class _BlockPerWrite:
    """A raw deflate compressor whose every ``compress`` ends with a sync flush (see :func:`_use_fast_deflate`)."""

    def __init__(self, compressor):
        self.compressor, self.sync = compressor, deflate_library()[0].Z_SYNC_FLUSH

    def compress(self, data) -> bytes:
        return self.compressor.compress(data) + self.compressor.flush(self.sync)

    def flush(self) -> bytes:
        return self.compressor.flush()


# The member order of the official 2D files; some 3D files interleave images and labels (read by name).
OFFICIAL_MEMBER_ORDER = tuple(member_name(s, "images") for s in SPLITS) + tuple(member_name(s, "labels") for s in SPLITS)


def open_npy_member(archive: zipfile.ZipFile, name: str, shape: Tuple[int, ...], dtype=np.uint8):
    """A writable ``<name>.npy`` member of ``archive`` with its ``.npy`` header written: write the C-order rows next."""
    out = archive.open(f"{name}.npy", "w", force_zip64=True)
    _use_fast_deflate(out)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)}
    np.lib.format.write_array_header_1_0(out, header)
    return out


def write_npz_members(path: str, members: Mapping[str, Tuple],
                      compress: bool = True) -> str:
    """Write an ``.npz`` member by member from chunks: ``{name: (shape, chunks[, dtype])}`` (C order; uint8 unless
    a dtype is given).

    The file appears at ``path`` only when complete (written to ``path + ".partial"``, then renamed).
    """
    partial = path + ".partial"
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    try:
        with zipfile.ZipFile(partial, "w", compression=compression, allowZip64=True) as archive:
            for name, (shape, chunks, *rest) in members.items():
                dtype = np.dtype(rest[0] if rest else np.uint8)
                with open_npy_member(archive, name, shape, dtype) as out:
                    written = 0
                    for chunk in chunks:
                        chunk = np.ascontiguousarray(chunk, dtype=dtype)
                        out.write(chunk.tobytes())
                        written += len(chunk)
                    if written != shape[0]:
                        raise ValueError(f"{name}: wrote {written} rows, header says {shape[0]}")
    except BaseException:
        if os.path.exists(partial):  # nothing half-written is left behind
            os.remove(partial)
        raise
    os.replace(partial, path)
    return path


def release_file_name(facts: DatasetFacts, size: int) -> str:
    """The official file name of ``facts`` at ``size`` (``<flag>.npz`` at 28, else ``<flag>_<size>.npz``)."""
    if size in facts.files:
        return facts.files[size].file
    return f"{facts.flag}.npz" if size == 28 else f"{facts.flag}_{size}.npz"


def deflate_piece(data: bytes) -> bytes:
    """``data`` as a self-contained piece of a raw deflate stream: compressed on its own and ended by a full flush
    (byte-aligned, not final). Pieces concatenated in order, then :data:`DEFLATE_END`, are one valid deflate stream
    of the concatenated data (what pigz does), so rows can be compressed in parallel, each in its worker."""
    library, _ = deflate_library()
    compressor = raw_compressobj()
    return compressor.compress(data) + compressor.flush(library.Z_FULL_FLUSH)


DEFLATE_END = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15).flush()  # an empty final block


@dataclass(frozen=True)
class DeflatedRow:
    """One release row as the workers send it to :func:`regenerate`: deflated on its own, with its CRC-32 and length
    (a third of the bytes of the raw row to move between processes)."""

    piece: bytes
    crc: int
    length: int

    @classmethod
    def of(cls, row: bytes) -> "DeflatedRow":
        return cls(deflate_piece(row), crc32(row), len(row))

    def raw(self) -> bytes:
        return zlib.decompressobj(-15).decompress(self.piece)


class StreamedRelease:
    """A release file written while its rows arrive, member by member in the official order.

    Rows come either deflated by worker processes (:class:`DeflatedRow`, appended as they are: ``precompressed``)
    or as uint8 arrays rendered in this process (deflated by the member's own ISA-L stream, a block per row, so no
    compressor is made per row). Each split's image member gets its ``.npy`` header with the planned row count; if
    records were dropped after that (bad or blank), :meth:`finish` writes the file again from the rows already in
    the partial file, with the right counts.
    The file appears under its name only when complete (``.partial`` until then).
    """

    def __init__(self, path: str, facts: DatasetFacts, size: int, planned: Dict[str, int],
                 precompressed: bool = True):
        self.path, self.partial = path, path + ".partial"
        self.facts, self.size, self.planned, self.precompressed = facts, size, planned, precompressed
        self.archive = zipfile.ZipFile(self.partial, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        self.member, self.split, self.written, self.pieces = None, None, 0, None
        self.counts: Dict[str, int] = {}

    def begin_split(self, split: str) -> None:
        shape = (self.planned[split],) + self.facts.image_shape(self.size)
        self.member = self.archive.open(f"{member_name(split, 'images')}.npy", "w", force_zip64=True)
        self.pieces = _Precompressed.install(self.member) if self.precompressed else None
        if self.pieces is None:
            _use_fast_deflate(self.member, block_per_write=True)
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
        self.write(np.frombuffer(header.getvalue(), dtype=np.uint8), count=False)
        self.split, self.written = split, 0

    def write(self, row, count: bool = True) -> None:
        """Append one row: a :class:`DeflatedRow` (from a worker) or a uint8 array (rendered in this process)."""
        if self.pieces is not None:
            self.pieces.append(row if isinstance(row, DeflatedRow) else DeflatedRow.of(_flat_bytes(row)))
        else:
            self.member.write(row.raw() if isinstance(row, DeflatedRow) else _flat_bytes(row))
        self.written += count

    def end_split(self) -> None:
        if self.member is not None:
            self.counts[self.split] = self.written
            self.member.close()
            self.member = None

    @property
    def complete(self) -> bool:
        """Whether every split got the rows its header promised."""
        return all(self.counts.get(split) == self.planned[split] for split in SPLITS)

    def finish(self, extra: Dict[str, Tuple]) -> str:
        """Write the label (and index) members and publish the file; its path.

        When records were dropped after their split's header was written, the partial file's rows are copied
        into a file whose headers give the rows written (no second copy of the rows is kept while streaming)."""
        never_begun = [split for split in SPLITS if split not in self.counts]
        if never_begun:
            raise ValueError(f"{self.partial}: no image member for {', '.join(never_begun)}; every split is begun "
                             "and ended (begin_split, end_split) before finish.")
        if self.complete:
            for name, (shape, chunks, *rest) in extra.items():
                with open_npy_member(self.archive, name, shape, rest[0] if rest else np.uint8) as out:
                    for chunk in chunks:
                        out.write(np.ascontiguousarray(chunk, dtype=rest[0] if rest else np.uint8).tobytes())
            self.archive.close()
            os.replace(self.partial, self.path)
            return self.path
        self.archive.close()
        # write_npz_members writes to path + ".partial": the rows are read from another (still partial) name
        source = self.path + ".uncounted.partial"
        os.replace(self.partial, source)
        self.partial = source  # discard() removes it if the copy fails
        rows = {split: self._rows_written(split) for split in SPLITS}
        try:
            members = {member_name(split, "images"): ((self.counts[split],) + self.facts.image_shape(self.size),
                                                      rows[split]) for split in SPLITS}
            members.update(extra)
            order = list(OFFICIAL_MEMBER_ORDER) + [name for name in extra if name not in OFFICIAL_MEMBER_ORDER]
            path = write_npz_members(self.path, {name: members[name] for name in order})
        finally:
            for generator in rows.values():
                generator.close()  # a copy that failed midway leaves no open handle on the partial file
        os.remove(self.partial)
        return path

    def _rows_written(self, split: str, chunk_bytes: int = 16 * 2**20) -> Iterator[np.ndarray]:
        """The rows of ``split`` in the (closed) partial file, in chunks; the member's CRC-32 is checked at its end.

        Not ``ReleaseArchive.iter_chunks``: this member's header promises the planned rows, more than it holds, so
        that reader would stop short of the member's end and never check its CRC-32."""
        row_shape = self.facts.image_shape(self.size)
        row_bytes = int(np.prod(row_shape))
        rows_per_chunk = max(1, chunk_bytes // row_bytes)
        with zipfile.ZipFile(self.partial) as archive, \
                archive.open(f"{member_name(split, 'images')}.npy") as member:
            np.lib.format.read_magic(member)  # written by write_array_header_1_0 in begin_split
            np.lib.format.read_array_header_1_0(member)
            left = self.counts[split]
            while left:
                n = min(rows_per_chunk, left)
                data = member.read(n * row_bytes)
                if len(data) != n * row_bytes:
                    raise OSError(f"{self.partial}: {member_name(split, 'images')} ends before its "
                                  f"{self.counts[split]} rows; regenerate again.")
                yield np.frombuffer(data, dtype=np.uint8).reshape((n,) + row_shape)
                left -= n
            if member.read():
                raise OSError(f"{self.partial}: {member_name(split, 'images')} holds more than its "
                              f"{self.counts[split]} rows; regenerate again.")

    def discard(self) -> None:
        """After a failure (or a finished file): close, and leave nothing that looks complete."""
        try:
            if self.member is not None:
                self.member.close()
            self.archive.close()
        except (OSError, ValueError):
            pass
        if os.path.exists(self.partial):
            os.remove(self.partial)


def _flat_bytes(row) -> memoryview:
    """A row's bytes, C order, as a flat byte view: zipfile counts a multi-dimensional view by its first axis
    before Python 3.10.1 (bpo-44439), which would corrupt the member."""
    return memoryview(np.ascontiguousarray(row, dtype=np.uint8)).cast("B")


class _Precompressed:
    """Stands in for a zipfile member's deflate compressor and appends rows the workers already deflated.

    zipfile's member writer (``_ZipWriteFile``) keeps the raw size, the compressed size and the CRC-32 of what was
    written; rows arrive deflated with their own CRC and length, so these are updated here (CRCs are combined as
    zlib's ``crc32_combine`` does). Where zipfile lacks those fields, :meth:`install` says so and the rows are
    inflated and written the ordinary way, compressed in this process.
    """

    FIELDS = ("_compressor", "_fileobj", "_file_size", "_compress_size", "_crc")

    def __init__(self, member):
        self.member = member

    @classmethod
    def install(cls, member) -> Optional["_Precompressed"]:
        if not all(hasattr(member, name) for name in cls.FIELDS) or \
                not isinstance(member._compressor, type(zlib.compressobj())):
            return None
        pieces = cls(member)
        member._compressor = pieces
        return pieces

    def append(self, row: DeflatedRow) -> None:
        member = self.member
        member._fileobj.write(row.piece)
        member._compress_size += len(row.piece)
        member._file_size += row.length
        member._crc = crc32_combine(member._crc, row.crc, row.length)

    def compress(self, data: bytes) -> bytes:  # never called: rows go through append()
        raise RuntimeError("rows of a precompressed member are appended, not written")

    def flush(self) -> bytes:
        return DEFLATE_END


def _gf2_times(matrix: Sequence[int], vector: int) -> int:
    total, i = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


@functools.lru_cache(maxsize=64)
def _zeros_operator(length: int) -> Tuple[int, ...]:
    """The GF(2) operator that advances a CRC-32 over ``length`` zero bytes (zlib's crc32_combine, as a matrix)."""
    odd = [0xEDB88320] + [1 << (n - 1) for n in range(1, 32)]  # one zero bit
    even = [_gf2_times(odd, odd[n]) for n in range(32)]  # two zero bits
    odd = [_gf2_times(even, even[n]) for n in range(32)]  # four zero bits
    operator = [1 << n for n in range(32)]  # identity
    remaining = length
    while remaining:
        even = [_gf2_times(odd, odd[n]) for n in range(32)]  # the next power of two of zero bytes (8 bits, 16...)
        if remaining & 1:
            operator = [_gf2_times(even, operator[n]) for n in range(32)]
        remaining >>= 1
        if not remaining:
            break
        odd = [_gf2_times(even, even[n]) for n in range(32)]
        if remaining & 1:
            operator = [_gf2_times(odd, operator[n]) for n in range(32)]
        remaining >>= 1
    return tuple(operator)


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC-32 of A + B from crc32(A), crc32(B) and len(B)."""
    if length2 <= 0:
        return crc1
    return _gf2_times(_zeros_operator(length2), crc1) ^ crc2
