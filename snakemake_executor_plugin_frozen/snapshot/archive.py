"""The archive format: a deterministic tar compressed with zstd, and its safe extraction.

Writing builds the tar stream itself: a ustar header per entry (``tarfile`` builds the rare
header that needs pax extensions: long or non-ASCII names, huge files), entries in the
order given, mtime 0, owner 0:0 with empty names, mode 0644/0755 for files and 0777 for
links; its headers are byte for byte those of ``tarfile``'s ustar format, built about ten
times faster (``TarInfo.tobuf`` dominated the packing of small files).
The stream goes through ``ZstdFile`` with the frame checksum on and worker threads, so
compression overlaps the reading.

Reading uses ``tarfile`` in stream mode over ``ZstdFile``. Extraction accepts only what
the writer produces: regular files, folders and symbolic links whose target stays inside
the destination; it never writes through a link and checks every link once all members
exist, in a private folder that only becomes the destination when everything passed.
"""

from __future__ import annotations

import os
import posixpath
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .entries import Entry
from .hashing import CHUNK, file_sha256, read_verified
from .model import SnapshotError
from .rules import is_within, leaves

if TYPE_CHECKING:
    import tarfile

MANIFEST_NAME = ".frozen/manifest.json"
BLOCK = 512
RECORD = 20 * BLOCK
MTIME = 0
_REGTYPE, _SYMTYPE = b"0", b"2"
_USTAR_TAIL = b"ustar\x0000" + bytes(64 + 16 + 167)  # magic, version, names, devices, prefix


def _zstd():
    try:
        from compression import zstd  # Python >= 3.14
    except ImportError:
        from backports import zstd
    return zstd


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


class _HashingSink:
    """The raw archive file, hashed and counted as the compressor writes it."""

    def __init__(self, f: BinaryIO) -> None:
        import hashlib

        self.f = f
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


class ArchiveWriter:
    """Writes one archive to ``path`` (a new file); ``close`` returns its sha256 and size.

    Entries are stored under ``prefix`` (``entries.archive_prefix``), the manifest never.
    """

    def __init__(self, path: Path, level: int, prefix: str = "") -> None:
        self._prefix = prefix
        self._raw = open(path, "xb")  # noqa: SIM115 -- closed by close()/abort()
        self._sink = _HashingSink(self._raw)
        self._zst = _zstd().ZstdFile(self._sink, "w", options=compression_options(level))
        self._buffer = bytearray()
        self._offset = 0

    def _write(self, data: bytes) -> None:
        # Few large writes: every call into the compressor has a fixed cost.
        self._buffer += data
        self._offset += len(data)
        if len(self._buffer) >= CHUNK:
            self._zst.write(self._buffer)
            self._buffer.clear()

    def _name(self, entry: Entry) -> str:
        if not self._prefix:
            return entry.path
        # An outside file's leading '..' fold into the prefix: no member holds '..'.
        return posixpath.normpath(f"{self._prefix}/{entry.path}")

    def _pad(self, size: int) -> None:
        if size % BLOCK:
            self._write(bytes(BLOCK - size % BLOCK))

    def _add_content(self, name: str, mode: int, data: bytes) -> None:
        self._write(_header(name, len(data), mode, _REGTYPE))
        self._write(data)
        self._pad(len(data))

    def add_bytes(self, name: str, data: bytes) -> None:
        self._add_content(name, 0o644, data)

    def add_read(self, entry: Entry, data: bytes) -> None:
        """Archive a file entry whose content was read (and verified) earlier."""
        self._add_content(self._name(entry), entry.mode, data)

    def add_link(self, entry: Entry) -> None:
        self._write(_header(self._name(entry), 0, entry.mode, _SYMTYPE, entry.target))

    def add_file(self, entry: Entry) -> str:
        """Archive a file entry, returning the sha256 of exactly the bytes archived."""
        self._write(_header(self._name(entry), entry.size, entry.mode, _REGTYPE))
        digest = read_verified(entry, self._write)
        self._pad(entry.size)
        return digest

    def close(self) -> tuple[str, int]:
        """Finish the archive (end blocks, durable on disk); returns (sha256, bytes)."""
        end = self._offset + 2 * BLOCK
        self._write(bytes(2 * BLOCK + (-end) % RECORD))
        self._zst.write(self._buffer)
        self._zst.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        return self._sink.sha256.hexdigest(), self._sink.size

    def abort(self) -> None:
        with suppress(Exception):  # the archive is discarded anyway
            self._zst.close()
        self._raw.close()


@contextmanager
def _members(archive: Path) -> Iterator[tarfile.TarFile]:
    """The archive as a ``tarfile`` stream, every read error as a SnapshotError."""
    import tarfile

    zstd = _zstd()
    try:
        with zstd.ZstdFile(archive, "r") as zf, tarfile.open(fileobj=zf, mode="r|") as tar:
            yield tar
    except (tarfile.TarError, zstd.ZstdError, EOFError) as e:
        raise SnapshotError(f"{archive} is not a readable snapshot archive: {e}") from e
    except OSError as e:
        raise SnapshotError(f"cannot read {archive}: {e.strerror or e}") from e


def read_member(archive: Path, name: str) -> bytes:
    """The content of the regular file ``name`` in ``archive`` (the manifest comes first)."""
    with _members(archive) as tar:
        for member in tar:
            if member.name == name and member.isreg():
                data = tar.extractfile(member)
                assert data is not None  # a regular file always has content
                return data.read()
    raise SnapshotError(f"{archive} holds no {name}: it is not a snakemake-frozen snapshot")


def _refuse(archive: Path, name: str, why: str) -> SnapshotError:
    return SnapshotError(f"refusing to extract {archive}: member {name!r} {why}")


def _safe_name(archive: Path, name: str) -> str:
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if name.startswith("/") or not parts:
        raise _refuse(archive, name, "has an absolute or empty path")
    if ".." in parts:
        raise _refuse(archive, name, "leaves the destination through '..'")
    return "/".join(parts)


def _extract_members(archive: Path, tmp: str) -> None:
    import tarfile

    seen: set[str] = set()
    links: set[str] = set()
    with _members(archive) as tar:
        for member in tar:
            name = _safe_name(archive, member.name)
            if name in seen:
                raise _refuse(archive, name, "appears twice")
            seen.add(name)
            # Links are only checked once all members exist, so nothing may be written
            # through one meanwhile: no member may lie beneath a link.
            parts = name.split("/")
            for i in range(1, len(parts)):
                if "/".join(parts[:i]) in links:
                    raise _refuse(archive, name, "lies beneath a symbolic link")
            path = os.path.join(tmp, name)
            if member.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                mode = 0o755 if member.mode & 0o100 else 0o644
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                source = tar.extractfile(member)
                assert source is not None  # a regular file always has content
                with open(os.open(path, flags, mode), "wb") as out:
                    shutil.copyfileobj(source, out, CHUNK)
            elif member.isdir():
                os.makedirs(path, exist_ok=True)
            elif member.issym():
                target = member.linkname
                lexical = os.path.normpath(os.path.join(os.path.dirname(name), target))
                if os.path.isabs(target) or leaves(lexical):
                    raise _refuse(archive, name, f"is a link leaving the destination ({target})")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.symlink(target, path)
                links.add(name)
            else:
                kind = "hard link" if member.islnk() else "device, pipe or other special file"
                raise _refuse(archive, name, f"is a {kind}")
    # Chains of links can leave the destination although each one looks inside on its own.
    real_tmp = os.path.realpath(tmp)
    for name in links:
        if not is_within(real_tmp, os.path.realpath(os.path.join(tmp, name))):
            raise _refuse(archive, name, "is a link that resolves outside the destination")


def extract(archive: Path, dest: Path, expected_sha256: str | None) -> None:
    """Extract ``archive`` into the new folder ``dest``, safely and all or nothing.

    The archive's sha256 is checked first (unless ``expected_sha256`` is None); members with
    absolute paths, ``..``, links leaving the destination, hard links or devices are refused.
    Everything is extracted into a temporary folder beside ``dest`` that is renamed to
    ``dest`` at the end, so ``dest`` either does not exist or is complete.
    """
    archive, dest = Path(archive), Path(os.path.abspath(dest))
    if expected_sha256 is not None:
        actual = file_sha256(archive)
        if actual != expected_sha256.lower():
            raise SnapshotError(
                f"{archive} has sha256 {actual}, expected {expected_sha256}: the archive is "
                "damaged or not the recorded one; do not use it"
            )
    if os.path.lexists(dest):
        raise SnapshotError(f"cannot extract into {dest}: it already exists")
    tmp = os.path.join(dest.parent, f".{dest.name}.{secrets.token_hex(6)}.tmp")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(tmp)
    except OSError as e:
        raise SnapshotError(f"cannot extract into {dest}: {e.strerror}") from e
    try:
        _extract_members(archive, tmp)
        os.rename(tmp, dest)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SnapshotError(f"cannot extract {archive} into {dest}: {e}") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
