"""The archive writer: a deterministic tar compressed with zstd.

Writing builds the tar stream itself: a ustar header per entry (``tarfile`` builds the rare
header that needs pax extensions: long or non-ASCII names, huge files), entries in the
order given, mtime 0, owner 0:0 with empty names, mode 0644/0755 for files and 0777 for
links; its headers are byte for byte those of ``tarfile``'s ustar format, built about ten
times faster (``TarInfo.tobuf`` dominated the packing of small files).
The archive is two zstd frames (decompressors read concatenated frames as one stream), both
with the frame checksum: the manifest's member, then every other member and the end of the
tar (its two zero blocks; readers need no padding to a whole 10 KiB record). So each file
is read once, hashed and handed to zstd's worker threads in the same pass, before the
manifest (which holds the hashes) exists: the member frame is spooled, and the archive file
is written when the manifest is known. Reading and extraction: ``archive``.
"""

from __future__ import annotations

import os
import posixpath
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .archive_format import MANIFEST_NAME, REGTYPE, SYMTYPE, _zstd
from .entries import Entry
from .hashing import CHUNK, read_verified
from .model import SnapshotError

BLOCK = 512
MTIME = 0
_USTAR_TAIL = b"ustar\x0000" + bytes(64 + 16 + 167)  # magic, version, names, devices, prefix


def compression_options(level: int) -> dict:
    """zstd options for ``level``: frame checksum on, one worker thread per usable core (<= 8)."""
    zstd = _zstd()
    param = zstd.CompressionParameter
    high = param.compression_level.bounds()[1]
    # zstd's negative "fast" levels (and 0, its default) are not offered: 1 to 22.
    if not 1 <= level <= high:
        raise SnapshotError(f"compression level {level} is out of range: use 1 to {high}")
    workers = min(8, len(os.sched_getaffinity(0)), param.nb_workers.bounds()[1])
    return {param.compression_level: level, param.checksum_flag: 1, param.nb_workers: workers}


_IDS = b"0000000\0" * 2  # uid, gid
_MTIME_FIELD = b"%011o\0" % MTIME
# Checksum of the constant fields; the checksum field itself counts as eight spaces.
_CONSTANT_SUM = sum(_IDS) + sum(_MTIME_FIELD) + sum(_USTAR_TAIL) + 8 * 32


def _ustar(name: bytes, size: int, mode: int, typeflag: bytes, linkname: bytes) -> bytes:
    mode_field, size_field = b"%07o\0" % mode, b"%011o\0" % size
    checksum = (
        _CONSTANT_SUM + sum(name) + sum(mode_field) + sum(size_field) + typeflag[0] + sum(linkname)
    )
    return b"".join(
        (
            name.ljust(100, b"\0"),
            mode_field,
            _IDS,
            size_field,
            _MTIME_FIELD,
            b"%06o\0 " % checksum,
            typeflag,
            linkname.ljust(100, b"\0"),
            _USTAR_TAIL,
        )
    )


def _header(name: str, size: int, mode: int, typeflag: bytes, linkname: str = "") -> bytes:
    if name.isascii() and linkname.isascii():
        raw_name, raw_link = name.encode(), linkname.encode()
        if len(raw_name) <= 100 and len(raw_link) <= 100 and size < 8**11:
            return _ustar(raw_name, size, mode, typeflag, raw_link)
    import tarfile

    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, MTIME
    info.type, info.linkname = typeflag, linkname
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


# The compressed members stay in memory up to this size, beyond it in an unnamed file.
SPOOL_BYTES = 64 * 1024 * 1024


class _Background(threading.Thread):
    """``work`` done in a thread of its own, its result (or error) collected by ``result``."""

    def __init__(self, work: Callable[[], bytes]) -> None:
        super().__init__(daemon=True)
        self._work = work
        self._result = b""
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._result = self._work()
        except BaseException as e:  # handed to the caller by result()
            self._error = e

    def result(self) -> bytes:
        self.join()
        if self._error is not None:
            raise self._error
        return self._result


class _HashingSink:
    """The archive file, hashed and counted as it is written."""

    def __init__(self, f: BinaryIO) -> None:
        import hashlib

        self.f = f
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.sha256.update(data)
        self.size += len(data)
        self.f.write(data)


class ArchiveWriter:
    """Writes one archive to ``path`` (a new file): first the members (``add_*``), then
    ``close_members``, then ``finish`` with the manifest, which the archive holds first; or
    ``abort``.

    Entries are stored under ``prefix`` (``entries.archive_prefix``), the manifest never.
    """

    def __init__(self, path: Path, level: int, prefix: str = "") -> None:
        import tempfile

        self._path = path
        self._prefix = prefix
        self._options = compression_options(level)
        self._compressor = _zstd().ZstdCompressor(options=self._options)
        # closed by finish()/abort()
        self._spool = tempfile.SpooledTemporaryFile(SPOOL_BYTES, dir=path.parent)  # noqa: SIM115
        self._buffer = bytearray()
        self._flush: _Background | None = None

    def _write(self, data: bytes) -> None:
        # Few large writes: every call into the compressor has a fixed cost.
        self._buffer += data
        if len(self._buffer) >= CHUNK:
            self._spool.write(self._compressor.compress(self._buffer))
            self._buffer.clear()

    def _name(self, entry: Entry) -> str:
        if not self._prefix:
            return entry.path
        # An outside file's leading '..' fold into the prefix: no member holds '..'.
        return posixpath.normpath(f"{self._prefix}/{entry.path}")

    def _pad(self, size: int) -> None:
        if size % BLOCK:
            self._write(bytes(BLOCK - size % BLOCK))

    def add_read(self, entry: Entry, data: bytes) -> None:
        """Archive a file entry whose content was read (and verified) earlier."""
        self._write(_header(self._name(entry), len(data), entry.mode, REGTYPE))
        self._write(data)
        self._pad(len(data))

    def add_link(self, entry: Entry) -> None:
        self._write(_header(self._name(entry), 0, entry.mode, SYMTYPE, entry.target))

    def add_file(self, entry: Entry) -> str:
        """Archive a file entry, returning the sha256 of exactly the bytes archived."""
        self._write(_header(self._name(entry), entry.size, entry.mode, REGTYPE))
        digest = read_verified(entry, self._write)
        self._pad(entry.size)
        return digest

    def close_members(self) -> None:
        """End the tar after the last member. zstd's workers finish compressing meanwhile:
        the end of the frame is made in a thread (zstd releases the GIL)."""
        rest = bytes(self._buffer) + bytes(2 * BLOCK)
        self._buffer.clear()
        compressor = self._compressor
        self._flush = _Background(lambda: compressor.compress(rest, compressor.FLUSH_FRAME))

    def finish(self, manifest: bytes) -> tuple[str, int]:
        """Write the archive, ``manifest`` first, durable on disk; returns (sha256, bytes)."""
        assert self._flush is not None, "close_members() comes first"
        member = _header(MANIFEST_NAME, len(manifest), 0o644, REGTYPE) + manifest
        head = _zstd().compress(member + bytes(-len(member) % BLOCK), options=self._options)
        # Private until the store gives it the files' mode: it may hold a private file.
        fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with open(fd, "wb") as f:
            out = _HashingSink(f)
            out.write(head)
            # What zstd's workers have finished is copied while they finish the rest.
            self._spool.seek(0)
            while chunk := self._spool.read(CHUNK):
                out.write(chunk)
            out.write(self._flush.result())
            f.flush()
            os.fsync(f.fileno())
        self._spool.close()
        return out.sha256.hexdigest(), out.size

    def abort(self) -> None:
        if self._flush is not None:
            self._flush.join()
        self._spool.close()
