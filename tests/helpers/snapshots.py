"""Snapshots in tests: real git repositories in tmp_path, packing with a store inside the
tree, and reading back what an archive holds."""

from __future__ import annotations

import builtins
import io
import os
import subprocess
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from backports import zstd

from helpers.files import write
from snakemake_executor_plugin_frozen.snapshot import (
    PackResult,
    SelectionSettings,
    pack,
    read_manifest,
)

MANIFEST = ".frozen/manifest.json"


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        [
            "git",
            "-c",
            "user.email=a@b",
            "-c",
            "user.name=n",
            "-c",
            "protocol.file.allow=always",
            *args,
        ],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def make_repo(
    root: Path,
    files: Mapping[str, str | bytes],
    ignore: str = "",
    *,
    modes: Mapping[str, int] | None = None,
    links: Mapping[str, str] | None = None,
    untracked: Mapping[str, str | bytes] | None = None,
    settle: bool = False,
) -> Path:
    """A git repository holding ``files`` (path: content) with their ``modes`` (path: mode),
    the symbolic ``links`` (path: target) and ``ignore`` as its .gitignore, all committed;
    then the ``untracked`` files, written after the commit. ``settle``: leave the coarse
    filesystem clock a few ticks, so that no file counts as modified in the same tick as the
    first pack's reads (which the stat cache rightly refuses to trust)."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q")
    if ignore:
        write(root, ".gitignore", ignore)
    for rel, content in files.items():
        write(root, rel, content, mode=(modes or {}).get(rel))
    for rel, target in (links or {}).items():
        os.symlink(target, root / rel)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    for rel, content in (untracked or {}).items():
        write(root, rel, content)
    if settle:
        time.sleep(0.05)
    return root


def make_tree(root: Path, files: Mapping[str, str | bytes], kind: str) -> Path:
    """``files`` as a git repository (``kind`` "git") or a plain folder ("plain")."""
    if kind == "git":
        return make_repo(root, files)
    for rel, content in files.items():
        write(root, rel, content)
    return root


def tree_mark(request: pytest.FixtureRequest) -> pytest.Mark:
    """The test's ``@pytest.mark.tree(files, ...)`` (usually its module's ``pytestmark``):
    what the ``repo`` and ``root`` fixtures make, in ``make_repo``'s arguments."""
    mark = request.node.get_closest_marker("tree")
    if mark is None:
        raise pytest.UsageError(f"{request.fixturename!r} needs a tree mark on the test")
    return mark


def pack_tree(root: Path, store: Path | None = None, **kwargs) -> PackResult:
    """``pack`` with the default store inside the tree (so its exclusion is exercised)."""
    explicit = kwargs.pop("explicit", ())
    level = kwargs.pop("level", 3)
    allow_outside = kwargs.pop("allow_outside", False)
    store = store or root / ".snakemake" / "frozen" / "snapshots"
    settings = SelectionSettings(**kwargs)
    return pack(root, store, settings, explicit=explicit, level=level, allow_outside=allow_outside)


def packed(result: PackResult) -> set[str]:
    """The paths the snapshot holds, according to its manifest."""
    return {f.path for f in read_manifest(result.manifest).files}


def manifest_records(result: PackResult) -> dict[str, dict]:
    """The manifest's record of each file the snapshot holds, by path."""
    return {f.path: f.as_json() for f in read_manifest(result.manifest).files}


def members(archive: Path) -> list[tarfile.TarInfo]:
    with zstd.ZstdFile(archive) as zf, tarfile.open(fileobj=zf, mode="r|") as tar:
        return list(tar)


def special_member(tar: tarfile.TarFile, name: str, kind: bytes, linkname: str = "") -> None:
    """A member of type ``kind`` (a hard link, a device, a FIFO ...) added to ``tar``."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    tar.addfile(info)


class OpenCounter:
    """Records every successful open of a file under ``root`` (the store left out) through
    os.open, open and io.open: any read of content has to go through one of them."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = str(root) + os.sep
        self.opened: list[str] = []
        for module, name in ((os, "open"), (builtins, "open"), (io, "open")):
            monkeypatch.setattr(module, name, self._wrap(getattr(module, name)))

    def _wrap(self, real):
        def counting(path, *args, **kwargs):
            opened = real(path, *args, **kwargs)
            if isinstance(path, (str, bytes, os.PathLike)):
                full = os.fsdecode(os.path.abspath(path))
                if full.startswith(self.root) and "/.snakemake/" not in full:
                    self.opened.append(full[len(self.root) :])
            return opened

        return counting
