"""Shared helpers of the snapshot tests (no tests here): real git repositories in tmp_path,
packing with a store inside the tree, and reading back what an archive holds."""

from __future__ import annotations

import builtins
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from backports import zstd

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


def make_repo(root: Path, files: dict[str, str | bytes], ignore: str = "") -> Path:
    """A git repository holding ``files`` (committed) and a committed .gitignore."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q")
    if ignore:
        write(root, ".gitignore", ignore)
    for rel, content in files.items():
        write(root, rel, content)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    return root


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
    return {f["path"] for f in read_manifest(result.manifest)["files"]}


def members(archive: Path) -> list[tarfile.TarInfo]:
    with zstd.ZstdFile(archive) as zf, tarfile.open(fileobj=zf, mode="r|") as tar:
        return list(tar)


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
