"""Random access into a deflated zip member: restart points recorded in one pass (zlib's ``zran`` technique).

A deflate stream cannot seek: to read rows in the second half of a release member, a reader must inflate the
first half. One pass over the member records *access points* at deflate block boundaries, every ``span`` bytes of
output: the compressed bit position, the uncompressed offset and the 32 KiB of output before it (the history that
back-references may reach). Inflating can then start at any point (``inflatePrime`` feeds the bits of the
point's first byte, ``inflateSetDictionary`` the history), so each ``num_proc`` worker inflates only its own rows,
and a preview reads one row without inflating the rows before it.

Python's :mod:`zlib` has neither ``Z_BLOCK`` nor ``inflatePrime``; the system zlib (``libz.so.1``, on Linux
usually the library CPython's :mod:`zlib` module is linked to) is called through :mod:`ctypes`. Where it cannot
be loaded, :func:`available` is False and readers inflate from the member's start.

Points are recorded where a file enters the cache (a download, see ``reader.index_release``), not by every read:
recording needs zlib's inflate, and a read from the member's start without points uses ISA-L's instead
(:class:`SequentialMemberReader`), 1.7x faster than zlib through ctypes (2.9 s against 4.9 s for a 1 GiB member
of realistic rows): the first build of a local file, and every single-process read.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

try:  # ISA-L (a dependency): zlib's CRC-32 about 5x faster (carry-less multiplication), and a faster inflate
    from isal.isal_zlib import crc32
    from isal.isal_zlib import decompressobj as _fast_decompressobj
    from isal.isal_zlib import error as _fast_inflate_error
except ImportError:  # pragma: no cover
    from zlib import crc32
    from zlib import decompressobj as _fast_decompressobj
    from zlib import error as _fast_inflate_error

SPAN = 8 * 2**20  # uncompressed bytes between access points: the most a reader inflates and drops
WINDOW = 32768  # deflate's history size
_IN_CHUNK = 2**20

_Z_OK, _Z_STREAM_END, _Z_BUF_ERROR = 0, 1, -5
_Z_NO_FLUSH, _Z_BLOCK = 0, 5


class _ZStream(ctypes.Structure):
    _fields_ = [
        ("next_in", ctypes.c_void_p), ("avail_in", ctypes.c_uint), ("total_in", ctypes.c_ulong),
        ("next_out", ctypes.c_void_p), ("avail_out", ctypes.c_uint), ("total_out", ctypes.c_ulong),
        ("msg", ctypes.c_char_p), ("state", ctypes.c_void_p),
        ("zalloc", ctypes.c_void_p), ("zfree", ctypes.c_void_p), ("opaque", ctypes.c_void_p),
        ("data_type", ctypes.c_int), ("adler", ctypes.c_ulong), ("reserved", ctypes.c_ulong),
    ]


_libz = None


def _load_libz():
    global _libz
    if _libz is None:
        import ctypes.util  # only when a member is read: the catalog commands never need it

        try:
            lib = ctypes.CDLL(ctypes.util.find_library("z") or "libz.so.1")
            lib.zlibVersion.restype = ctypes.c_char_p
            for name in ("inflateInit2_", "inflate", "inflateEnd", "inflatePrime", "inflateSetDictionary",
                         "inflateGetDictionary"):
                getattr(lib, name)  # every function the index needs (inflateGetDictionary: zlib >= 1.2.8)
            lib.inflateInit2_.argtypes = [ctypes.POINTER(_ZStream), ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
            lib.inflate.argtypes = [ctypes.POINTER(_ZStream), ctypes.c_int]
            lib.inflateEnd.argtypes = [ctypes.POINTER(_ZStream)]
            lib.inflatePrime.argtypes = [ctypes.POINTER(_ZStream), ctypes.c_int, ctypes.c_int]
            lib.inflateSetDictionary.argtypes = [ctypes.POINTER(_ZStream), ctypes.c_char_p, ctypes.c_uint]
            lib.inflateGetDictionary.argtypes = [ctypes.POINTER(_ZStream), ctypes.c_char_p,
                                                 ctypes.POINTER(ctypes.c_uint)]
            _libz = lib
        except (OSError, AttributeError):
            _libz = False
    return _libz or None


def available() -> bool:
    """Whether the system zlib can be called (access points can be recorded and used)."""
    return _load_libz() is not None


class _Inflater:
    """A raw-deflate inflate stream of the system zlib."""

    def __init__(self):
        self.lib = _load_libz()
        self.stream = _ZStream()
        version = self.lib.zlibVersion()
        if self.lib.inflateInit2_(ctypes.byref(self.stream), -15, version, ctypes.sizeof(_ZStream)) != _Z_OK:
            raise MemoryError("zlib inflateInit2 failed")
        # One input buffer for the stream's life; next_in/next_out are set as plain addresses (assigning ctypes
        # objects to the struct's pointer fields would keep every buffer alive).
        self._input = bytearray(_IN_CHUNK)
        self._input_view = (ctypes.c_char * _IN_CHUNK).from_buffer(self._input)

    def close(self) -> None:
        if self.stream is not None:
            self.lib.inflateEnd(ctypes.byref(self.stream))
            self.stream = None
            del self._input_view

    def refill(self, f, nbytes: int) -> int:
        """Read up to ``nbytes`` (at most 1 MiB) compressed bytes from file ``f`` as the next input."""
        read = f.readinto(memoryview(self._input)[: min(nbytes, _IN_CHUNK)])
        self.stream.next_in = ctypes.addressof(self._input_view)
        self.stream.avail_in = read
        return read

    def inflate(self, out_address: int, out_size: int, flush: int) -> int:
        """Inflate into ``out_size`` bytes at ``out_address``; returns zlib's return code."""
        self.stream.next_out = out_address
        self.stream.avail_out = out_size
        ret = self.lib.inflate(ctypes.byref(self.stream), flush)
        if ret not in (_Z_OK, _Z_STREAM_END, _Z_BUF_ERROR):
            message = self.stream.msg.decode(errors="replace") if self.stream.msg else f"code {ret}"
            raise zlib.error(f"Error {ret} while decompressing data: {message}")
        return ret

    def window(self) -> bytes:
        buffer = ctypes.create_string_buffer(WINDOW)
        length = ctypes.c_uint(0)
        if self.lib.inflateGetDictionary(ctypes.byref(self.stream), buffer, ctypes.byref(length)) != _Z_OK:
            raise zlib.error("zlib inflateGetDictionary failed")
        return buffer.raw[: length.value]


FORMAT = 1  # of the saved index; another value is not read


@dataclass
class MemberIndex:
    """Access points of one deflated zip member, and the member they belong to.

    Point ``i``: ``out[i]`` uncompressed offset, ``start[i]`` compressed offset (from the member's first data
    byte), ``bits[i]`` unused bits of the byte before ``start[i]`` that belong to the point, ``windows[i]`` the
    32 KiB of output before it. ``crcs[i]``: the CRC-32 of the uncompressed bytes from point ``i`` to the next
    point (or the member's end), so a reader that starts at a point still checks every span it passes.
    """

    member: str
    data_offset: int  # where the member's compressed data starts in the file
    compressed_size: int
    file_size: int = 0  # the member's uncompressed size
    member_crc: int = 0  # the zip directory's CRC-32 of the whole member
    out: List[int] = field(default_factory=list)
    start: List[int] = field(default_factory=list)
    bits: List[int] = field(default_factory=list)
    windows: List[bytes] = field(default_factory=list)
    crcs: List[int] = field(default_factory=list)

    def fits(self, path: str, info: zipfile.ZipInfo) -> bool:
        """Whether this index describes ``info``'s member as it is in ``path`` now (else it is ignored)."""
        complete = len(self.out) == len(self.start) == len(self.bits) == len(self.windows) == len(self.crcs) > 0
        return complete and (self.member, self.compressed_size, self.file_size, self.member_crc) == (
            info.filename, info.compress_size, info.file_size, info.CRC) and self.data_offset == data_offset(path, info)

    def span_end(self, number: int) -> int:
        return self.out[number + 1] if number + 1 < len(self.out) else self.file_size

    def save(self, path: str) -> None:
        """Write the index to ``path`` (``.npz``) atomically: a reader never sees half an index."""
        folder = os.path.dirname(path) or "."
        handle, partial = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".", suffix=".partial")
        try:
            with os.fdopen(handle, "wb") as f:
                np.savez(f, format=np.int64(FORMAT), member=np.array(self.member), sizes=np.array(
                    [self.data_offset, self.compressed_size, self.file_size, self.member_crc], dtype=np.int64),
                    out=np.array(self.out, dtype=np.int64), start=np.array(self.start, dtype=np.int64),
                    bits=np.array(self.bits, dtype=np.int8), crcs=np.array(self.crcs, dtype=np.int64),
                    window_lengths=np.array([len(w) for w in self.windows], dtype=np.int64),
                    windows=np.frombuffer(b"".join(self.windows), dtype=np.uint8))
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, path)
        except BaseException:
            if os.path.exists(partial):
                os.remove(partial)
            raise

    @classmethod
    def load(cls, path: str) -> "MemberIndex":
        """Read a saved index (``ValueError`` if it is not one of this format)."""
        with np.load(path) as arrays:
            if int(arrays["format"]) != FORMAT:
                raise ValueError(f"index format {int(arrays['format'])}, not {FORMAT}")
            lengths = arrays["window_lengths"].tolist()
            ends = np.cumsum(lengths).tolist()
            joined = arrays["windows"].tobytes()
            windows = [joined[end - length:end] for end, length in zip(ends, lengths)]
            offset, compressed, size, crc = (int(v) for v in arrays["sizes"])
            return cls(str(arrays["member"]), offset, compressed, size, crc, arrays["out"].tolist(),
                       arrays["start"].tolist(), arrays["bits"].tolist(), windows, arrays["crcs"].tolist())

    def point_before(self, offset: int) -> int:
        """The number of the last access point at or before uncompressed ``offset``."""
        return max(0, int(np.searchsorted(np.asarray(self.out, dtype=np.int64), offset, side="right")) - 1)


def data_offset(path: str, info: zipfile.ZipInfo) -> int:
    """Where a zip member's compressed bytes start (after its local header, whose name/extra lengths may differ
    from the central directory's)."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise zlib.error(f"no local header for {info.filename!r} at byte {info.header_offset}")
    name_length = int.from_bytes(header[26:28], "little")
    extra_length = int.from_bytes(header[28:30], "little")
    return info.header_offset + 30 + name_length + extra_length


class DeflatedMemberReader:
    """A deflated zip member's uncompressed bytes from ``offset`` on, read like a file (``read(n)``).

    With an ``index`` (that :meth:`MemberIndex.fits` the member), inflating starts at the access point before
    ``offset``, and each span between points that the reader passes is checked against its CRC-32. Without one it
    starts at the member's start and checks the member's CRC-32 and size at its end; with ``record`` it also
    records the access points it passes: :attr:`complete_index` is then the member's index. A mismatch raises
    ``zlib.error``.
    """

    def __init__(self, path: str, info: zipfile.ZipInfo, offset: int = 0, index: Optional[MemberIndex] = None,
                 record: bool = False, span: Optional[int] = None):
        self.path, self.info, self.span = path, info, span or SPAN
        self._index = index  # spans checked against its CRCs
        number = index.point_before(offset) if index is not None else 0
        self._point = number  # the span being read (with an index)
        self._from_start = index is None  # then the whole member's CRC-32 is checked at its end
        first = data_offset(path, info)
        # With ``record``, a read from the start records the points it passes (a later reader can start anywhere).
        self._recorded = MemberIndex(info.filename, first, info.compress_size, info.file_size, info.CRC,
                                     [0], [0], [0], [b""]) if record and index is None else None
        self._position = index.out[number] if index is not None else 0  # offset of the next byte inflated
        self._crc = self._span_crc = 0
        self._ended = False
        self._inflater = _Inflater()
        self._file = None
        try:
            self._file = open(path, "rb")
            start = index.start[number] if index is not None else 0
            bits = index.bits[number] if index is not None else 0
            self._file.seek(first + start - (1 if bits else 0))
            self._remaining = info.compress_size - start
            stream = ctypes.byref(self._inflater.stream)
            if bits:  # the point starts inside a byte: feed that byte's remaining bits first
                byte = self._file.read(1)
                if len(byte) != 1 or self._inflater.lib.inflatePrime(stream, bits, byte[0] >> (8 - bits)) != _Z_OK:
                    raise zlib.error(f"member {info.filename!r}: cannot start at its access point {number}")
            window = index.windows[number] if index is not None else b""
            if window and self._inflater.lib.inflateSetDictionary(stream, window, len(window)) != _Z_OK:
                raise zlib.error(f"member {info.filename!r}: cannot start at its access point {number}")
            self._discard(offset - self._position)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._inflater.close()
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> "DeflatedMemberReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def complete_index(self) -> Optional[MemberIndex]:
        """The member's access points, when it was read from its start to its verified end; else None."""
        return self._recorded if self._ended and self._recorded is not None else None

    def _discard(self, nbytes: int) -> None:
        while nbytes > 0:
            nbytes -= len(self.read(min(nbytes, 8 * 2**20)))
            if self._ended:
                return

    def _bad(self, what: str) -> zlib.error:
        self._recorded = None
        return zlib.error(f"member {self.info.filename!r} is corrupt: {what}")

    def _check_spans(self, data: memoryview) -> None:
        """Account ``data`` (the next bytes from ``self._position``) to the index's spans, checking each one ended."""
        position, done = self._position, 0
        while done < len(data):
            end = self._index.span_end(self._point)
            take = min(len(data) - done, end - position)
            if take <= 0:
                raise self._bad("more bytes than its size")
            self._span_crc = crc32(data[done:done + take], self._span_crc)
            done, position = done + take, position + take
            if position == end:
                if self._span_crc != self._index.crcs[self._point]:
                    raise self._bad(f"bad CRC-32 of bytes {self._index.out[self._point]}..{end}")
                self._point, self._span_crc = self._point + 1, 0

    def read(self, nbytes: int) -> bytearray:
        """Up to ``nbytes`` bytes (fewer only at the member's end)."""
        if nbytes <= 0 or self._ended:
            return bytearray()
        nbytes = min(nbytes, 2**30)  # zlib's avail_out is 32-bit
        result = bytearray(nbytes)
        view = memoryview(result)
        target = ctypes.c_char.from_buffer(result)  # its address is the buffer's (no array type per size)
        address = ctypes.addressof(target)
        stream = self._inflater.stream
        filled = mark = 0  # mark: start of the recorded span's bytes not yet in its CRC
        try:
            while filled < nbytes and not self._ended:
                if stream.avail_in == 0 and self._remaining:
                    read = self._inflater.refill(self._file, self._remaining)
                    if not read:
                        raise zlib.error(f"member {self.info.filename!r} ends early: the file is truncated")
                    self._remaining -= read
                before = stream.total_out
                ret = self._inflater.inflate(address + filled, nbytes - filled,
                                             _Z_BLOCK if self._recorded is not None else _Z_NO_FLUSH)
                filled += stream.total_out - before
                if ret == _Z_STREAM_END:
                    self._ended = True
                elif ret == _Z_BUF_ERROR and stream.avail_in == 0 and not self._remaining:
                    raise zlib.error(f"member {self.info.filename!r} ends early: the file is truncated")
                elif self._recorded is not None:
                    data_type = stream.data_type
                    out = self._position + filled
                    # At a block boundary (bit 7), not after the last block (bit 6): a possible access point.
                    if data_type & 128 and not data_type & 64 and out - self._recorded.out[-1] >= self.span:
                        self._recorded.crcs.append(crc32(view[mark:filled], self._span_crc))
                        self._span_crc, mark = 0, filled
                        self._recorded.out.append(out)
                        self._recorded.start.append(stream.total_in)
                        self._recorded.bits.append(data_type & 7)
                        self._recorded.windows.append(self._inflater.window())
        finally:
            del target  # releases the buffer export
        if self._index is not None:
            self._check_spans(view[:filled])
        if self._recorded is not None:
            self._span_crc = crc32(view[mark:filled], self._span_crc)
        if self._from_start:
            self._crc = crc32(view[:filled], self._crc)
        view.release()
        self._position += filled
        if self._ended:
            if self._position != self.info.file_size:
                raise self._bad(f"{self._position} bytes, not {self.info.file_size}")
            if self._from_start and self._crc != self.info.CRC:
                raise self._bad("bad CRC-32")
            if self._recorded is not None:
                self._recorded.crcs.append(self._span_crc)
        return result if filled == nbytes else result[:filled]


def build_index(path: str, info: zipfile.ZipInfo, span: Optional[int] = None) -> MemberIndex:
    """One pass over a deflated member: its access points every ``span`` output bytes (CRC-32 checked)."""
    with DeflatedMemberReader(path, info, record=True, span=span) as reader:
        while reader.read(16 * 2**20):
            pass
        return reader.complete_index


class SequentialMemberReader:
    """A deflated zip member's uncompressed bytes from ``offset`` on, inflated from the member's start with ISA-L,
    read like a file (``read(n)``). Bytes before ``offset`` are inflated and dropped; the member's CRC-32 and size
    are checked at its end. Records no access points (see the module's docstring). A mismatch raises
    ``zlib.error``."""

    def __init__(self, path: str, info: zipfile.ZipInfo, offset: int = 0):
        self.path, self.info = path, info
        self._inflater = _fast_decompressobj(-15)
        self._position = self._crc = 0
        self._file = open(path, "rb")
        try:
            self._file.seek(data_offset(path, info))
            self._remaining = info.compress_size
            while self._position < offset and self._inflate(min(offset - self._position, 8 * 2**20)):
                pass
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "SequentialMemberReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _inflate(self, limit: int) -> bytes:
        """Up to ``limit`` more bytes of the member (fewer only at its end, then checked): b"" after the end."""
        out, starved = b"", False
        while not out and not self._inflater.eof:
            data = self._inflater.unconsumed_tail
            if not data and self._remaining:
                data = self._file.read(min(self._remaining, 2**20))
                if not data:
                    raise zlib.error(f"member {self.info.filename!r} ends early: the file is truncated")
                self._remaining -= len(data)
            elif not data:  # all input given: ISA-L may still hold output back (max_length); ask once more
                if starved:
                    raise zlib.error(f"member {self.info.filename!r} ends early: the file is truncated")
                starved = True
            try:
                out = self._inflater.decompress(data, limit)
            except _fast_inflate_error as err:
                raise zlib.error(f"member {self.info.filename!r} is corrupt: {err}") from None
        self._crc = crc32(out, self._crc)
        self._position += len(out)
        if self._inflater.eof and self._position != self.info.file_size:
            raise zlib.error(f"member {self.info.filename!r} is corrupt: {self._position} bytes, "
                             f"not {self.info.file_size}")
        if self._inflater.eof and self._crc != self.info.CRC:
            raise zlib.error(f"member {self.info.filename!r} is corrupt: bad CRC-32")
        return out

    def read(self, nbytes: int) -> bytearray:
        """Up to ``nbytes`` bytes (fewer only at the member's end), in a writable buffer."""
        result = bytearray(max(nbytes, 0))
        view, filled = memoryview(result), 0
        while filled < nbytes:
            out = self._inflate(nbytes - filled)
            if not out:
                break
            view[filled:filled + len(out)] = out
            filled += len(out)
        view.release()
        return result if filled == nbytes else result[:filled]
