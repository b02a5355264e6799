"""The provenance record of a snapshot: what it holds, where and how it was taken.

The same record is stored twice: inside the archive as ``.frozen/manifest.json`` (the first
member) and in the store as ``<id>.json``, which adds the archive's own sha256 and size.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from .archive import MANIFEST_NAME, read_member
from .entries import LINK, Entry
from .git import GitBatch, diff_limited
from .model import SelectionSettings, SnapshotError
from .rules import leaves
from .select import ADDED_BACK, EXPLICIT, Selection, normalise_suffixes

FORMAT = 1
PLUGIN = "snakemake-executor-plugin-frozen"
DATA_SHOWN = 10  # data paths listed in the record; the count covers them all
# Top-level keys a caller may add to a new manifest (see ``record/environment.py``).
ENVIRONMENT_EXTRA_KEYS = ("programs", "conda_envs")
_encode = json.JSONEncoder().encode


def _text(output: bytes | None) -> str | None:
    """git's answer as text; None for no answer or an empty one."""
    if output is None:
        return None
    return output.decode(errors="replace").strip() or None


def _without_credentials(url: str | None) -> str | None:
    if not url:
        return url
    from urllib.parse import urlsplit, urlunsplit  # here: only a new manifest needs it

    parts = urlsplit(url)
    if "@" not in parts.netloc or not parts.scheme:
        return url  # scp-like "user@host:path" names an account, not a secret
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


# One part per path, each named the same way whatever the user's configuration (renames,
# relative paths, prefixes, path quoting), so that ``diff_limited`` can read its path.
_DIFF = [
    *("-c", "core.quotePath=true", "diff", "HEAD", "--binary", "--no-color", "--no-ext-diff"),
    *("--no-textconv", "--no-renames", "--no-relative", "--src-prefix=a/", "--dst-prefix=b/"),
]


def start_git_record(root: str, excludes: list[str], spool: Path) -> GitBatch:
    """The git commands of ``git_record``, started now: they run while the files are read
    (``spool``: see ``GitBatch``)."""
    commands = [
        ["rev-parse", "--show-prefix", "--verify", "-q", "HEAD^{commit}"],
        [*_DIFF, "--", ".", *excludes],
        ["config", "--get", "remote.origin.url"],
        ["symbolic-ref", "-q", "--short", "HEAD"],
    ]
    return GitBatch(commands, root, spool)


def git_record(started: GitBatch, root: str, untracked: list[str], paths: Iterable[str]) -> dict:
    """Commit, branch, remote, dirty flag, the uncommitted diff and the untracked files,
    from the commands of ``start_git_record``.

    The diff (``git diff HEAD --binary``, limited to the code root) covers only ``paths``
    (root-relative: the packed files and the selected ones deleted from the tree): a
    credential left out of the archive, or a file excluded by ``--exclude`` or
    ``.frozenignore``, must not be recorded through its diff either. Git is asked for the
    code root's whole diff less the hard-excluded folders, whose tracked data could dwarf
    the code (a list of every path would not fit a command line), and the parts of other
    files are dropped. It is stored as text when it is valid UTF-8 and as base64 otherwise
    (``diff_encoding``). Without any commit there is nothing to diff against: every file
    is uncommitted and the archive itself is the record.
    """
    commit_out, diff_out, remote, branch = (
        run.stdout if run.returncode == 0 else None for run in started.wait()
    )
    # ``--show-prefix`` first (the code root below the top, maybe empty), then the commit.
    prefix, _, commit_out = (commit_out or b"").rstrip(b"\n").rpartition(b"\n")
    commit = _text(commit_out)
    diff = b""
    if commit:
        if diff_out is None:
            raise SnapshotError(f"git diff HEAD failed in {root}; cannot record the changes")
        diff = diff_limited(diff_out, {prefix + os.fsencode(path) for path in paths})
    try:
        diff_text, encoding = diff.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        import base64

        diff_text, encoding = base64.b64encode(diff).decode(), "base64"
    return {
        "commit": commit,
        "branch": _text(branch),
        "remote": _without_credentials(_text(remote)),
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
    import platform
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


def environment_fields(extra: Mapping[str, object] | None) -> dict[str, object]:
    """The caller's environment record for the manifest's top level, checked: only the
    ``ENVIRONMENT_EXTRA_KEYS``, each value encodable as JSON."""
    fields = dict(extra or {})
    unknown = sorted(set(fields) - set(ENVIRONMENT_EXTRA_KEYS))
    if unknown:
        raise SnapshotError(
            f"environment_extra may only hold {', '.join(ENVIRONMENT_EXTRA_KEYS)}, not "
            f"{', '.join(unknown)}"
        )
    for key, value in fields.items():
        try:
            _encode(value)
        except (TypeError, ValueError) as e:
            raise SnapshotError(f"environment_extra[{key!r}] is not JSON: {e}") from None
    return fields


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return str(os.getuid())


def _file_line(entry: Entry, digests: dict[str, str]) -> str:
    """The JSON record of one entry (built here, not by ``json``: thousands per pack)."""
    path = _encode(entry.path)
    if entry.kind == LINK:
        return f'{{"path": {path}, "type": "{LINK}", "target": {_encode(entry.target)}}}'
    line = (
        f'{{"path": {path}, "type": "{entry.kind}", "size": {entry.size}, '
        f'"mode": "{entry.mode:o}", "sha256": "{digests[entry.path]}"'
    )
    if leaves(entry.path):
        line += f', "original": {_encode(entry.source)}'  # named explicitly, outside the root
    if entry.outside:
        line += f', "link_to": {_encode(entry.outside)}'  # a link out of the root, as content
    return line + "}"


def _diffed(selection: Selection, entries: list[Entry]) -> set[str]:
    """The paths whose diff the record holds: the packed ones, and the selected ones that
    are gone from the tree (their deletion is the change; the diff shows only committed
    content). Not a selected path that exists but was not packed (a folder, a pipe)."""
    packed = {e.path for e in entries}
    root = selection.root
    return packed | {
        p
        for p in selection.paths
        if p not in packed and not leaves(p) and not os.path.lexists(f"{root}/{p}")
    }


def build_manifest(
    snapshot_id: str,
    selection: Selection,
    settings: SelectionSettings,
    store: Path,
    entries: list[Entry],
    digests: dict[str, str],
    warnings: tuple[str, ...],
    prefix: str,
    git: GitBatch | None,
    extra: Mapping[str, object] | None = None,
) -> bytes:
    """The manifest, encoded (``dumps``); ``git``: the started ``start_git_record``, None
    outside git; ``extra``: checked ``environment_fields``, recorded after the Python
    environment (the id does not depend on them: it is given)."""
    # Imported here, as the other modules only a new manifest needs: reading one, or a
    # pack of a stored snapshot, does without them.
    import socket
    from datetime import UTC, datetime

    found = selection.discovery
    diffed = _diffed(selection, entries) if git is not None else ()
    fields = {
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
        "git": None
        if git is None
        else git_record(git, selection.root, selection.untracked, diffed),
        **environment(),
        **(extra or {}),
    }
    return dumps(fields, [_file_line(e, digests) for e in entries])


def dumps(fields: dict, files: list[str]) -> bytes:
    """JSON with one top-level key per line (``fields``, then ``files``: the encoded file
    records) and one file per line: readable, greppable and diffable line by line, and
    written by the C encoder (``indent`` would fall back to the slow pure-Python one)."""
    lines = [f"{_encode(key)}: {_encode(value)}" for key, value in fields.items()]
    lines.append('"files": [\n' + ",\n".join(files) + "\n]")
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode()


# Added by the store to its record of the archive's manifest: not in the archive's copy.
STORE_ONLY_KEYS = ("archive_sha256", "archive_bytes")


def record_bytes(manifest: bytes, archive_sha256: str, archive_bytes: int) -> bytes:
    """The store's record: the encoded ``manifest`` with the archive's sha256 and size
    as two more top-level keys."""
    tail = f',\n"archive_sha256": "{archive_sha256}",\n"archive_bytes": {archive_bytes}\n}}\n'
    return manifest.removesuffix(b"\n}\n") + tail.encode()


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
