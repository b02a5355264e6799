"""Reading a snapshot archive (``archive_write`` writes it; ``extraction`` extracts it).

Reading uses ``tarfile`` in stream mode over ``ZstdFile``, over the one open archive file,
hashed as it is read (``HashingSource``): what is read or extracted is exactly what was
hashed, all of it from one open file. Only the store's own regular file is opened; a member
the writer never produces (a sparse file, a manifest over ``MANIFEST_MAX_BYTES``) is refused
from its header.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..dirfd import file_kind
from .archive_format import MANIFEST_NAME, _zstd
from .hashing import CHUNK
from .manifest import Manifest
from .manifest_reader import parse_manifest
from .model import SnapshotError

if TYPE_CHECKING:
    import tarfile

# The most of a manifest member read (into memory): a manifest of 100,000 files and a large
# git diff stays far below it.
MANIFEST_MAX_BYTES = 64 * 1024 * 1024


class HashingSource:
    """The archive file, hashed as the decompressor reads it: what is extracted is exactly
    what was hashed, all of it from one open file (a file swapped in meanwhile is not read).
    A read error is the archive's: a SnapshotError naming it."""

    def __init__(self, f: BinaryIO, archive: Path) -> None:
        import hashlib

        self.f = f
        self.archive = archive
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.f.read(size)
        except OSError as e:
            raise SnapshotError(f"cannot read {self.archive}: {e.strerror or e}") from e
        self.sha256.update(data)
        return data

    def read_to_end(self) -> str:
        """The sha256 of the whole file, once what the decompressor left is read too."""
        while self.read(CHUNK):
            pass
        return self.sha256.hexdigest()


@contextmanager
def open_archive(archive: Path) -> Iterator[HashingSource]:
    """The archive, open for reading: the store's own regular file. A link is not followed
    and a FIFO, device or socket is refused at once (opened non-blocking, so that a FIFO
    planted at its name cannot hang the job, and every job waiting on its lock)."""
    try:
        fd = os.open(archive, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _not_a_file(archive, "a symbolic link") from e
        raise SnapshotError(f"cannot read {archive}: {e.strerror or e}") from e
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _not_a_file(archive, file_kind(info))
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        f = open(fd, "rb")  # noqa: SIM115 -- closed below; only opening is guarded
    except BaseException:
        os.close(fd)
        raise
    with f:
        yield HashingSource(f, archive)


def _not_a_file(archive: Path, what: str) -> SnapshotError:
    return SnapshotError(
        f"refusing to read {archive}: it is {what}, not a regular file, so not the archive "
        "the store wrote; remove it and run the workflow again (snakemake --executor "
        "frozen ...) to store the snapshot anew"
    )


@contextmanager
def tar_members(source: HashingSource) -> Iterator[tarfile.TarFile]:
    """The archive as a ``tarfile`` stream, every decoding error as a SnapshotError. When
    the caller has taken every member, the zstd stream is read to its end, so that its
    checksum is checked (and every byte hashed)."""
    import tarfile

    zstd = _zstd()
    try:
        with zstd.ZstdFile(source, "r") as zf, tarfile.open(fileobj=zf, mode="r|") as tar:
            yield tar
            while zf.read(CHUNK):
                pass
    except (tarfile.TarError, zstd.ZstdError, EOFError) as e:
        raise SnapshotError(f"{source.archive} is not a readable snapshot archive: {e}") from e


def read_member(archive: Path, name: str) -> bytes:
    """The content of the regular file ``name`` in ``archive`` (the manifest comes first)."""
    with open_archive(archive) as source, tar_members(source) as tar:
        for member in tar:
            if member.name == name and member.isreg():
                if is_sparse(member):
                    raise _refuse_read(archive, member.name, "is a sparse file")
                if name == MANIFEST_NAME and member.size > MANIFEST_MAX_BYTES:
                    raise _refuse_read(archive, member.name, manifest_too_large(member.size))
                data = tar.extractfile(member)
                assert data is not None  # a regular file always has content
                return data.read()
    raise SnapshotError(f"{archive} holds no {name}: it is not a snakemake-frozen snapshot")


def read_manifest(path_or_archive: Path) -> Manifest:
    """The manifest of a snapshot, from its record (``<id>.json``, a rule-log copy), its
    archive (``<id>.tar.zst``) or an extracted folder."""
    path = Path(path_or_archive)
    try:
        if path.is_dir():
            data = (path / MANIFEST_NAME).read_bytes()
        elif path.suffix == ".json":
            data = path.read_bytes()
        else:
            data = read_member(path, MANIFEST_NAME)
    except OSError as e:
        raise SnapshotError(f"cannot read the manifest of {path}: {e.strerror}") from e
    return parse_manifest(data, path)


def _refuse_read(archive: Path, name: str, why: str) -> SnapshotError:
    return SnapshotError(
        f"refusing to read {archive}: member {name!r} {why}, which the snapshot writer never "
        "produces: the archive is damaged or forged"
    )


def manifest_too_large(size: int) -> str:
    return f"holds {size} bytes, more than a manifest may ({MANIFEST_MAX_BYTES})"


def is_sparse(member: tarfile.TarInfo) -> bool:
    """A GNU sparse member (old type 'S', or PAX ``GNU.sparse.*`` headers): few bytes in the
    archive, any size on disk."""
    return (
        member.sparse is not None
        or member.type == b"S"
        or any(key.startswith("GNU.sparse.") for key in member.pax_headers)
    )
