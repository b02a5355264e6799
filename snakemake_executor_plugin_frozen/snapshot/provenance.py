"""What a new manifest records besides the files: the selection as applied, the git state
and diff, the environment, who and where (``manifest.py`` is the record itself).

Only a new manifest needs this module's imports: reading one, or a pack of a stored
snapshot, does without them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from .entries import LINK, Entry
from .git import GitBatch, diff_limited
from .manifest import (
    ENVIRONMENT_EXTRA_KEYS,
    PLUGIN,
    EnvironmentRecord,
    FileRecord,
    GitRecord,
    PythonRecord,
    SelectionRecord,
    ToolRecord,
)
from .manifest_reader import environment_parts
from .model import SelectionSettings, SnapshotError
from .rules import leaves
from .select import ADDED_BACK, EXPLICIT, Selection, normalise_suffixes

DATA_SHOWN = 10  # data paths listed in the record; the count covers them all


def _text(output: bytes | None) -> str | None:
    """git's answer as text; None for no answer or an empty one."""
    if output is None:
        return None
    return output.decode(errors="replace").strip() or None


def _without_credentials(url: str | None) -> str | None:
    if not url:
        return url
    from urllib.parse import urlsplit, urlunsplit  # here: only a git record needs it

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


def git_record(
    started: GitBatch, root: str, untracked: list[str], paths: Iterable[str]
) -> GitRecord:
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
    return GitRecord(
        commit=commit,
        branch=_text(branch),
        remote=_without_credentials(_text(remote)),
        dirty=commit is None or bool(diff) or bool(untracked),
        diff=diff_text,
        diff_encoding=encoding,
        untracked=tuple(sorted(untracked)),
    )


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


def environment(extra: Mapping[str, object] | None = None) -> EnvironmentRecord:
    """Python, Snakemake and every installed distribution, without importing any of them;
    and the ``extra`` checked by ``environment_fields``."""
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
    return EnvironmentRecord(
        python=PythonRecord(
            version=platform.python_version(),
            implementation=platform.python_implementation(),
            executable=sys.executable,
            platform=platform.platform(),
        ),
        snakemake=version("snakemake"),
        tool=ToolRecord(name=PLUGIN, version=version(PLUGIN)),
        distributions=dict(sorted(distributions.items(), key=lambda kv: kv[0].lower())),
        **(extra or {}),
    )


def environment_fields(extra: Mapping[str, object] | None) -> dict[str, object]:
    """The caller's environment record (``programs``, ``conda_envs``: their JSON shape, as
    ``programs.environment_record`` gives it), checked: only the ``ENVIRONMENT_EXTRA_KEYS``,
    each value JSON of its shape; as the ``EnvironmentRecord`` fields."""
    import json

    fields = dict(extra or {})
    unknown = sorted(set(fields) - set(ENVIRONMENT_EXTRA_KEYS))
    if unknown:
        raise SnapshotError(
            f"environment_extra may only hold {', '.join(ENVIRONMENT_EXTRA_KEYS)}, not "
            f"{', '.join(unknown)}"
        )
    for key, value in fields.items():
        try:
            json.JSONEncoder().encode(value)
        except (TypeError, ValueError) as e:
            raise SnapshotError(f"environment_extra[{key!r}] is not JSON: {e}") from None
    try:
        return environment_parts(fields)
    except ValueError as e:
        raise SnapshotError(f"environment_extra is not an environment record: {e}") from None


def now() -> str:
    """The time a new manifest records: UTC, to the second ("2026-12-07T14:59:22Z")."""
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def host() -> str:
    import socket

    return socket.gethostname()


def user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return str(os.getuid())


def file_records(entries: list[Entry], digests: dict[str, str]) -> tuple[FileRecord, ...]:
    """The record of each entry, in the entries' (path) order."""
    records = []
    for e in entries:
        if e.kind == LINK:
            records.append(FileRecord(e.path, LINK, target=e.target))
        else:
            records.append(
                FileRecord(
                    e.path,
                    e.kind,
                    e.size,
                    e.mode,
                    digests[e.path],
                    None,
                    e.source if leaves(e.path) else None,  # named explicitly, outside the root
                    e.outside or None,  # a link out of the root, as content
                )
            )
    return tuple(records)


def diffed(selection: Selection, entries: list[Entry]) -> set[str]:
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


def selection_record(
    selection: Selection, settings: SelectionSettings, store: Path, warnings: Iterable[str]
) -> SelectionRecord:
    """The settings ``selection`` applied, what it found, and the pack's ``warnings``."""
    origin = selection.origin
    return SelectionRecord(
        discovery=selection.discovery.mode,
        exclude_folders=tuple(settings.exclude_folders),
        code_suffixes=tuple(normalise_suffixes(settings.code_suffixes)),
        exclude=tuple(settings.exclude),
        frozenignore=tuple(selection.frozenignore),
        max_size_mb=settings.max_size_mb,
        skip_size_check=settings.skip_size_check,
        extra_excluded_dirs=tuple(str(d) for d in settings.extra_excluded_dirs),
        store=str(store),
        explicit=tuple(sorted(p for p, how in origin.items() if how == EXPLICIT)),
        added_back=tuple(sorted(p for p, how in origin.items() if how == ADDED_BACK)),
        data_excluded=len(selection.data_excluded),
        data_excluded_paths=tuple(selection.data_excluded[:DATA_SHOWN]),
        warnings=tuple(warnings),
    )
