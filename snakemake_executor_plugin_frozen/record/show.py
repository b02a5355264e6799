"""``show``: a snapshot's manifest in readable form, its file list, or one file's content."""

from __future__ import annotations

import base64
import difflib
import hashlib

from snakemake_executor_plugin_frozen.shellwords import visible
from snakemake_executor_plugin_frozen.snapshot import SnapshotError
from snakemake_executor_plugin_frozen.snapshot import manifest as recorded
from snakemake_executor_plugin_frozen.snapshot.archive import read_member
from snakemake_executor_plugin_frozen.snapshot.entries import LINK

from . import environment
from .errors import RecordError
from .snapshots import Snapshot
from .table import render, size


def _words(values: tuple[str, ...] | None) -> str:
    return " ".join(map(str, values)) if values else "none"


def _diff_summary(git: recorded.GitRecord) -> str:
    if git.diff_encoding != "utf-8":
        return "changes since the commit, as a binary diff (--json: git.diff, base64)"
    changed = sum(1 for line in (git.diff or "").splitlines() if line.startswith("diff --git "))
    return f"{changed} file(s) changed since the commit (--json: git.diff)"


def _git_lines(git: recorded.GitRecord | None) -> list[tuple[str, str]]:
    if not git:
        return [("git", "none (the code root is not in a git repository)")]
    state = "dirty" if git.dirty else "clean"
    lines = [("git", f"{git.commit or '(no commit yet)'} on {git.branch or '-'}, {state}")]
    if git.remote:
        lines.append(("remote", git.remote))
    if git.untracked:
        lines.append(("untracked", _words(git.untracked)))
    if git.diff:
        lines.append(("uncommitted", _diff_summary(git)))
    return lines


def _selection_lines(s: recorded.SelectionRecord) -> list[tuple[str, str]]:
    size_limit = "none" if s.skip_size_check else f"{s.max_size_mb} MB"
    return [
        ("selection", f"{s.discovery}; size limit {size_limit}"),
        ("  excluded", _words(s.exclude_folders)),
        ("  suffixes", _words(s.code_suffixes)),
        ("  exclude", _words((*(s.exclude or ()), *(s.frozenignore or ())))),
        ("  explicit", f"{len(s.explicit or ())} file(s) named by the workflow"),
        ("  added back", _words(s.added_back)),
        ("  data", f"{s.data_excluded or 0} output/log path(s) left out"),
    ]


def _environment_lines(env: recorded.EnvironmentRecord) -> list[tuple[str, str]]:
    python, tool = env.python or recorded.PythonRecord(), env.tool or recorded.ToolRecord()
    lines = [
        ("python", f"{python.version} ({python.implementation}) {python.executable}"),
        ("snakemake", f"{env.snakemake}, {tool.name} {tool.version}"),
        ("packages", f"{len(env.distributions or {})} distributions (--json lists them)"),
    ]
    lines += [("program", f"{name}: {where}") for name, where in environment.programs(env).items()]
    lines += [
        ("conda env", f"{path} {digest}") for path, digest in environment.conda_envs(env).items()
    ]
    return lines


def describe(snapshot: Snapshot) -> str:
    m = snapshot.manifest
    lines = [
        ("snapshot", m.id),
        ("created", f"{m.created} by {m.user} on {m.host}"),
        ("code root", str(m.root)),
    ]
    if snapshot.prefix:
        lines.append(
            (
                "layout",
                f"with files from outside it: the code root is {snapshot.prefix}/ in the archive",
            )
        )
    lines.append(("files", f"{m.file_count} ({size(m.bytes or 0)})"))
    if snapshot.archive is not None:
        archive_size = f" ({size(m.archive_bytes)})" if m.archive_bytes is not None else ""
        lines.append(("archive", f"{snapshot.archive}{archive_size}"))
    else:
        lines.append(("archive", "missing"))
    lines += _git_lines(m.git)
    selection = m.selection or recorded.SelectionRecord()
    lines += _selection_lines(selection)
    lines += _environment_lines(m.environment)
    for warning in selection.warnings or ():
        lines.append(("warning", warning))
    width = max(len(key) for key, _ in lines)
    return "\n".join(f"{key.ljust(width)}  {visible(str(value))}" for key, value in lines)


def files_table(snapshot: Snapshot) -> str:
    rows = []
    for f in snapshot.manifest.files:
        if f.type == LINK:
            rows.append((f.path + " -> " + (f.target or ""), "", "link"))
        else:
            rows.append((f.path, size(f.size or 0), f.mode_text or ""))
    return render(("PATH", "SIZE", "MODE"), rows, right="SIZE")


def entry(snapshot: Snapshot, path: str) -> recorded.FileRecord:
    files = snapshot.files()
    if path in files:
        return files[path]
    close = difflib.get_close_matches(path, list(files), n=3)
    hint = (
        f"; did you mean {', '.join(map(visible, close))}?"
        if close
        else " (show --files lists them)"
    )
    raise RecordError(f"snapshot {snapshot.id[:12]} holds no file {path}{hint}", exit_code=1)


def content(snapshot: Snapshot, path: str) -> bytes:
    """The bytes of ``path`` (relative to the code root, as the manifest names it), from an
    archive whose sha256 is the recorded one, checked against the manifest's sha256."""
    found = entry(snapshot, path)
    if found.type == LINK:
        raise RecordError(f"{path} is a symbolic link to {found.target} in the snapshot")
    archive = snapshot.check_archive()
    try:
        data = read_member(archive, snapshot.member_name(path))
    except SnapshotError as e:
        raise RecordError(str(e), exit_code=1) from e
    if hashlib.sha256(data).hexdigest() != found.sha256:
        raise RecordError(
            f"{path} in {archive} does not have the sha256 the manifest records: the archive is "
            "damaged or not this snapshot's",
            exit_code=1,
        )
    return data


def content_json(snapshot: Snapshot, path: str, data: bytes) -> dict:
    try:
        text, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(data).decode(), "base64"
    found = entry(snapshot, path)
    return {
        "id": snapshot.id,
        "path": path,
        "size": len(data),
        "mode": found.mode_text,
        "sha256": found.sha256,
        "encoding": encoding,
        "content": text,
    }
