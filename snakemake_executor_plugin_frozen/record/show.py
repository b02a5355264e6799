"""``show``: a snapshot's manifest in readable form, its file list, or one file's content."""

from __future__ import annotations

import base64
import difflib
import hashlib

from snakemake_executor_plugin_frozen.shellwords import visible
from snakemake_executor_plugin_frozen.snapshot import SnapshotError
from snakemake_executor_plugin_frozen.snapshot.archive import read_member

from . import environment
from .errors import RecordError
from .snapshots import Snapshot
from .table import render, size

LINK = "link"


def _words(values: list) -> str:
    return " ".join(map(str, values)) if values else "none"


def _diff_summary(git: dict) -> str:
    if git.get("diff_encoding") != "utf-8":
        return "changes since the commit, as a binary diff (--json: git.diff, base64)"
    changed = sum(1 for line in git["diff"].splitlines() if line.startswith("diff --git "))
    return f"{changed} file(s) changed since the commit (--json: git.diff)"


def _git_lines(git: dict | None) -> list[tuple[str, str]]:
    if not git:
        return [("git", "none (the code root is not in a git repository)")]
    state = "dirty" if git.get("dirty") else "clean"
    lines = [
        ("git", f"{git.get('commit') or '(no commit yet)'} on {git.get('branch') or '-'}, {state}")
    ]
    if git.get("remote"):
        lines.append(("remote", git["remote"]))
    if git.get("untracked"):
        lines.append(("untracked", _words(git["untracked"])))
    if git.get("diff"):
        lines.append(("uncommitted", _diff_summary(git)))
    return lines


def _selection_lines(selection: dict) -> list[tuple[str, str]]:
    size_limit = (
        "none" if selection.get("skip_size_check") else f"{selection.get('max_size_mb')} MB"
    )
    return [
        ("selection", f"{selection.get('discovery')}; size limit {size_limit}"),
        ("  excluded", _words(selection.get("exclude_folders", []))),
        ("  suffixes", _words(selection.get("code_suffixes", []))),
        ("  exclude", _words(selection.get("exclude", []) + selection.get("frozenignore", []))),
        ("  explicit", f"{len(selection.get('explicit', []))} file(s) named by the workflow"),
        ("  added back", _words(selection.get("added_back", []))),
        ("  data", f"{selection.get('data_excluded', 0)} output/log path(s) left out"),
    ]


def _environment_lines(manifest: dict) -> list[tuple[str, str]]:
    python = manifest.get("python") or {}
    tool = manifest.get("tool") or {}
    lines = [
        (
            "python",
            f"{python.get('version')} ({python.get('implementation')}) {python.get('executable')}",
        ),
        ("snakemake", f"{manifest.get('snakemake')}, {tool.get('name')} {tool.get('version')}"),
        (
            "packages",
            f"{len(manifest.get('distributions') or {})} distributions (--json lists them)",
        ),
    ]
    lines += [
        ("program", f"{name}: {where}") for name, where in environment.programs(manifest).items()
    ]
    lines += [
        ("conda env", f"{path} {digest}")
        for path, digest in environment.conda_envs(manifest).items()
    ]
    return lines


def describe(snapshot: Snapshot) -> str:
    m = snapshot.manifest
    lines = [
        ("snapshot", m["id"]),
        ("created", f"{m.get('created')} by {m.get('user')} on {m.get('host')}"),
        ("code root", str(m.get("root"))),
    ]
    if snapshot.prefix:
        lines.append(
            (
                "layout",
                f"with files from outside it: the code root is {snapshot.prefix}/ in the archive",
            )
        )
    lines.append(("files", f"{m.get('file_count')} ({size(m.get('bytes', 0))})"))
    if snapshot.archive is not None:
        archive_size = f" ({size(m['archive_bytes'])})" if "archive_bytes" in m else ""
        lines.append(("archive", f"{snapshot.archive}{archive_size}"))
    else:
        lines.append(("archive", "missing"))
    lines += _git_lines(m.get("git"))
    lines += _selection_lines(m.get("selection") or {})
    lines += _environment_lines(m)
    for warning in (m.get("selection") or {}).get("warnings", []):
        lines.append(("warning", warning))
    width = max(len(key) for key, _ in lines)
    return "\n".join(f"{key.ljust(width)}  {visible(str(value))}" for key, value in lines)


def files_table(snapshot: Snapshot) -> str:
    rows = []
    for f in snapshot.manifest.get("files", []):
        if f.get("type") == LINK:
            rows.append((f["path"] + " -> " + f.get("target", ""), "", "link"))
        else:
            rows.append((f["path"], size(f.get("size", 0)), f.get("mode", "")))
    return render(("PATH", "SIZE", "MODE"), rows, right="SIZE")


def entry(snapshot: Snapshot, path: str) -> dict:
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
    if found.get("type") == LINK:
        raise RecordError(f"{path} is a symbolic link to {found.get('target')} in the snapshot")
    archive = snapshot.check_archive()
    try:
        data = read_member(archive, snapshot.member_name(path))
    except SnapshotError as e:
        raise RecordError(str(e), exit_code=1) from e
    if hashlib.sha256(data).hexdigest() != found.get("sha256"):
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
        "mode": found.get("mode"),
        "sha256": found.get("sha256"),
        "encoding": encoding,
        "content": text,
    }
