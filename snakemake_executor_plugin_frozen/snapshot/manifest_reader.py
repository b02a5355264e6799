"""The manifest's one reader: JSON bytes to a ``Manifest`` (``manifest.py`` holds the types
and the writer), every key and value's type checked; a record it cannot read is refused with
a ``ManifestError`` that names the file and says what to do."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from .entries import FILE, LINK
from .manifest import (
    DAMAGED,
    ENVIRONMENT_EXTRA_KEYS,
    ENVIRONMENT_KEYS,
    FORMAT,
    PLUGIN,
    CondaEnvRecord,
    EnvironmentRecord,
    FileRecord,
    GitRecord,
    Manifest,
    ManifestError,
    ProgramRecord,
    PythonRecord,
    SelectionRecord,
    ToolRecord,
)

_encode = json.JSONEncoder().encode
_P = TypeVar("_P")


class _Malformed(Exception):
    """What is wrong, and where ("files[3].size is "x", not a whole number")."""


def _shown(value: object) -> str:
    text = _encode(value) if isinstance(value, str | int | float | bool) or value is None else ""
    kind = {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)
    return text[:40] + ("..." if len(text) > 40 else "") if text else kind


def _keys(d: object, known: Iterable[str], where: str) -> dict:
    """``d`` as an object whose keys are all ``known``."""
    if type(d) is not dict:
        raise _Malformed(f"{where} is {_shown(d)}, not an object")
    unknown = d.keys() - set(known)
    if unknown:
        names = ", ".join(sorted(map(repr, unknown)))[:200]
        raise _Malformed(f"{where or 'it'} holds a key this version does not know ({names})")
    return d


def _reader(fits: Callable[[Any], bool], what: str, *, required: bool = False) -> _Read:
    """The reader of a value that ``fits`` (else it is not ``what``), None when absent or
    null unless ``required``."""

    def read(d: dict, key: str, where: str) -> Any:
        value = d.get(key)
        if (value is None and not required) or fits(value):
            return value
        shown = _shown(value) if key in d else "missing"
        raise _Malformed(f"{f'{where}.{key}' if where else key} is {shown}, not {what}")

    return read


_Read = Callable[[dict, str, str], Any]
_str = _reader(lambda v: type(v) is str, "a string")
_count = _reader(lambda v: type(v) is int and v >= 0, "a whole number")
_objects = _reader(lambda v: type(v) is list, "a list")
_string_list = _reader(
    lambda v: type(v) is list and all(type(s) is str for s in v), "a list of strings"
)


def _strings(d: dict, key: str, where: str) -> tuple[str, ...] | None:
    values = _string_list(d, key, where)
    return None if values is None else tuple(values)


# How each type of a part's field is read from the JSON (lists become tuples).
_READ_AS: dict[str, _Read] = {
    "str": _reader(lambda v: type(v) is str, "a string", required=True),
    "str | None": _str,
    "int | None": _count,
    "int | float | None": _reader(lambda v: type(v) in (int, float), "a number"),
    "bool | None": _reader(lambda v: type(v) is bool, "true or false"),
    "tuple[str, ...] | None": _strings,
    "tuple[str, ...]": lambda d, key, where: _strings(d, key, where) or (),
}


def _part(cls: type[_P], d: object, where: str) -> _P:
    """A part of the record (a dataclass whose fields all have a type of ``_READ_AS``)
    from its JSON object ``d``."""
    fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
    _keys(d, fields, where)
    assert isinstance(d, dict)
    return cls(**{name: _READ_AS[f.type](d, name, where) for name, f in fields.items()})


def _parts(cls: type[_P], values: list | None, where: str) -> tuple[_P, ...] | None:
    if values is None:
        return None
    return tuple(_part(cls, value, f"{where}[{i}]") for i, value in enumerate(values))


_FILE_KEYS = frozenset(FileRecord.__dataclass_fields__)
_MODES: dict[str, int] = {}  # octal text -> mode, as met


def _mode(text: object, where: str) -> int:
    if type(text) is str and 0 < len(text) <= 4 and set(text) <= set("01234567"):
        return _MODES.setdefault(text, int(text, 8))
    raise _Malformed(f"{where}.mode is {_shown(text)}, not an octal mode")


def _file(d: object, i: int) -> FileRecord:
    """A file record, read here rather than by ``_part``: thousands per manifest (the
    usual case is checked at once, the readers only tell what is wrong), its mode octal."""
    if type(d) is not dict or not _FILE_KEYS.issuperset(d):
        _keys(d, _FILE_KEYS, f"files[{i}]")
    assert isinstance(d, dict)
    get = d.get
    path, kind, size, mode, sha256 = map(get, ("path", "type", "size", "mode", "sha256"))
    target, original, link_to = get("target"), get("original"), get("link_to")
    if not (
        type(path) is str
        and kind in (FILE, LINK)
        and (size is None or (type(size) is int and size >= 0))
        and (sha256 is None or type(sha256) is str)
        and (target is None or type(target) is str)
        and (original is None or type(original) is str)
        and (link_to is None or type(link_to) is str)
    ):
        where = f"files[{i}]"
        if type(path) is not str:
            raise _Malformed(f"{where}.path is {_shown(path)}, not a path")
        if kind not in (FILE, LINK):
            raise _Malformed(f"{where}.type is {_shown(kind)}, not {FILE!r} or {LINK!r}")
        _count(d, "size", where)
        for key in ("sha256", "target", "original", "link_to"):
            _str(d, key, where)
    if mode is not None:
        mode = _MODES.get(mode) if type(mode) is str else None
        if mode is None:
            mode = _mode(get("mode"), f"files[{i}]")
    return FileRecord(path, kind, size, mode, sha256, target, original, link_to)


def _environment(m: dict) -> EnvironmentRecord:
    distributions = m.get("distributions")
    if distributions is not None and not (
        type(distributions) is dict and all(type(v) is str for v in distributions.values())
    ):
        raise _Malformed(f"distributions is {_shown(distributions)}, not names and versions")
    python, tool = m.get("python"), m.get("tool")
    return EnvironmentRecord(
        python=None if python is None else _part(PythonRecord, python, "python"),
        snakemake=_str(m, "snakemake", ""),
        tool=None if tool is None else _part(ToolRecord, tool, "tool"),
        distributions=distributions,
        programs=_parts(ProgramRecord, _objects(m, "programs", ""), "programs"),
        conda_envs=_parts(CondaEnvRecord, _objects(m, "conda_envs", ""), "conda_envs"),
    )


def environment_parts(extra: dict[str, object]) -> dict[str, object]:
    """The typed ``programs`` and ``conda_envs`` of ``extra`` (their JSON shape, as
    ``programs.environment_record`` gives it); ValueError naming what is wrong."""
    try:
        parsed = _environment({k: extra[k] for k in ENVIRONMENT_EXTRA_KEYS if k in extra})
    except _Malformed as e:
        raise ValueError(str(e)) from None
    return {k: getattr(parsed, k) for k in ENVIRONMENT_EXTRA_KEYS if k in extra}


# The top-level keys: the Manifest's own fields read by their type, and the others.
_SCALARS = ("created", "user", "host", "root", "code_root_in_archive", "file_count", "bytes")
_STORE_KEYS = ("archive_sha256", "archive_bytes")
_TOP_KEYS = frozenset(
    ("format", "id", *_SCALARS, "selection", "git", "files", *_STORE_KEYS, *ENVIRONMENT_KEYS)
)


def _manifest(m: dict, source: str) -> Manifest:
    _keys(m, _TOP_KEYS, "")
    files, selection, git = _objects(m, "files", ""), m.get("selection"), m.get("git")
    if files is None:
        raise _Malformed("files is missing")
    fields = Manifest.__dataclass_fields__
    return Manifest(
        id=m["id"],
        files=tuple([_file(f, i) for i, f in enumerate(files)]),
        format=m["format"],
        **{k: _READ_AS[fields[k].type](m, k, "") for k in (*_SCALARS, *_STORE_KEYS)},
        selection=None if selection is None else _part(SelectionRecord, selection, "selection"),
        git=None if git is None else _part(GitRecord, git, "git"),
        environment=_environment(m),
        source=source,
    )


def parse_manifest(data: bytes | str, source: object) -> Manifest:
    """The reader: the manifest ``data`` (the JSON of any version) read from ``source``
    (named in messages); a ManifestError saying what is wrong and what to do when it is
    not valid JSON, not a snakemake-frozen manifest, of a format this version does not
    read, or holds a key or a value of a type that no version wrote."""
    where = str(source)
    try:
        m = json.loads(data)
    except ValueError as e:
        raise ManifestError(where, f"is not valid JSON ({e})", DAMAGED) from e
    if type(m) is not dict or type(m.get("id")) is not str or "format" not in m:
        raise ManifestError(where, "is no snakemake-frozen manifest (no id or format)", DAMAGED)
    version = m["format"]
    if version != FORMAT or type(version) is not int:
        tool = m.get("tool")
        writer = (
            f" (written by {tool.get('name')} {tool.get('version')})" if type(tool) is dict else ""
        )
        raise ManifestError(
            where,
            f"has format {_shown(version)}{writer}, and this version of {PLUGIN} reads format "
            f"{FORMAT} only",
            "read it with the version that wrote it, or a newer one",
        )
    try:
        return _manifest(m, where)
    except _Malformed as e:
        raise ManifestError(where, f"is malformed: {e}", DAMAGED) from None
