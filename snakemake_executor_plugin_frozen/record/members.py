"""Every member of a snapshot archive, read as a stream and hashed, for ``verify``.

Deliberately not the snapshot engine's own reader: a check that reuses the code it checks
would share its mistakes. This reads the archive as any tar + zstd tool would.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1 << 20


def _zstd():
    try:
        from compression import zstd  # Python >= 3.14
    except ImportError:
        from backports import zstd
    return zstd


@dataclass(frozen=True)
class Member:
    name: str
    type: str  # "file", "link", "folder" or "other"
    mode: int
    size: int
    target: str  # of a link
    sha256: str  # of a file's content ("" for the rest)
    content: bytes | None  # only for the names asked for (the manifest)


def _kind(info: tarfile.TarInfo) -> str:
    if info.isreg():
        return "file"
    if info.issym():
        return "link"
    return "folder" if info.isdir() else "other"


def _hashed(tar: tarfile.TarFile, info: tarfile.TarInfo, keep: bool) -> tuple[str, bytes | None]:
    source = tar.extractfile(info)
    assert source is not None  # a regular file always has content
    digest, kept = hashlib.sha256(), []
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        if keep:
            kept.append(chunk)
    return digest.hexdigest(), b"".join(kept) if keep else None


def members(archive: Path, keep: frozenset[str]) -> Iterator[Member]:
    """The members of ``archive`` in order; the content of those named in ``keep`` too.
    Raises OSError, tarfile.TarError, EOFError or zstd's error on a damaged archive."""
    zstd = _zstd()
    with (
        open(archive, "rb") as raw,
        zstd.ZstdFile(raw, "r") as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        for info in tar:
            sha256, content = _hashed(tar, info, info.name in keep) if info.isreg() else ("", None)
            yield Member(
                info.name, _kind(info), info.mode, info.size, info.linkname, sha256, content
            )
        while stream.read(CHUNK):  # to the end, so that zstd checks its frame checksums
            pass


def decode_error() -> tuple[type[BaseException], ...]:
    """The errors a damaged archive raises while ``members`` reads it."""
    return (OSError, EOFError, tarfile.TarError, _zstd().ZstdError)
