"""The manifest, the provenance record of a snapshot: a typed value (``Manifest``) with one
reader (``manifest_reader.parse_manifest``) and one writer (``Manifest.encode``).

The same record is stored three ways: inside the archive as ``.frozen/manifest.json`` (the
first member), in the store as ``<id>.json``, which adds the archive's own sha256 and size
(``archive_sha256``, ``archive_bytes``: see ``record_bytes``), and as copies of that beside
the rule logs (``code-<id12>.json``). ``provenance.py`` gathers what a new one records;
``archive.read_manifest`` reads one from any of those files.

Versions: ``format`` is the version of the record's shape, 1 for every manifest written so
far. Within format 1 the shape only grew: a record lacking a later key holds None there,
which means what the versions without it did: ``code_root_in_archive`` (no prefix, as no
file came from outside the code root: see ``Manifest.prefix``) and the selection's
``data_excluded`` and ``data_excluded_paths`` (none). ``programs`` and ``conda_envs`` are
there only when a run recorded them, a file's ``original`` and ``link_to`` only for the
files that have them, and ``archive_sha256`` and ``archive_bytes`` only in the store's
record. Any other change to the shape (a key added, renamed or removed, a value's
meaning) takes a new ``FORMAT`` and a reader of both: this one refuses a format or a key
it does not know rather than misread a record, which is evidence.

Any other key a record lacks reads as None too ("not recorded"; every writer wrote them,
so only a hand-made or damaged record lacks one): what a command needs and does not find is that
command's refusal. The reader checks each value's type, not how the values agree (whether
the files earn the id, add up to ``bytes``, ...): ``earn``, ``verify`` and the extraction
check that against the archive.

The writer gives exactly the bytes the plugin has always written, the records of older
versions included: one top-level key per line, one file per line (readable, greppable and
diffable line by line), by the C encoder (``indent`` would fall back to the slow
pure-Python one). A key every version wrote is written as null when None; a key that some
records lack is left out when None.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from .entries import LINK
from .model import SnapshotError

FORMAT = 1
PLUGIN = "snakemake-executor-plugin-frozen"
_encode = json.JSONEncoder().encode


def _plain(value: object) -> str:
    """``_encode(value)``, without ``json`` for the usual values of a file's line (three per
    file, 50,000 files in a large pack): a str of printable ASCII without ``"`` or ``\\``
    (which json writes as it is, in quotes) and an int (not a bool: json writes ``true``)."""
    if type(value) is str:
        if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
            return f'"{value}"'
    elif type(value) is int:
        return str(value)
    return _encode(value)


class ManifestError(SnapshotError):
    """A manifest that cannot be read: not JSON, not a manifest, a format or key this
    version does not know, a value of the wrong type. ``problem`` says what, as the end of
    a sentence about the manifest ("is not valid JSON (...)"), for callers that name the
    file their own way."""

    def __init__(self, source: str, problem: str, advice: str) -> None:
        super().__init__(f"the manifest of {source} {problem}; {advice}")
        self.problem = problem


DAMAGED = (
    "it was not written by snakemake-frozen (or by a newer version of it), or was damaged "
    "since: snakemake-frozen verify tells more, and verify --repair puts a stored one back "
    "from a rule-log copy"
)


# -- the parts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One file or symbolic link of the snapshot, as the archive holds it."""

    path: str  # relative to the code root (``../`` first for a file outside it)
    type: str  # FILE or LINK
    size: int | None = None  # a file's bytes
    mode: int | None = None  # a file's permission bits (written in octal, "644")
    sha256: str | None = None  # a file's content
    target: str | None = None  # a link's target
    original: str | None = None  # a file named explicitly outside the code root: its path
    link_to: str | None = None  # a link out of the code root, stored as content: its target

    @property
    def mode_text(self) -> str | None:
        """The mode as the JSON holds it: octal, "644"."""
        return None if self.mode is None else f"{self.mode:o}"

    def as_json(self) -> dict[str, object]:
        if self.type == LINK:
            return {"path": self.path, "type": LINK, "target": self.target}
        fields: dict[str, object] = {"path": self.path, "type": self.type, "size": self.size}
        fields |= {"mode": self.mode_text, "sha256": self.sha256}
        if self.original is not None:
            fields["original"] = self.original
        if self.link_to is not None:
            fields["link_to"] = self.link_to
        return fields

    def line(self) -> str:
        """``as_json`` encoded, built here (not by ``json``: thousands per pack)."""
        path = _plain(self.path)
        if self.type == LINK:
            return f'{{"path": {path}, "type": "{LINK}", "target": {_encode(self.target)}}}'
        mode = "null" if self.mode is None else f'"{self.mode:o}"'
        line = (
            f'{{"path": {path}, "type": "{self.type}", "size": {_plain(self.size)}, '
            f'"mode": {mode}, "sha256": {_plain(self.sha256)}'
        )
        if self.original is not None:
            line += f', "original": {_encode(self.original)}'
        if self.link_to is not None:
            line += f', "link_to": {_encode(self.link_to)}'
        return line + "}"


# The parts below are written (``_json``) and read (``_part``) field by field, in the
# order of their fields, which is the order of their keys in the JSON.


@dataclass(frozen=True, slots=True)
class SelectionRecord:
    """The settings and findings of the selection (``select.py``), as the pack applied them."""

    discovery: str | None = None  # "git" or "walk"
    exclude_folders: tuple[str, ...] | None = None
    code_suffixes: tuple[str, ...] | None = None  # normalised (".py")
    exclude: tuple[str, ...] | None = None
    frozenignore: tuple[str, ...] | None = None  # the lines of .frozenignore
    max_size_mb: int | float | None = None
    skip_size_check: bool | None = None
    extra_excluded_dirs: tuple[str, ...] | None = None
    store: str | None = None
    explicit: tuple[str, ...] | None = None  # sorted: the files named explicitly
    added_back: tuple[str, ...] | None = None  # sorted: gitignored code files packed
    data_excluded: int | None = None  # how many paths were left out as data (absent: 0)
    data_excluded_paths: tuple[str, ...] | None = None  # the first DATA_SHOWN of them
    warnings: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class GitRecord:
    """The git state of the code root (None outside git)."""

    commit: str | None = None  # None: no commit yet
    branch: str | None = None
    remote: str | None = None  # origin's URL, without credentials
    dirty: bool | None = None
    diff: str | None = None  # ``git diff HEAD`` of the packed files, see ``diff_encoding``
    diff_encoding: str | None = None  # "utf-8", or "base64" for a diff that is not UTF-8
    untracked: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class PythonRecord:
    version: str | None = None
    implementation: str | None = None
    executable: str | None = None
    platform: str | None = None


@dataclass(frozen=True, slots=True)
class ToolRecord:
    name: str | None = None
    version: str | None = None


@dataclass(frozen=True, slots=True)
class ProgramRecord:
    """A program at the head of a ``shell:`` command (``programs.py``): its real path,
    size and sha256 (all None when not found; the sha256 alone when not hashed)."""

    name: str
    path: str | None = None
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class CondaEnvRecord:
    """A conda environment file a rule names, relative to the code root when inside it."""

    path: str
    sha256: str | None = None  # None: unreadable
    rules: tuple[str, ...] = ()


# Keys that the first records lack: not written when None.
_LATER_KEYS = frozenset(("code_root_in_archive", "data_excluded", "data_excluded_paths"))


def _json(part: object) -> dict[str, object] | None:
    """A part (or None) as the JSON holds it: each field in order, tuples as lists."""
    if part is None:
        return None
    fields = {}
    for name in part.__dataclass_fields__:  # type: ignore[attr-defined]
        value = getattr(part, name)
        if value is not None or name not in _LATER_KEYS:
            fields[name] = list(value) if isinstance(value, tuple) else value
    return fields


@dataclass(frozen=True, slots=True)
class EnvironmentRecord:
    """The software around the code: Python, Snakemake and every installed distribution,
    and, from a run, the programs and conda environments its rules use (None: not recorded,
    as by ``snakemake-frozen pack``). At the manifest's top level in the JSON."""

    python: PythonRecord | None = None
    snakemake: str | None = None
    tool: ToolRecord | None = None  # this plugin, its version
    distributions: dict[str, str] | None = None  # name -> version, by name
    programs: tuple[ProgramRecord, ...] | None = None
    conda_envs: tuple[CondaEnvRecord, ...] | None = None

    def fields(self) -> Iterator[tuple[str, object]]:
        yield "python", _json(self.python)
        yield "snakemake", self.snakemake
        yield "tool", _json(self.tool)
        yield "distributions", self.distributions
        if self.programs is not None:
            yield "programs", [_json(p) for p in self.programs]
        if self.conda_envs is not None:
            yield "conda_envs", [_json(e) for e in self.conda_envs]


# Top-level keys of the environment, and those only a run records.
ENVIRONMENT_KEYS = ("python", "snakemake", "tool", "distributions", "programs", "conda_envs")
ENVIRONMENT_EXTRA_KEYS = ("programs", "conda_envs")


@dataclass(frozen=True, slots=True)
class Manifest:
    """The record of one snapshot (see the module's docstring for which keys may be None)."""

    id: str
    files: tuple[FileRecord, ...]  # by path
    format: int = FORMAT
    created: str | None = None  # UTC, "2026-12-07T14:59:22Z"
    user: str | None = None
    host: str | None = None
    root: str | None = None  # the code root, absolute
    code_root_in_archive: str | None = None  # see ``prefix``
    file_count: int | None = None
    bytes: int | None = None  # the files' total size
    selection: SelectionRecord | None = None
    git: GitRecord | None = None  # None: outside git (or not recorded)
    environment: EnvironmentRecord = EnvironmentRecord()
    archive_sha256: str | None = None  # the store's record only
    archive_bytes: int | None = None  # the store's record only
    # Where it was read from, for messages ("" for a new one); not part of the record.
    source: str = field(default="", compare=False, repr=False)

    @property
    def prefix(self) -> str:
        """The folder of the archive holding the code root ("" without outside files)."""
        return self.code_root_in_archive or ""

    def code_root(self) -> str:
        """``root``; a SnapshotError when the record names none."""
        if self.root is None:
            raise SnapshotError(
                f"the manifest of {self.source or 'snapshot ' + self.id[:12]} names no code "
                f"root ('root'); {DAMAGED}"
            )
        return self.root

    def in_archive(self) -> Manifest:
        """The archive's own copy of this record: without the store's ``archive_*`` keys."""
        return replace(self, archive_sha256=None, archive_bytes=None)

    def _fields(self) -> Iterator[tuple[str, object]]:
        """The top-level keys but ``files`` and the store's, in the order written."""
        yield from (("format", self.format), ("id", self.id), ("created", self.created))
        yield from (("user", self.user), ("host", self.host), ("root", self.root))
        if self.code_root_in_archive is not None:  # absent in the first records (_LATER_KEYS)
            yield "code_root_in_archive", self.code_root_in_archive
        yield from (("file_count", self.file_count), ("bytes", self.bytes))
        yield "selection", _json(self.selection)
        yield "git", _json(self.git)
        yield from self.environment.fields()

    def _store_fields(self) -> list[tuple[str, object]]:
        if self.archive_sha256 is None and self.archive_bytes is None:
            return []
        return [("archive_sha256", self.archive_sha256), ("archive_bytes", self.archive_bytes)]

    def as_json(self) -> dict[str, object]:
        """The record as the JSON holds it (``json.loads`` of ``encode``)."""
        fields = dict(self._fields())
        fields["files"] = [f.as_json() for f in self.files]
        return fields | dict(self._store_fields())

    def encode(self) -> bytes:
        """The writer: the record's JSON, exactly as the plugin writes it."""
        lines = [f"{_encode(key)}: {_encode(value)}" for key, value in self._fields()]
        lines.append('"files": [\n' + ",\n".join(f.line() for f in self.files) + "\n]")
        lines += [f"{_encode(key)}: {_encode(value)}" for key, value in self._store_fields()]
        return ("{\n" + ",\n".join(lines) + "\n}\n").encode()


def record_bytes(manifest: bytes, archive_sha256: str, archive_bytes: int) -> bytes:
    """The store's record from the archive's copy as ``encode`` wrote it: the same bytes as
    ``replace(m, archive_sha256=..., archive_bytes=...).encode()``, without encoding the file
    list again."""
    tail = f',\n"archive_sha256": {_encode(archive_sha256)},\n"archive_bytes": {archive_bytes}'
    return manifest.removesuffix(b"\n}\n") + tail.encode() + b"\n}\n"
