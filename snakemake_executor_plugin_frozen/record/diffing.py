"""``diff``: what differs between two snapshots (or a snapshot and the live tree): files
added, removed and changed (content by sha256, mode, type, link target), the recorded
environment, and with ``patch`` a unified diff of the changed text files."""

from __future__ import annotations

import difflib
import hashlib
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from snakemake_executor_plugin_frozen.shellwords import visible
from snakemake_executor_plugin_frozen.snapshot import SnapshotError, extract
from snakemake_executor_plugin_frozen.snapshot.manifest import FileRecord

from . import environment
from .confine import within
from .errors import RecordError
from .history import History
from .ids import SHORT
from .layout import Layout
from .live import live_snapshot
from .snapshots import Snapshot, SnapshotStore, open_snapshot

_COMPARED = ("type", "mode", "sha256", "target")
_CHANGE_NAMES = {"type": "type", "mode": "mode", "sha256": "content", "target": "target"}


@dataclass(frozen=True)
class FileChange:
    path: str
    changes: list[str]  # "content", "mode", "type", "target"
    a: dict
    b: dict


@dataclass
class Difference:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[FileChange] = field(default_factory=list)
    environment: list[environment.Change] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed or self.environment)


def _described(f: FileRecord) -> dict:
    fields = f.as_json()
    return {k: fields[k] for k in ("type", "mode", "size", "sha256", "target") if k in fields}


def compare(a: Snapshot, b: Snapshot) -> Difference:
    left, right = a.files(), b.files()
    difference = Difference(
        added=sorted(right.keys() - left.keys()),
        removed=sorted(left.keys() - right.keys()),
        environment=environment.compare(a.manifest.environment, b.manifest.environment),
    )
    for path in sorted(left.keys() & right.keys()):
        old, new = left[path], right[path]
        changes = [_CHANGE_NAMES[k] for k in _COMPARED if getattr(old, k) != getattr(new, k)]
        if changes:
            difference.changed.append(FileChange(path, changes, _described(old), _described(new)))
    return difference


class _Extracted:
    """A snapshot's files, extracted once into a temporary folder when first read."""

    def __init__(self, snapshot: Snapshot, scratch: Path) -> None:
        self.snapshot = snapshot
        self.dest = scratch / snapshot.id
        self.ready = False

    def read(self, path: str) -> bytes:
        if not self.ready:
            archive = self.snapshot.require_archive()
            try:
                extract(archive, self.dest, self.snapshot.archive_sha256)
            except SnapshotError as e:
                raise RecordError(str(e)) from e
            self.ready = True
        member = within(self.dest / self.snapshot.member_name(path), self.dest)
        if member is None:  # a manifest naming ../x would read beside the extraction
            raise RecordError(
                f"{path} of {self.snapshot.origin} lies outside the snapshot: its manifest is "
                "not to be trusted (snakemake-frozen verify tells more)"
            )
        data = member.read_bytes()
        if hashlib.sha256(data).hexdigest() != self.snapshot.files()[path].sha256:
            raise RecordError(f"{path} of {self.snapshot.origin} is not what its manifest records")
        return data


def _text_lines(data: bytes) -> list[str] | None:
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        return None


def _file_patch(path: str, old: bytes, new: bytes) -> str:
    path = visible(path)  # the headers are for people; the lines are the files' own
    old_lines, new_lines = _text_lines(old), _text_lines(new)
    if old_lines is None or new_lines is None:
        return f"Binary files a/{path} and b/{path} differ\n"
    lines = difflib.unified_diff(old_lines, new_lines, f"a/{path}", f"b/{path}")
    # A last line without its line break would run into the next header.
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def patch(a: Snapshot, b: Snapshot, difference: Difference) -> str:
    """The unified diff of every changed pair of regular files whose content differs."""
    with tempfile.TemporaryDirectory(prefix="snakemake-frozen-diff-") as scratch:
        left, right = _Extracted(a, Path(scratch) / "a"), _Extracted(b, Path(scratch) / "b")
        parts = [
            _file_patch(change.path, left.read(change.path), right.read(change.path))
            for change in difference.changed
            if "content" in change.changes
            and change.a.get("type") == change.b.get("type") == "file"
        ]
    return "".join(parts)


def as_json(found: Compared) -> dict:
    labels, difference, patch_text = found.labels, found.difference, found.patch
    out = {
        "a": labels[0],
        "b": labels[1],
        "identical": difference.identical,
        "added": difference.added,
        "removed": difference.removed,
        "changed": [asdict(c) for c in difference.changed],
        "environment": [asdict(c) for c in difference.environment],
    }
    if patch_text is not None:
        out["patch"] = patch_text
    return out


def _change_detail(change: FileChange) -> str:
    details = []
    if "mode" in change.changes:
        details.append(f"mode {change.a.get('mode')} -> {change.b.get('mode')}")
    if "type" in change.changes:
        details.append(f"{change.a.get('type')} -> {change.b.get('type')}")
    if "target" in change.changes and "type" not in change.changes:
        details.append(f"link {change.a.get('target')} -> {change.b.get('target')}")
    return f" ({', '.join(details)})" if details else ""


def as_text(found: Compared) -> str:
    """git's --name-status letters: A added, D removed, M changed, T type changed."""
    difference = found.difference
    if difference.identical:
        return ""
    lines = [f"--- a {found.labels[0]['label']}", f"+++ b {found.labels[1]['label']}"]
    lines += [f"A  {path}" for path in difference.added]
    lines += [f"D  {path}" for path in difference.removed]
    for change in difference.changed:
        letter = "T" if "type" in change.changes else "M"
        lines.append(f"{letter}  {change.path}{_change_detail(change)}")
    for change in difference.environment:
        lines.append(
            f"E  {change.what} {change.name}: {change.a or '(none)'} -> {change.b or '(none)'}"
        )
    # Names, targets and recorded values may hold what a terminal acts on: one line each.
    return "\n".join(visible(line) for line in lines)


LIVE = "live"  # the reference that names the live tree


@dataclass
class Compared:
    """What ``diff A B`` found: each side's label, the difference, the patch (if asked)."""

    labels: tuple[dict, dict]
    difference: Difference
    patch: str | None


def _side(reference: str, store: SnapshotStore) -> Snapshot | None:
    return None if reference == LIVE else open_snapshot(reference, store)


def _label(reference: str, snapshot: Snapshot) -> dict:
    if reference == LIVE:
        label = f"live {snapshot.manifest.root}"
    else:
        label = f"{snapshot.id[:SHORT]} ({snapshot.manifest.created})"
    return {"reference": reference, "id": snapshot.id, "label": label}


def diff(layout: Layout, reference_a: str, reference_b: str, with_patch: bool) -> Compared:
    """Compare two snapshots of the working directory's store (an id, a prefix, an archive)
    or one with the live tree (``LIVE``), packed as the snapshot was, the workflow's outputs
    left out as data."""
    store = SnapshotStore(layout.store)
    a, b = _side(reference_a, store), _side(reference_b, store)
    with tempfile.TemporaryDirectory(prefix="snakemake-frozen-live-") as scratch:
        if a is None or b is None:
            base = a or b
            if base is None:
                raise RecordError("diff needs a snapshot on at least one side, not live twice")
            # The workflow's outputs are data, not code, however a live tree's git sees them.
            outputs = [
                layout.workdir / o
                for job in History.read(layout.journal).jobs
                for o in job.outputs()
            ]
            now = live_snapshot(base, outputs, Path(scratch))
            a, b = a or now, b or now
        difference = compare(a, b)
        patch_text = patch(a, b, difference) if with_patch else None
    return Compared((_label(reference_a, a), _label(reference_b, b)), difference, patch_text)
