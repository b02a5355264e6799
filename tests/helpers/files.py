"""Files and folders: writing them, their modes and hashes, a whole tree read back, and a
folder other users can reach."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def write(root: Path, rel: str, content: str | bytes = "x\n", mode: int | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    if mode is not None:
        path.chmod(mode)
    return path


def mode(path: Path) -> int:
    """The permission bits of ``path`` itself (a link is not followed)."""
    return stat.S_IMODE(path.lstat().st_mode)


def sha256_of(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_files(root: Path, skip: tuple[str, ...] = (".frozen",)) -> dict[str, bytes | str]:
    """Every file (content) and link (target) under root, by relative path."""
    found: dict[str, bytes | str] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.relpath(os.path.join(folder, d), root) not in skip]
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            found[rel] = os.readlink(path) if os.path.islink(path) else Path(path).read_bytes()
    return found


@contextmanager
def shared_folder(prefix: str, mode: int = 0o755) -> Iterator[Path]:
    """A new folder in /tmp that other users can reach (pytest's own tmp_path lies in root's
    0700 folder, which nobody cannot even enter), removed afterwards (as root: read-only
    folders left by a test are no bar)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    folder.chmod(mode)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)
