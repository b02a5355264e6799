"""The provenance record of a snapshot: what it holds, where and how it was taken.

The same record is stored twice: inside the archive as ``.frozen/manifest.json`` (the first
member) and in the store as ``<id>.json``, which adds the archive's own sha256 and size.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import platform
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .archive import MANIFEST_NAME, read_member
from .entries import LINK, Entry
from .git import exclude_pathspecs, try_git
from .model import SelectionSettings, SnapshotError
from .rules import leaves
from .select import ADDED_BACK, EXPLICIT, Selection, normalise_suffixes

FORMAT = 1
PLUGIN = "snakemake-executor-plugin-frozen"
DATA_SHOWN = 10  # data paths listed in the record; the count covers them all


def _text(output: bytes | None) -> str | None:
    """git's answer as text; None for no answer or an empty one."""
    if output is None:
        return None
    return output.decode(errors="replace").strip() or None


def _without_credentials(url: str | None) -> str | None:
    if not url:
        return url
    parts = urlsplit(url)
    if "@" not in parts.netloc or not parts.scheme:
        return url  # scp-like "user@host:path" names an account, not a secret
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def git_record(root: str, excludes: list[str], untracked: list[str]) -> dict:
    """Commit, branch, remote, dirty flag, the uncommitted diff and the untracked files.

    The diff (``git diff HEAD --binary``, limited to the code root) leaves out the
    hard-excluded folders (``excludes``), whose tracked data could dwarf the code. It is
    stored as text when it is valid UTF-8 and as base64 otherwise (``diff_encoding``).
    Without any commit there is nothing to diff against: every file is uncommitted and the
    archive itself is the record.
    """
    commit = _text(try_git(["rev-parse", "--verify", "-q", "HEAD^{commit}"], root))
    diff = b""
    if commit:
        command = ["diff", "HEAD", "--binary", "--no-color", "--no-ext-diff", "--no-textconv"]
        output = try_git([*command, "--", ".", *excludes], root)
        if output is None:
            raise SnapshotError(f"git diff HEAD failed in {root}; cannot record the changes")
        diff = output
    try:
        diff_text, encoding = diff.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        diff_text, encoding = base64.b64encode(diff).decode(), "base64"
    remote = _text(try_git(["config", "--get", "remote.origin.url"], root))
    return {
        "commit": commit,
        "branch": _text(try_git(["symbolic-ref", "-q", "--short", "HEAD"], root)),
        "remote": _without_credentials(remote),
        "dirty": commit is None or bool(diff) or bool(untracked),
        "diff": diff_text,
        "diff_encoding": encoding,
        "untracked": sorted(untracked),
    }


def _name_version(dist) -> tuple[str | None, str | None]:
    # Only the two headers are needed: reading them directly is several times faster than
    # ``dist.metadata``, which parses the whole file with the email parser.
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    headers = {}
    for line in text.splitlines():
        if not line:
            break
        key, _, value = line.partition(":")
        if key in ("Name", "Version"):
            headers[key] = value.strip()
    return headers.get("Name"), headers.get("Version")


def environment() -> dict:
    """Python, Snakemake and every installed distribution, without importing any of them."""
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    distributions: dict[str, str] = {}
    for dist in metadata.distributions():
        name, found = _name_version(dist)
        if name and found and name not in distributions:  # the first on sys.path wins
            distributions[name] = found
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "platform": platform.platform(),
        },
        "snakemake": version("snakemake"),
        "tool": {"name": PLUGIN, "version": version(PLUGIN)},
        "distributions": dict(sorted(distributions.items(), key=lambda kv: kv[0].lower())),
    }


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return str(os.getuid())


def _file_record(entry: Entry, digests: dict[str, str]) -> dict:
    if entry.kind == LINK:
        return {"path": entry.path, "type": LINK, "target": entry.target}
    record = {
        "path": entry.path,
        "type": entry.kind,
        "size": entry.size,
        "mode": f"{entry.mode:o}",
        "sha256": digests[entry.path],
    }
    if leaves(entry.path):
        record["original"] = entry.source  # named explicitly, outside the code root
    if entry.outside:
        record["link_to"] = entry.outside  # stored as content: the link left the code root
    return record


def build_manifest(
    snapshot_id: str,
    selection: Selection,
    settings: SelectionSettings,
    store: Path,
    entries: list[Entry],
    digests: dict[str, str],
    warnings: tuple[str, ...],
    prefix: str,
) -> dict:
    found = selection.discovery
    return {
        "format": FORMAT,
        "id": snapshot_id,
        "created": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "user": _user(),
        "host": socket.gethostname(),
        "root": selection.root,
        "code_root_in_archive": prefix,
        "file_count": len(entries),
        "bytes": sum(e.size for e in entries),
        "selection": {
            "discovery": found.mode,
            "exclude_folders": list(settings.exclude_folders),
            "code_suffixes": list(normalise_suffixes(settings.code_suffixes)),
            "exclude": list(settings.exclude),
            "frozenignore": selection.frozenignore,
            "max_size_mb": settings.max_size_mb,
            "skip_size_check": settings.skip_size_check,
            "extra_excluded_dirs": [str(d) for d in settings.extra_excluded_dirs],
            "store": str(store),
            "explicit": sorted(p for p, how in selection.origin.items() if how == EXPLICIT),
            "added_back": sorted(p for p, how in selection.origin.items() if how == ADDED_BACK),
            "data_excluded": len(selection.data_excluded),
            "data_excluded_paths": selection.data_excluded[:DATA_SHOWN],
            "warnings": list(warnings),
        },
        "git": git_record(
            selection.root,
            exclude_pathspecs(selection.rules.folder_names, selection.rules.excluded_dirs),
            selection.untracked,
        )
        if found.mode == "git"
        else None,
        **environment(),
        "files": [_file_record(e, digests) for e in entries],
    }


def dumps(manifest: dict) -> bytes:
    """JSON with one top-level key per line and one file per line: readable, greppable and
    diffable line by line, and written by the C encoder (``indent`` would fall back to the
    slow pure-Python one)."""
    encode = json.JSONEncoder().encode
    lines = [
        f"{encode(key)}: " + ("[\n" + ",\n".join(map(encode, value)) + "\n]")
        if key == "files"
        else f"{encode(key)}: {encode(value)}"
        for key, value in manifest.items()
    ]
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode()


def read_manifest(path_or_archive: Path) -> dict:
    """The manifest of a snapshot, from ``<id>.json``, ``<id>.tar.zst`` or an extracted folder."""
    path = Path(path_or_archive)
    try:
        if path.is_dir():
            data = (path / MANIFEST_NAME).read_bytes()
        elif path.suffix == ".json":
            data = path.read_bytes()
        else:
            data = read_member(path, MANIFEST_NAME)
        manifest = json.loads(data)
    except OSError as e:
        raise SnapshotError(f"cannot read the manifest of {path}: {e.strerror}") from e
    except ValueError as e:
        raise SnapshotError(f"the manifest of {path} is not valid JSON: {e}") from e
    if not isinstance(manifest, dict) or "id" not in manifest:
        raise SnapshotError(f"{path} holds no snakemake-frozen manifest")
    return manifest
