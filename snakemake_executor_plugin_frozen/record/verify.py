"""``verify``: stored archives against their recorded sha256 and manifests (every file's
sha256, mode and type inside), and the rule-log copies against the store."""

from __future__ import annotations

import os
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from snakemake_executor_plugin_frozen.rule_copies import independent_copy
from snakemake_executor_plugin_frozen.shellwords import visible
from snakemake_executor_plugin_frozen.snapshot import SnapshotError
from snakemake_executor_plugin_frozen.snapshot.archive import MANIFEST_MAX_BYTES, MANIFEST_NAME
from snakemake_executor_plugin_frozen.snapshot.earn import manifest_records
from snakemake_executor_plugin_frozen.snapshot.hashing import id_of
from snakemake_executor_plugin_frozen.snapshot.manifest import (
    FileRecord,
    Manifest,
    ManifestError,
)
from snakemake_executor_plugin_frozen.snapshot.manifest_reader import parse_manifest

from .confine import within
from .errors import RecordError
from .ids import SHORT
from .layout import Layout
from .members import Member, _zstd, decode_error, members
from .snapshots import ARCHIVE_SUFFIX, RECORD_SUFFIX, Snapshot, SnapshotStore, sha256_of

COPY_PREFIX = "code-"


@dataclass
class Damage:
    id: str
    path: str
    problem: str
    repaired_from: str = ""  # with --repair: the intact file it was put back from


@dataclass
class Report:
    snapshots: int = 0
    copies: int = 0
    damaged: list[Damage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(d.repaired_from for d in self.damaged)


class _Hashes:
    """sha256 by inode: a rule-log copy hard-linked to the store is read once."""

    def __init__(self) -> None:
        self.known: dict[tuple[int, int, int, int], str] = {}

    def of(self, path: Path) -> str:
        st = os.stat(path)
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in self.known:
            self.known[key] = sha256_of(path)
        return self.known[key]


def _first_member(archive: Path) -> tuple[bytes | None, str]:
    """The archive's first member, the manifest, read bounded (at most MANIFEST_MAX_BYTES,
    never a sparse member that would unfold to any size); else None and why."""
    with (
        open(archive, "rb") as raw,
        _zstd().ZstdFile(raw, "r") as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        info = tar.next()
        if info is None or info.name != MANIFEST_NAME or not info.isreg():
            return None, f"its first member is not its manifest ({MANIFEST_NAME})"
        if info.sparse is not None or any(k.startswith("GNU.sparse.") for k in info.pax_headers):
            return None, "its manifest member is a sparse file, which no snapshot holds"
        if info.size > MANIFEST_MAX_BYTES:
            return None, (
                f"its manifest member holds {info.size} bytes, more than a manifest may "
                f"({MANIFEST_MAX_BYTES}); not read"
            )
        source = tar.extractfile(info)
        assert source is not None  # a regular file always has content
        return source.read(info.size), ""


def _member_problems(snapshot: Snapshot, archive: Path) -> Iterator[str]:
    """What in the archive's members differs from the manifest. The manifest member is read
    first and bounded; a too large one ends the check (the rest is not read)."""
    data, problem = _first_member(archive)
    if data is None:
        yield problem
        return
    expected = {snapshot.member_name(p): f for p, f in snapshot.files().items()}
    seen: set[str] = set()
    first = True
    for member in members(archive, frozenset()):
        if member.name == MANIFEST_NAME:
            if not first:
                yield f"holds a second {MANIFEST_NAME}"
                continue
            first = False
            try:
                inner = parse_manifest(data, f"{archive}")
            except ManifestError as e:
                yield f"its manifest {e.problem}"
                continue
            if inner != snapshot.manifest.in_archive():
                yield "its manifest differs from the store's record"
            continue
        name = posixpath.normpath(member.name)
        entry = expected.get(name)
        if entry is None:
            if member.type != "folder":
                yield f"holds {member.name}, which the manifest does not list"
            continue
        seen.add(name)
        yield from _entry_problems(entry, member)
    for name in sorted(expected.keys() - seen):
        yield f"lacks {expected[name].path}, which the manifest lists"


def _id_problem(manifest: Manifest, snapshot_id: str) -> str:
    """Why the files the record lists do not earn the id they are stored under ("" if
    they do): each member is checked against the list, the list here against the id."""
    try:
        records = [
            (p, kind, mode, content) for p, kind, mode, _, content in manifest_records(manifest)
        ]
        derived = id_of(records, manifest.prefix)
    except ValueError as e:
        return f"its list of files is not a manifest's ({e})"
    if derived != snapshot_id:
        return "its files do not have its id (the entry was forged, or damaged consistently)"
    return ""


def _entry_problems(entry: FileRecord, member: Member) -> Iterator[str]:
    path = entry.path
    if member.type != entry.type:
        yield f"{path} is a {member.type} in the archive, a {entry.type} in the manifest"
    elif member.type == "link":
        if member.target != entry.target:
            yield f"{path} links to {member.target}, the manifest says {entry.target}"
    else:
        if f"{member.mode & 0o7777:o}" != entry.mode_text:
            yield f"{path} has mode {member.mode & 0o7777:o}, the manifest says {entry.mode_text}"
        if member.sha256 != entry.sha256:
            yield f"{path} does not have the sha256 the manifest records"


class Verifier:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.store = SnapshotStore(layout.store)
        self.hashes = _Hashes()
        self.report = Report()
        # Intact physical files of each id, to put damaged ones back from (--repair), and
        # the damaged ones with every name of their inode (a run's rule folders share one).
        self.good: dict[tuple[str, str], Path] = {}  # (id, suffix) -> an intact file
        self.broken: list[tuple[Damage, str, list[Path]]] = []  # damage, suffix, its names
        self.names: dict[tuple[int, int], list[Path]] = {}  # inode -> names seen

    def damaged(self, snapshot_id: str, path: Path, problem: str) -> Damage:
        damage = Damage(snapshot_id, str(path), problem)
        self.report.damaged.append(damage)
        return damage

    def broke(self, snapshot_id: str, path: Path, suffix: str, problem: str) -> None:
        """A damaged file that an intact one of the same id can replace (--repair)."""
        damage = self.damaged(snapshot_id, path, problem)
        self.broken.append((damage, suffix, self.names.get(_inode(path), [path])))

    def snapshot(self, snapshot_id: str) -> None:
        self.report.snapshots += 1
        record = self.store.files.record_path(snapshot_id)
        damage_before = len(self.report.damaged)
        try:
            snapshot = self.store.load(snapshot_id)
        except RecordError as e:
            self.broke(snapshot_id, record, RECORD_SUFFIX, str(e))
            return
        archive = snapshot.require_archive()
        if snapshot.manifest.id != snapshot_id:
            self.damaged(snapshot_id, archive, "its record names another id")
        problem = _id_problem(snapshot.manifest, snapshot_id)
        if problem:
            self.damaged(snapshot_id, record, problem)
        elif snapshot.manifest.id == snapshot_id:
            self.good[(snapshot_id, RECORD_SUFFIX)] = record
        found = []
        try:
            found += _member_problems(snapshot, archive)
        except decode_error() as e:
            found.append(f"cannot be read as a snapshot archive: {e}")
        if self.hashes.of(archive) != snapshot.archive_sha256:
            # One damaged file, one line: what else is wrong with it comes along.
            also = f" ({'; '.join(found)})" if found else ""
            self.broke(
                snapshot_id, archive, ARCHIVE_SUFFIX, f"its sha256 is not the recorded one{also}"
            )
        else:
            if archive.stat().st_size != snapshot.manifest.archive_bytes:
                self.broke(snapshot_id, archive, ARCHIVE_SUFFIX, "its size is not the recorded one")
            for problem in found:
                self.damaged(snapshot_id, archive, problem)
        if len(self.report.damaged) == damage_before:
            self.good[(snapshot_id, ARCHIVE_SUFFIX)] = archive

    def copies(self, wanted: set[str] | None) -> None:
        """The rule-log copies (``<logdir>/<rule folder>/code-<id12>.tar.zst`` and .json) of
        the ``wanted`` ids (None: all); each physical file is judged and reported once."""
        ids = self.store.ids()
        found = []
        for copy in sorted(self.layout.logdir.glob(f"*/{COPY_PREFIX}*{ARCHIVE_SUFFIX}")):
            if within(copy, self.layout.logdir) is None:  # a rule folder linked elsewhere
                self.report.notes.append(f"{copy}: lies outside the log folder; not read")
                continue
            record = copy.with_name(copy.name.removesuffix(ARCHIVE_SUFFIX) + RECORD_SUFFIX)
            first = [p for p in (copy, record) if self._first_name(p)]
            if copy in first:
                found.append((copy, record in first))
        for copy, record_first in found:
            short = copy.name.removeprefix(COPY_PREFIX).removesuffix(ARCHIVE_SUFFIX)
            matches = [i for i in ids if i.startswith(short)]
            if wanted is not None and not set(matches) & wanted:
                continue
            self.report.copies += 1
            if len(matches) == 1:
                self._copy_against_store(copy, matches[0], record_first)
            else:
                self._orphan_copy(copy, short)

    def _first_name(self, path: Path) -> bool:
        """Note ``path`` under its inode; True for the first name of that inode."""
        try:
            names = self.names.setdefault(_inode(path), [])
        except OSError:
            return True  # missing: judged (and reported) where it is expected
        names.append(path)
        return len(names) == 1

    def _copy_against_store(self, copy: Path, snapshot_id: str, check_record: bool) -> None:
        record = copy.with_name(copy.name.removesuffix(ARCHIVE_SUFFIX) + RECORD_SUFFIX)
        try:
            expected = self.store.load(snapshot_id).archive_sha256
        except RecordError:  # reported with the store; the copy is judged by its own record
            expected = _recorded_sha256(record)
        if self.hashes.of(copy) != expected:
            self.broke(snapshot_id, copy, ARCHIVE_SUFFIX, "its sha256 is not the recorded one")
        else:
            self.good.setdefault((snapshot_id, ARCHIVE_SUFFIX), copy)
        if not check_record:
            return
        try:
            ours = record.read_bytes()
        except FileNotFoundError:
            self.broke(snapshot_id, record, RECORD_SUFFIX, "the manifest beside it is missing")
            return
        reference = self.good.get((snapshot_id, RECORD_SUFFIX))
        if reference is None:  # the store's record is damaged: an intact copy's stands in
            if _record_of(ours, snapshot_id):
                self.good[(snapshot_id, RECORD_SUFFIX)] = record
                return
            self.broke(snapshot_id, record, RECORD_SUFFIX, "it is no record of its snapshot")
            return
        try:
            same = ours == reference.read_bytes()
        except OSError:
            same = False
        if not same:
            self.broke(snapshot_id, record, RECORD_SUFFIX, "it differs from the store's record")

    def _orphan_copy(self, copy: Path, short: str) -> None:
        """A copy of a snapshot the store no longer holds: checked against its own record."""
        self.report.notes.append(f"{copy}: snapshot {short} is not in the store; checked alone")
        record = copy.with_name(copy.name.removesuffix(ARCHIVE_SUFFIX) + RECORD_SUFFIX)
        expected = _recorded_sha256(record)
        if expected is None:
            self.damaged(short, record, "the manifest beside the rule-log copy is unreadable")
        elif self.hashes.of(copy) != expected:
            self.damaged(short, copy, "its sha256 is not the one its manifest records")

    def repair(self) -> None:
        """Put each damaged file back from an intact one of the same id (a copy of its own:
        the store and the copies share no inode), every name of a damaged inode."""
        for damage, suffix, names in self.broken:
            source = self.good.get((damage.id, suffix))
            if source is None:
                continue
            for name in names:
                independent_copy(source, name)
            repaired = {str(name) for name in names}
            for other in self.report.damaged:  # what else was found wrong with that file
                if other.path in repaired:
                    other.repaired_from = str(source)


def _inode(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _recorded_sha256(record: Path) -> str | None:
    try:
        return parse_manifest(record.read_bytes(), record).archive_sha256
    except (OSError, SnapshotError):
        return None


def _record_of(data: bytes, snapshot_id: str) -> bool:
    """``data`` is a record of ``snapshot_id`` whose files earn that id."""
    try:
        manifest = parse_manifest(data, snapshot_id)
    except SnapshotError:
        return False
    return manifest.id == snapshot_id and not _id_problem(manifest, snapshot_id)


def verify(layout: Layout, references: list[str], repair: bool = False) -> Report:
    """Check the store and the rule-log copies; ``repair``: put each damaged file back from
    an intact one of the same snapshot, where there is one."""
    verifier = Verifier(layout)
    store = verifier.store
    ids = sorted({store.resolve(r) for r in references}) if references else store.ids()
    for snapshot_id in ids:
        verifier.snapshot(snapshot_id)
    verifier.copies(set(ids) if references else None)
    if repair:
        verifier.repair()
    return verifier.report


def as_json(report: Report) -> dict:
    return {
        "ok": report.ok,
        "snapshots": report.snapshots,
        "copies": report.copies,
        "damaged": [asdict(d) for d in report.damaged],
        "notes": report.notes,
    }


def as_text(report: Report) -> str:
    lines = [f"note: {visible(note)}" for note in report.notes]
    for d in report.damaged:
        what = "REPAIRED" if d.repaired_from else "DAMAGED"
        line = f"{what} {visible(d.id[:SHORT])} {visible(d.path)}: {visible(d.problem)}"
        if d.repaired_from:
            line += f"; put back from {visible(d.repaired_from)}"
        lines.append(line)
    unrepaired = [d for d in report.damaged if not d.repaired_from]
    if not report.damaged:
        state = "all intact"
    elif not unrepaired:
        state = f"{len(report.damaged)} problem(s), all repaired"
    else:
        state = f"{len(unrepaired)} problem(s)"
        if len(unrepaired) < len(report.damaged):
            state += f" left after {len(report.damaged) - len(unrepaired)} repaired"
    lines.append(
        f"verified {report.snapshots} snapshot(s) and {report.copies} rule-log copy(ies): {state}"
    )
    return "\n".join(lines)
