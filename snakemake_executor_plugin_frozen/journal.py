"""The journal of what ran: ``<workdir>/.snakemake/frozen/journal.jsonl``, next to the store.

One JSON object per line (UTF-8, keys sorted), appended by the main Snakemake process only
(jobs write nothing here). Three kinds of record, told apart by ``event``:

- ``run``: once per run at its start (its snapshot, code root, working directory, argv);
- ``submitted``: one per job submitted (rule, wildcards, outputs, Snakemake's job id, the
  SLURM job id, the snapshot, the SLURM log) and what its inputs were then (``inputs``);
- ``ended``: one per job once its final state is known (outcome, SLURM state, node), and
  for a job that succeeded what its outputs were then (``outputs``).

``inputs`` and ``outputs`` are lists of facts about files (``facts``): path as Snakemake
names it, ``type`` (``file``, ``folder``, ``missing``, ``other``), ``size`` and ``mtime_ns``
(null when missing); outputs also ``sha256`` and ``hashed``. Inputs are never hashed (data
can be large, and a stat is enough to tell that a file was touched since); an output is
hashed up to ``HASH_LIMIT`` bytes (a folder: its files together, with their names), beyond
that ``"sha256": null, "hashed": false``. The main process hashes when it learns that the job
ended: what a shared file system shows it then. Records written before these fields existed
have neither: readers take them as unknown.

Two runs in one working directory may append at the same time, and a crash may leave a torn
last line: ``append`` holds an exclusive ``flock`` and writes all its lines in one
``os.write``, after a line break if the file does not end with one; ``read`` skips (and
counts) every line that is not a whole record. ``snakemake-frozen gc`` may rewrite the file
(``rewrite``) under the same lock; ``append`` then notices that the file it locked was
replaced and appends to the new one.

The file is private (0600): it names paths and wildcard values. Importing this module is
cheap (no Snakemake, no snapshot engine).

A record is trusted no more than the file: ``read`` skips (and counts) every record whose run
id is not a plain name (``valid_run``: no ``/``, no ``..``, so ``.ended/<run>`` stays in its
folder) or whose snapshot is neither None nor a full id (``valid_snapshot``), whoever wrote
it; the record builders refuse them too.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

JOURNAL = Path(".snakemake/frozen/journal.jsonl")  # relative to the working directory
EVENTS = ("run", "submitted", "ended")
# A run id is one file name (uuid4 as the executor makes them): it names `.ended/<run>`.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_SNAPSHOT_ID = re.compile(r"[0-9a-f]{64}")
# The most bytes of one output (a folder: of all its files) the main process hashes when its
# job ends: 64 MiB take about 0.05 s from a local disk and 0.6 s at 100 MB/s from a shared
# file system, for every output of every job, in the loop that watches the run. Beyond it
# the output is recorded by size and mtime only; `snakemake-frozen reproduce` then says that
# it cannot compare the content.
HASH_LIMIT = 64 * 2**20
_CHUNK = 2**20


def valid_run(run: object) -> bool:
    """``run`` can be a run id: a plain file name (letters, digits, ``_ . -``; not ``..``)."""
    return isinstance(run, str) and _RUN_ID.fullmatch(run) is not None and ".." not in run


def valid_snapshot(snapshot: object) -> bool:
    """``snapshot`` can be a record's snapshot: None (mode off) or a full id (64 hex)."""
    return snapshot is None or (
        isinstance(snapshot, str) and _SNAPSHOT_ID.fullmatch(snapshot) is not None
    )


def _checked(run: str, snapshot: str | None = None) -> str:
    if not valid_run(run):
        raise ValueError(f"not a run id: {run!r}")
    if not valid_snapshot(snapshot):
        raise ValueError(f"not a snapshot id: {snapshot!r}")
    return run


def now() -> str:
    """The current time as the journal writes it: ISO 8601, UTC, milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_started(
    *,
    run: str,
    snapshot: str | None,
    code_root: Path,
    workdir: Path,
    argv: Sequence[str],
    logdir: Path | None = None,
    time: str | None = None,
) -> dict:
    """The ``run`` record, written once when a run starts (``snapshot`` None in mode off);
    ``logdir``: where its logs, batch scripts and rule-log copies go (``gc`` finds them
    there once the setting moved the logs elsewhere)."""
    record = {
        "event": "run",
        "run": _checked(run, snapshot),
        "time": time or now(),
        "snapshot": snapshot,
        "code_root": os.path.abspath(code_root),
        "workdir": os.path.abspath(workdir),
        "argv": list(argv),
    }
    if logdir is not None:
        record["logdir"] = os.path.abspath(logdir)
    return record


def submitted(
    *,
    run: str,
    rule: str,
    wildcards: dict[str, str],
    outputs: Sequence[str],
    job: int,
    slurm_id: str,
    snapshot: str | None,
    log: Path,
    workdir: Path,
    mode: str,
    inputs: Sequence[dict] | None = None,
    time: str | None = None,
) -> dict:
    """The ``submitted`` record of one job.

    ``outputs``: as Snakemake names them (relative to the working directory unless the
    workflow names absolute paths); ``slurm_id``: ``"123"``, ``"123_4"`` for an array task,
    ``"local3"`` without SLURM; ``snapshot``: the full id, None in mode off; ``inputs``:
    ``input_facts`` of the job's inputs (left out when None).
    """
    record = {
        "event": "submitted",
        "run": _checked(run, snapshot),
        "time": time or now(),
        "rule": rule,
        "wildcards": dict(wildcards),
        "outputs": [str(o) for o in outputs],
        "job": job,
        "slurm_id": slurm_id,
        "snapshot": snapshot,
        "log": os.path.abspath(log),
        "workdir": os.path.abspath(workdir),
        "mode": mode,
    }
    if inputs is not None:
        record["inputs"] = list(inputs)
    return record


def ended(
    *,
    run: str,
    slurm_id: str,
    outcome: str,
    state: str,
    node: str = "",
    view: str = "",
    outputs: Sequence[dict] | None = None,
    time: str | None = None,
) -> dict:
    """The ``ended`` record of one job: ``outcome`` "success" or "failed", ``state`` as SLURM
    tells it ("COMPLETED", "FAILED", "TIMEOUT", ...), or "EXIT 0" for a job that ended by
    its own end hint of success which SLURM had not confirmed when the run ended
    (job_tracking.py), ``node`` where it ran ("" unknown),
    ``view`` the view its log names ("mount", "python"; "" none: not frozen, or no log),
    ``outputs`` the ``output_facts`` of its outputs (left out when None)."""
    if outcome not in ("success", "failed"):
        raise ValueError(f"outcome must be 'success' or 'failed', not {outcome!r}")
    record = {
        "event": "ended",
        "run": _checked(run),
        "time": time or now(),
        "slurm_id": slurm_id,
        "outcome": outcome,
        "state": state,
        "node": node,
        "view": view,
    }
    if outputs is not None:
        record["outputs"] = list(outputs)
    return record


def facts(path: str, workdir: Path, hash_limit: int | None = None) -> dict:
    """What the journal records of one file or folder ``path`` (relative to ``workdir``
    unless absolute): its type, size and mtime; with ``hash_limit`` also its ``sha256``
    when it holds no more bytes than that (``hashed`` says whether it was). A folder's size
    is that of its files, known only when they were hashed."""
    where = path if os.path.isabs(path) else os.path.join(workdir, path)
    found: dict = {"path": str(path), "type": "missing", "size": None, "mtime_ns": None}
    try:
        st = os.stat(where)
    except (OSError, ValueError):  # ValueError: a NUL in a forged path
        st = None
    if st is not None:
        kind = "file" if stat.S_ISREG(st.st_mode) else "other"
        kind = "folder" if stat.S_ISDIR(st.st_mode) else kind
        found.update(type=kind, size=st.st_size, mtime_ns=st.st_mtime_ns)
    if hash_limit is None:
        return found
    digest, size = (None, None)
    if found["type"] in ("file", "folder"):
        digest, size = content_sha256(where, hash_limit)
    if found["type"] == "folder":
        found["size"] = size
    found.update(sha256=digest, hashed=digest is not None)
    return found


def input_facts(paths: Sequence[str], workdir: Path) -> list[dict]:
    """The facts of a job's inputs at submission: a stat each, no byte read."""
    return [facts(str(path), workdir) for path in paths]


def output_facts(paths: Sequence[str], workdir: Path, limit: int = HASH_LIMIT) -> list[dict]:
    """The facts of a job's outputs, each hashed up to ``limit`` bytes."""
    return [facts(str(path), workdir, limit) for path in paths]


def _hash_file(path: str, update: Callable[[bytes], object], budget: int) -> int | None:
    """Feed the bytes of the regular file ``path`` to ``update``; its size, or None when it
    is no regular file, cannot be read or holds more than ``budget`` bytes. Opened without
    blocking: a FIFO put at an output's name must not stop the run."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with open(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > budget:
            return None
        read = 0
        while chunk := f.read(_CHUNK):
            read += len(chunk)
            if read > budget:  # it grew while read
                return None
            update(chunk)
        return read


def _label(kind: bytes, top: str, path: str, extra: bytes = b"") -> bytes:
    name = os.fsencode(os.path.relpath(path, top))
    return kind + b"\0" + name + b"\0" + extra + b"\n"


def content_sha256(path: str, limit: int) -> tuple[str | None, int | None]:
    """The sha256 of a file's bytes, or of a folder's tree (each entry's path below it, type,
    and content's sha256 or link target, in sorted order; links are not followed), and the
    bytes read; (None, None) beyond ``limit`` bytes or when something cannot be read."""
    if not os.path.isdir(path):
        digest = hashlib.sha256()
        size = _hash_file(path, digest.update, limit)
        return (None, None) if size is None else (digest.hexdigest(), size)
    digest, total = hashlib.sha256(), 0
    for folder, folders, files in os.walk(path):  # links to folders are listed, not entered
        entries = sorted(files + folders)
        folders[:] = sorted(n for n in folders if not os.path.islink(os.path.join(folder, n)))
        for name in entries:
            entry = os.path.join(folder, name)
            if os.path.islink(entry):
                digest.update(_label(b"L", path, entry, os.fsencode(os.readlink(entry))))
            elif name in folders:
                digest.update(_label(b"D", path, entry))
            else:
                inner = hashlib.sha256()
                size = _hash_file(entry, inner.update, limit - total)
                if size is None:
                    return None, None
                total += size
                digest.update(_label(b"F", path, entry, inner.digest()))
    return digest.hexdigest(), total


def encode(record: dict) -> bytes:
    """One journal line. Paths and values Python holds as surrogate escapes (file names that
    are not UTF-8) are written as their original bytes, as the file system names them."""
    try:
        text = json.dumps(record, sort_keys=True, ensure_ascii=False)
        return text.encode("utf-8", "surrogateescape") + b"\n"
    except UnicodeEncodeError:  # a lone surrogate no file name can hold: keep it escaped
        return json.dumps(record, sort_keys=True).encode() + b"\n"


@contextmanager
def _locked(path: Path, flags: int) -> Iterator[int]:
    """An fd of ``path`` (created 0600 if missing) under an exclusive flock, and surely the
    file that ``path`` names now (not one a ``rewrite`` replaced while we waited)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            opened = os.fstat(fd)
            if current is not None and (current.st_dev, current.st_ino) == (
                opened.st_dev,
                opened.st_ino,
            ):
                yield fd
                return
        finally:
            os.close(fd)  # also releases the lock


def _ends_torn(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)  # one write: the lines land together
    while written < len(data):  # short only on a signal or a nearly full disk
        written += os.write(fd, data[written:])


def append(path: Path, records: Sequence[dict]) -> None:
    """Append ``records`` to the journal at ``path`` (created 0600 with its folder if
    missing), whole, in order and never mixed with another writer's lines."""
    if not records:
        return
    data = b"".join(encode(r) for r in records)
    with _locked(path, os.O_RDWR | os.O_APPEND) as fd:
        if _ends_torn(fd):
            data = b"\n" + data  # a crash tore the last line: ours start on a line of their own
        _write_all(fd, data)


@dataclass
class Contents:
    """What ``read`` found: the well-formed records in file order, and how many lines were
    skipped (torn by a crash, garbled, or not a journal record)."""

    records: list[dict] = field(default_factory=list)
    skipped: int = 0


def _is_record(record: object) -> bool:
    """A journal record whose ids can be trusted as names (see the module docstring)."""
    return (
        isinstance(record, dict)
        and record.get("event") in EVENTS
        and valid_run(record.get("run"))
        and valid_snapshot(record.get("snapshot"))
    )


def _line_by_line(lines: list[str]) -> Contents:
    contents = Contents()
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if _is_record(record):
            contents.records.append(record)
        else:
            contents.skipped += 1
    return contents


def parse(data: bytes) -> Contents:
    """The records of a journal's bytes (see ``read``)."""
    lines = [line.strip() for line in data.decode("utf-8", "surrogateescape").split("\n")]
    lines = [line for line in lines if line]
    if not all(line[0] == "{" and line[-1] == "}" for line in lines):
        return _line_by_line(lines)
    try:
        # One parse of the whole file is twice as fast as one per line (100,000 jobs: 1 s
        # instead of 2). A torn or garbled line makes it fail: then each line alone.
        every = json.loads("[" + ",".join(lines) + "]")
    except ValueError:
        return _line_by_line(lines)
    if len(every) != len(lines):
        return _line_by_line(lines)
    records = [record for record in every if _is_record(record)]
    return Contents(records, len(every) - len(records))


def read(path: Path) -> Contents:
    """Every well-formed record of the journal at ``path``; a missing journal has none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Contents()
    return parse(data)


def rewrite(path: Path, keep: Callable[[dict], bool]) -> int:
    """Rewrite the journal with only the records ``keep`` accepts (unreadable lines go too),
    under the writers' lock, so no concurrent ``append`` is lost. Returns the lines removed."""
    if not path.exists():
        return 0
    with _locked(path, os.O_RDWR) as fd:
        contents = parse(os.pread(fd, os.fstat(fd).st_size, 0))
        kept = [record for record in contents.records if keep(record)]
        removed = len(contents.records) - len(kept) + contents.skipped
        if not removed:
            return 0
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            _write_all(out, b"".join(encode(r) for r in kept))
            os.fsync(out)
        finally:
            os.close(out)
        # Replaced while we hold the old file's lock: a writer waiting for that lock finds
        # the file replaced and appends to the new one (see _locked).
        os.replace(temporary, path)
    return removed
