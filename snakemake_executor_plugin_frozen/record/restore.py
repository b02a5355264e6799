"""``restore``: a snapshot's files into a new folder.

It prints no command to rerun anything: a Snakemake command run against the live working
directory would write into it (and read the live config and scripts wherever a path is not
the snapshot's). ``snakemake-frozen reproduce OUTPUT`` reruns the job that made an output
from its snapshot, into a folder of its own (``reproduce.py``); restore, given ``--output``,
names that command and checks that the output was made by the snapshot restored.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from snakemake_executor_plugin_frozen.dirfd import remove_tree
from snakemake_executor_plugin_frozen.shellwords import quote, visible
from snakemake_executor_plugin_frozen.snapshot import SnapshotError, extract

from .errors import RecordError
from .history import History, Job
from .snapshots import Snapshot
from .which import Finder, normalise

# Where Snakemake looks for the Snakefile when none is named, in its order.
DEFAULT_SNAKEFILES = ("Snakefile", "snakefile", "workflow/Snakefile", "workflow/snakefile")
SNAKEFILE_OPTIONS = ("-s", "--snakefile")


@dataclass(frozen=True)
class Restored:
    id: str
    dest: Path
    code_root: Path  # the restored copy of the code root (below dest with outside files)
    outside_files: bool
    snakefile: Path | None  # in the restored copy; None if it cannot be told
    job: Job | None  # the journal's job for --output
    output: str | None  # --output as the journal names it


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def prepare(dest: Path, what: str = "restore") -> bool:
    """Refuse a DEST that is not a new folder or an empty folder of the user's own, with a
    message naming it and what to do (``what`` names the command); True if it exists."""
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        ancestor = dest.parent
        while not os.path.lexists(ancestor):
            ancestor = ancestor.parent
        if not os.path.isdir(ancestor) or not os.access(ancestor, os.W_OK | os.X_OK):
            raise RecordError(
                f"cannot {what} into {dest}: you may not create folders in {ancestor}; give "
                "a new or empty folder of your own"
            ) from None
        return False
    if stat.S_ISLNK(st.st_mode):
        raise RecordError(
            f"{dest} is a symbolic link (to {os.readlink(dest)}): {what} writes only into a "
            "real folder, never where a link points; give the folder itself "
            f"({os.path.realpath(dest)}) or a new folder"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise RecordError(f"{dest} exists and is not a folder: give a new or empty folder")
    if os.geteuid() != 0 and st.st_uid != os.geteuid():
        raise RecordError(
            f"{dest} belongs to {_owner(st.st_uid)}, not to you: {what} only into a new "
            "folder or an empty folder of your own"
        )
    try:
        entries = os.listdir(dest)
    except OSError as e:
        raise RecordError(
            f"cannot read the folder {dest} ({e.strerror}): give a new or empty folder of your own"
        ) from None
    if entries:
        raise RecordError(
            f"{dest} is not empty ({len(entries)} entries): {what} only writes into a new or "
            "empty folder, so nothing of yours is overwritten"
        )
    if not os.access(dest, os.W_OK | os.X_OK):
        raise RecordError(f"you may not write in {dest}: give a new or empty folder of your own")
    return True


def _modes(readers: int, writable: bool = True) -> tuple[int, int]:
    """The masks for restored files and the mode of restored folders.

    The manifest records 0644 or 0755 per file (only the executable bit: the mode is part
    of the id), not whether the file was private. The store's own copies are readable by
    the group or others only if every file of the snapshot was (``copy_mode``), so their
    read bits ``readers`` are the most the restored files may grant: a snapshot holding a
    private file comes back 0600/0700 with 0700 folders, else the recorded modes. The
    user's umask narrows both further (never the owner's own bits). Not ``writable``:
    the files are read-only, as a job sees its code (folders stay writable)."""
    mask = 0o700 | readers | (readers >> 2)  # read, and search/execute with it
    mask &= ~(_umask() & 0o077)
    return (mask if writable else mask & ~0o222), 0o755 & mask


def _set_modes(top: Path, file_mask: int, folder_mode: int) -> None:
    """Narrow every file's mode and set every folder's, below ``top`` (in a private folder
    while this runs): without recursion, never through a link."""
    pending = [top]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as listing:
            for entry in listing:
                if entry.is_symlink():
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                else:
                    mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
                    os.chmod(entry.path, mode & file_mask, follow_symlinks=False)
        os.chmod(folder, folder_mode, follow_symlinks=False)


def extract_into(
    archive: Path, sha256: str | None, dest: Path, existed: bool, writable: bool = True
) -> None:
    """Extract ``archive`` (its sha256 checked as it is read) into a private folder inside
    ``dest`` (made 0700 if new), narrow the modes there, then move the entries up and give
    ``dest`` its final mode: no file is ever reachable by others with a wider mode than it
    ends with (see ``_modes``)."""
    readers = stat.S_IMODE(os.stat(archive).st_mode) & 0o044
    file_mask, folder_mode = _modes(readers, writable)
    if not existed:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)  # the umask's default modes
            os.mkdir(dest, 0o700)
        except OSError as e:
            raise RecordError(f"cannot create {dest}: {e.strerror}", exit_code=1) from None
    staging = Path(tempfile.mkdtemp(prefix=".frozen-restore-", dir=dest))
    done = False
    try:
        tree = staging / "tree"
        try:
            # extract checks the sha256 again, of the very bytes it extracts
            extract(archive, tree, sha256)
        except SnapshotError as e:
            raise RecordError(str(e), exit_code=1) from e
        _set_modes(tree, file_mask, folder_mode)
        for name in os.listdir(tree):
            os.rename(tree / name, dest / name)
        os.chmod(dest, folder_mode)
        done = True
    except OSError as e:
        raise RecordError(f"cannot extract into {dest}: {e}", exit_code=1) from None
    finally:
        folder = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            remove_tree(folder, staging.name)
        finally:
            os.close(folder)
        if not done and not existed:
            with contextlib.suppress(OSError):
                os.rmdir(dest)  # only if nothing was moved in


def _argv_snakefile(argv: list[str]) -> str | None:
    for i, word in enumerate(argv):
        if word in SNAKEFILE_OPTIONS and i + 1 < len(argv):
            return argv[i + 1]
        for option in SNAKEFILE_OPTIONS:
            if word.startswith(option + "=") and option.startswith("--"):
                return word.split("=", 1)[1]
    return None


def snakefile_in(snapshot: Snapshot, history: History, run: str | None) -> str | None:
    """The main Snakefile relative to the code root: the run's ``--snakefile`` when the
    journal has its argv, else the first of Snakemake's default names the snapshot holds."""
    files = snapshot.files()
    root = Path(snapshot.root)
    start = history.runs[run].start if run in history.runs else None
    candidates = []
    if start is not None and (named := _argv_snakefile(start.get("argv") or [])):
        path = Path(named) if os.path.isabs(named) else Path(start["workdir"]) / named
        candidates.append(os.path.relpath(os.path.normpath(path), root))
    candidates += DEFAULT_SNAKEFILES
    return next((c for c in candidates if c in files), None)


def made_by(finder: Finder, output: str) -> Job:
    """The journal's job that last made ``output`` (as ``which`` finds it); exit 1 when
    there is none."""
    answer = finder.answer(output)
    if not answer.found:
        raise RecordError(f"{output}: {answer.reason}", exit_code=1)
    return next(j for j in reversed(finder.jobs_for(answer.output)) if j.succeeded)


def _job_for(snapshot: Snapshot, finder: Finder, output: str) -> Job:
    """The journal's job that last made ``output``, which must have run ``snapshot``."""
    job = made_by(finder, output)
    if job.snapshot != snapshot.id:
        raise RecordError(
            f"{output} was last made by a job of snapshot {str(job.snapshot)[:12]}, not "
            f"{snapshot.id[:12]}: restore that one (snakemake-frozen which {output} names it)"
        )
    return job


def restore(
    snapshot: Snapshot, dest: Path, finder: Finder, output: str | None, workdir: Path
) -> Restored:
    dest = Path(os.path.abspath(dest))
    job = None if output is None else _job_for(snapshot, finder, output)
    archive = snapshot.check_archive()  # a clear refusal before anything is written
    existed = prepare(dest)
    extract_into(archive, snapshot.archive_sha256, dest, existed)
    code_root = dest / snapshot.prefix if snapshot.prefix else dest
    relative = snakefile_in(snapshot, finder.history, job.run if job else None)
    snakefile = code_root / relative if relative else None
    named = None if output is None else normalise(output, workdir)
    return Restored(snapshot.id, dest, code_root, bool(snapshot.prefix), snakefile, job, named)


def as_json(restored: Restored) -> dict:
    return {
        "id": restored.id,
        "dest": str(restored.dest),
        "code_root": str(restored.code_root),
        "outside_files": restored.outside_files,
        "snakefile": None if restored.snakefile is None else str(restored.snakefile),
        "run": restored.job.run if restored.job else None,
        "slurm_id": restored.job.slurm_id if restored.job else None,
    }


def as_text(restored: Restored, snapshot: Snapshot) -> str:
    """For people: every value escaped (``visible``), one line each, and no command that
    would run anything against the live working directory."""
    lines = [f"restored snapshot {restored.id[:12]} into {visible(str(restored.dest))}"]
    if restored.outside_files:
        lines.append(
            "note: the snapshot holds files from outside its code root "
            f"{visible(str(snapshot.manifest.root))}: the code root is "
            f"{visible(str(restored.code_root))}, the outside files lie around it as they did"
        )
    if restored.snakefile is None:
        lines.append("note: no Snakefile found in the snapshot under Snakemake's default names")
    else:
        lines.append(f"Snakefile: {visible(str(restored.snakefile))}")
    if restored.job is not None and restored.output is not None:
        lines.append(
            f"{visible(restored.output)} was made by SLURM job {visible(restored.job.slurm_id)} "
            f"of this snapshot; to run that job again from it, into a folder of its own, "
            f"and compare: snakemake-frozen reproduce {quote(restored.output)}"
        )
    else:
        lines.append(
            "this is a copy to read: to run the job that made an output again from its "
            "snapshot, without writing into the working directory: snakemake-frozen "
            "reproduce OUTPUT"
        )
    return "\n".join(lines)
