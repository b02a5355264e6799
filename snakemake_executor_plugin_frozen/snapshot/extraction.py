"""Safe extraction of a snapshot archive (``archive`` reads it).

Extraction accepts only what the writer produces: the manifest first (at most
``MANIFEST_MAX_BYTES``), then regular files of exactly the size the manifest records for
them (and no more than its total) and symbolic links to the target it records, staying
inside the destination (folders too, empty); never a sparse member, a hard link, a device or
a FIFO, nor a member too deep to handle; each is refused from its header, before a byte of it
is written. So an archive that is not the recorded one (its sha256 is only known at the end)
writes no more than its manifest claims. Extraction works through folder fds, never writes
through a link and checks every link once all members exist, in a private folder that only
becomes the destination when everything passed and the bytes read had the recorded sha256;
else that folder is removed (without recursion, however deep).
"""

from __future__ import annotations

import os
import posixpath
import shutil
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

from ..dirfd import FOLDER, descend, new_file, remove_tree
from .archive import (
    MANIFEST_MAX_BYTES,
    HashingSource,
    is_sparse,
    manifest_too_large,
    open_archive,
    tar_members,
)
from .archive_format import FILE_TYPES, MANIFEST_NAME, MAX_DEPTH, NAME_MAX, PATH_MAX, shortened
from .hashing import CHUNK
from .manifest import FileRecord, ManifestError
from .manifest_reader import parse_manifest
from .model import SnapshotError
from .rules import is_within, leaves

if TYPE_CHECKING:
    import tarfile


class DestinationError(SnapshotError):
    """Writing the extracted copy failed (a full disk, a folder we may not write): the
    destination's fault, not the archive's; ``error`` says which."""

    def __init__(self, dest: Path, error: OSError) -> None:
        super().__init__(f"cannot extract into {dest}: {error.strerror or error}")
        self.error = error


def _refuse(archive: Path, name: str, why: str) -> SnapshotError:
    return SnapshotError(f"refusing to extract {archive}: member {name!r} {why}")


def _safe_name(archive: Path, name: str) -> str:
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if name.startswith("/") or not parts:
        raise _refuse(archive, name, "has an absolute or empty path")
    if ".." in parts:
        raise _refuse(archive, name, "leaves the destination through '..'")
    return "/".join(parts)


def _file_mode(member_mode: int, read_only: bool) -> int:
    """0644/0755, or 0444/0555 in a read-only copy; never readable by more people than the
    archive member is."""
    mode = 0o755 if member_mode & 0o100 else 0o644
    return (mode & 0o555 if read_only else mode) & (member_mode | 0o700)


def _folder(root: int, rel: str, made: set[str]) -> int:
    """A new fd of the folder ``rel`` of the tree open as ``root``, made (private until the
    tree is complete) where missing; opened one name at a time, never through a link."""
    fd = os.dup(root)
    done = ""
    try:
        for part in filter(None, rel.split("/")):
            done = f"{done}/{part}" if done else part
            if done not in made:
                os.mkdir(part, 0o700, dir_fd=fd)
                made.add(done)
            fd = descend(fd, part)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, folder: int, leaf: str, read_only: bool
) -> None:
    """A regular, not sparse member (checked): tarfile reads exactly its recorded size."""
    source = tar.extractfile(member)
    assert source is not None  # a regular file always has content
    with new_file(folder, leaf, 0o600) as out:
        shutil.copyfileobj(source, out, CHUNK)
        os.fchmod(out.fileno(), _file_mode(member.mode, read_only))


def _recorded_members(archive: Path, data: bytes) -> tuple[dict[str, FileRecord], int]:
    """The manifest's entries by member name, and its total of file bytes."""
    try:
        manifest = parse_manifest(data, archive)
    except ManifestError as e:
        raise _refuse(archive, MANIFEST_NAME, e.problem) from e
    if manifest.bytes is None:
        raise _refuse(archive, MANIFEST_NAME, "records no total of bytes")
    prefix = manifest.prefix
    entries = {}
    for entry in manifest.files:
        path = entry.path
        name = posixpath.normpath(f"{prefix}/{path}") if prefix else path
        entries["/".join(p for p in name.split("/") if p not in ("", "."))] = entry
    return entries, manifest.bytes


class _Extraction:
    """Members of one archive going into the empty folder open as ``root``, and what has
    been placed so far: duplicates and members beneath a file or a link are refused."""

    def __init__(self, archive: Path, dest: Path, root: int, read_only: bool) -> None:
        self.archive, self.dest, self.root, self.read_only = archive, dest, root, read_only
        self.seen: set[str] = set()
        self.made: set[str] = set()  # folders
        # By member name, once the manifest is in.
        self.recorded: dict[str, FileRecord] | None = None
        self.allowed = 0  # bytes of files the manifest records, and those written so far
        self.written = 0
        self.root_length = len(os.fsencode(os.readlink(f"/proc/self/fd/{root}")))
        self.not_folders: dict[str, str] = {}  # files and links: what each is
        # Members come folder by folder: the current one stays open.
        self.folder_name, self.folder = "", os.dup(root)

    def close(self) -> None:
        os.close(self.folder)

    def _checked_name(self, member: tarfile.TarInfo) -> str:
        name = _safe_name(self.archive, member.name)
        parts = name.split("/")
        if len(parts) > MAX_DEPTH:
            raise _refuse(
                self.archive,
                shortened(name),
                f"lies {len(parts)} folders deep, deeper than the {MAX_DEPTH} allowed",
            )
        if any(len(os.fsencode(part)) > NAME_MAX for part in parts):
            raise _refuse(self.archive, shortened(name), f"has a name over {NAME_MAX} bytes")
        if self.root_length + 1 + len(os.fsencode(name)) >= PATH_MAX:
            raise _refuse(
                self.archive,
                shortened(name),
                f"would have a path over PATH_MAX ({PATH_MAX} bytes) in {self.dest}",
            )
        if name in self.seen or (name in self.made and not member.isdir()):
            raise _refuse(self.archive, name, "appears twice")
        self.seen.add(name)
        # Links are only checked once all members exist, so nothing may be written through
        # one meanwhile: no member may lie beneath a link (nor a file).
        for i in range(1, len(parts)):
            above = self.not_folders.get("/".join(parts[:i]))
            if above:
                raise _refuse(self.archive, name, f"lies beneath a {above}")
        return name

    def _open_folder(self, name: str) -> int:
        if name != self.folder_name:
            folder = _folder(self.root, name, self.made)
            os.close(self.folder)
            self.folder_name, self.folder = name, folder
        return self.folder

    def _screen(self, member: tarfile.TarInfo) -> None:
        """Refuse, from its header alone, what the writer never produces."""
        if is_sparse(member):
            raise _refuse(
                self.archive, shortened(member.name), "is a sparse file (never in a snapshot)"
            )
        if not (member.isdir() or member.issym() or member.type in FILE_TYPES):
            kind = "hard link" if member.islnk() else "device, pipe or other special file"
            raise _refuse(self.archive, shortened(member.name), f"is a {kind}")

    def _manifest(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
        """The first member: the manifest, read bounded, its entries noted."""
        if member.name != MANIFEST_NAME or member.type not in FILE_TYPES:
            raise _refuse(
                self.archive,
                shortened(member.name),
                f"comes first, where the snapshot's manifest ({MANIFEST_NAME}) belongs",
            )
        if member.size > MANIFEST_MAX_BYTES:
            raise _refuse(self.archive, MANIFEST_NAME, manifest_too_large(member.size))
        source = tar.extractfile(member)
        assert source is not None  # a regular file always has content
        data = source.read(member.size)
        self.recorded, self.allowed = _recorded_members(self.archive, data)
        return data

    def _check_recorded(self, name: str, member: tarfile.TarInfo) -> None:
        """A file must have the size its manifest entry records, within the manifest's
        total; a link the recorded target."""
        assert self.recorded is not None
        entry = self.recorded.get(name)
        if member.isdir():
            return
        kind = "link" if member.issym() else "file"
        if entry is None or entry.type != kind:
            raise _refuse(self.archive, name, f"is a {kind} the manifest does not list")
        if member.issym():
            if entry.target != member.linkname:
                raise _refuse(self.archive, name, "links elsewhere than the manifest records")
            return
        if member.size != entry.size:
            raise _refuse(
                self.archive,
                name,
                f"has size {member.size}, the manifest records {entry.size}",
            )
        if self.written + member.size > self.allowed:
            raise _refuse(
                self.archive,
                name,
                f"would take the files past the manifest's total of {self.allowed} bytes",
            )
        self.written += member.size

    def place(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self._screen(member)
        manifest = self._manifest(tar, member) if self.recorded is None else None
        name = self._checked_name(member)
        parent, _, leaf = name.rpartition("/")
        target = member.linkname
        if member.issym() and (
            os.path.isabs(target) or leaves(os.path.normpath(os.path.join(parent, target)))
        ):
            raise _refuse(self.archive, name, f"is a link leaving the destination ({target})")
        if manifest is None:
            self._check_recorded(name, member)
        try:
            if manifest is not None:
                with new_file(self._open_folder(parent), leaf, 0o600) as out:
                    out.write(manifest)
                    os.fchmod(out.fileno(), _file_mode(member.mode, self.read_only))
                self.not_folders[name] = "file"
            elif member.isdir():
                os.close(_folder(self.root, name, self.made))
            elif member.issym():
                os.symlink(target, leaf, dir_fd=self._open_folder(parent))
                self.not_folders[name] = "symbolic link"
            else:
                _write_member(tar, member, self._open_folder(parent), leaf, self.read_only)
                self.not_folders[name] = "file"
        except OSError as e:
            raise DestinationError(self.dest, e) from e

    def check_complete(self) -> None:
        if self.recorded is None:
            raise _refuse(self.archive, MANIFEST_NAME, "is missing: the archive holds nothing")

    def check_links(self) -> None:
        """Chains of links can leave the destination although each one looks inside. Files
        need no look: they lie in folders this extraction made, never beneath a link."""
        real_root = os.path.realpath(f"/proc/self/fd/{self.root}")
        for name, kind in self.not_folders.items():
            if kind == "file":
                continue
            resolved = os.path.realpath(os.path.join(real_root, name))
            if not is_within(real_root, resolved):
                raise _refuse(self.archive, name, "is a link that resolves outside the destination")


def _extract_members(source: HashingSource, dest: Path, root: int, read_only: bool) -> set[str]:
    """Every member into the empty folder open as ``root``; returns the folders made."""
    extraction = _Extraction(source.archive, dest, root, read_only)
    try:
        with tar_members(source) as tar:
            for member in tar:
                extraction.place(tar, member)
    finally:
        extraction.close()
    extraction.check_complete()
    extraction.check_links()
    return extraction.made


def _remove(parent: int, name: str) -> None:
    """The temporary folder, removed without recursion; a failure leaves debris that the
    node's clean-up removes, never hides the error that ended the extraction."""
    with suppress(OSError):
        remove_tree(parent, name)


def _set_folder_modes(root: int, made: set[str], mode: int) -> None:
    """Folders get their final mode once every member is in: a 0555 one takes no more."""
    for rel in made:
        os.chmod(rel, mode, dir_fd=root)  # our own folders, and no link among them
    os.fchmod(root, mode)


def extract_at(
    archive: Path, dest: Path, parent: int, expected_sha256: str | None, *, read_only: bool
) -> None:
    """Extract ``archive`` into the new folder ``dest``, whose parent folder is open as
    ``parent``: every file operation goes through that fd (``dest`` only names it in
    messages), never through a link, all or nothing.

    The archive is opened once and hashed as it is decompressed and extracted into a private
    temporary folder beside ``dest``, and read to its end; only when its sha256 is
    ``expected_sha256`` (unless None) is the temporary folder renamed to ``dest``, else it is
    removed. So a file swapped in meanwhile cannot place unverified content under ``dest``.
    The manifest comes first, read bounded; no file may be larger than its manifest entry
    or take the files past the manifest's total. Members with absolute paths, ``..``, links
    leaving the destination, sparse files, hard links, devices or FIFOs, and members deeper
    than MAX_DEPTH or PATH_MAX are refused before a byte of them is written.
    ``read_only``: files 0444/0555 and folders 0555 instead of 0644/0755.
    Writing errors are DestinationErrors; the archive is blamed only when it cannot be read.
    """
    try:
        os.stat(dest.name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        pass
    else:
        raise SnapshotError(f"cannot extract into {dest}: it already exists")
    tmp = f".{dest.name}.{os.urandom(6).hex()}.tmp"
    try:
        os.mkdir(tmp, 0o700, dir_fd=parent)
    except OSError as e:
        raise DestinationError(dest, e) from e
    try:
        root = os.open(tmp, FOLDER, dir_fd=parent)
        try:
            with open_archive(archive) as source:
                made = _extract_members(source, dest, root, read_only)
                actual = source.read_to_end()
            if expected_sha256 is not None and actual != expected_sha256.lower():
                raise SnapshotError(
                    f"{archive} has sha256 {actual}, expected {expected_sha256}: the archive "
                    "is damaged or not the recorded one; do not use it"
                )
            _set_folder_modes(root, made, 0o555 if read_only else 0o755)
        finally:
            os.close(root)
        os.rename(tmp, dest.name, src_dir_fd=parent, dst_dir_fd=parent)
    except OSError as e:
        _remove(parent, tmp)
        raise DestinationError(dest, e) from e
    except BaseException:
        _remove(parent, tmp)
        raise


def extract(archive: Path, dest: Path, expected_sha256: str | None) -> None:
    """``extract_at`` into the new folder ``dest`` (its parents made if missing), writable."""
    dest = Path(os.path.abspath(dest))
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        parent = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise DestinationError(dest, e) from e
    try:
        extract_at(Path(archive), dest, parent, expected_sha256, read_only=False)
    finally:
        os.close(parent)
