"""The folder a reproduction runs in, and its run (for ``reproduce.py``, which says why).

The folder DIR mirrors the live places the job's paths lead to, around its working
directory: the archive's tree where the code was, relative to the working directory, so that
``scripts/x.py``, ``config/c.yaml`` or ``../shared/ref.yaml`` name the snapshot's files as
they did in the job's view; a symbolic link to the live file for each input the job was
given (the snapshot's file where the snapshot holds the input, which the job's view served
too); and nothing else, so outputs, logs and ``.snakemake/`` are written in DIR. When the
code root is the working directory (the usual case) DIR is both.

The run is the job's own command line from its batch script, as Snakemake wrote it for the
job (target job, rule, resources, config, snapshot Snakefile and config files through
``$FROZEN_DIR``), with ``FROZEN_DIR`` set to the code root in DIR, in DIR's working
directory, plus two words: ``--wait-for-files --wait-for-files-file EMPTY`` (the job waited
for files of the run's temporary folder, long gone).

It runs under ``python -m snakemake_executor_plugin_frozen.record.reproduce_run guard``,
which gives it a mount namespace of its own, as a job's view does (an unprivileged user
namespace for an ordinary user), in which the live working directory is bound read-only
over itself (DIR, if inside, stays writable): a write there, through a link or an absolute
path, fails instead of changing a live file. Where the kernel gives no namespace, the
reproduction runs anyway, the report says so, and only the folder's layout keeps it from
the live files.
"""

from __future__ import annotations

import argparse
import os
import posixpath
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from snakemake_executor_plugin_frozen.job_names import wildcards_dir
from snakemake_executor_plugin_frozen.jobscript import JOB_MODE
from snakemake_executor_plugin_frozen.node import contract
from snakemake_executor_plugin_frozen.node.commands import frozen_pythonpath
from snakemake_executor_plugin_frozen.shellwords import quote

from .confine import within
from .errors import RecordError
from .history import Job

if TYPE_CHECKING:
    from snakemake_executor_plugin_frozen.snapshot.manifest import Manifest

GUARD = "guard"
_MARKER = f'if [ "${{1-}}" = {JOB_MODE} ]; then'
_MAX_SCRIPT = 16 * 2**20  # batch scripts are kilobytes; a bigger file is not one of ours
_PATH = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


@dataclass(frozen=True)
class Place:
    dir: Path  # DIR, as given (absolute)
    workdir: Path  # where the job's working directory lies in DIR
    tree: Path  # where the archive's root lies in DIR
    code_root: Path  # FROZEN_DIR: the code root in DIR

    def of(self, path: str) -> Path:
        """Where the job's relative ``path`` lies in DIR."""
        return Path(os.path.normpath(self.workdir / path))


def place(folder: Path, manifest: Manifest, workdir: str, inputs: Sequence[str]) -> Place:
    """DIR laid out like the live places, from the highest folder that holds the code root
    with the archive's outside files, the working directory and every relative input that
    climbs out of it (``../ref.fa``); a ValueError when the manifest names no absolute
    code root."""
    if manifest.root is None:
        raise ValueError("the manifest names no code root")
    root = posixpath.normpath(manifest.root)
    prefix = manifest.prefix
    depth = len(Path(prefix).parts)
    top = str(Path(root).parents[depth - 1]) if depth else root
    climbing = [posixpath.normpath(posixpath.join(workdir, p)) for p in inputs if p[:1] != "/"]
    common = posixpath.commonpath([top, workdir, *climbing])

    def at(path: str) -> Path:
        return Path(os.path.normpath(folder / posixpath.relpath(path, common)))

    return Place(folder, at(workdir), at(top), at(root))


def job_command(job: Job, logdir: Path) -> tuple[Path, str]:
    """The job's batch script and the command line it ran (the line under ``JOB_MODE``);
    the script must lie in the log folder, be a regular file of the user's and be writable
    by nobody else (its line is run)."""
    number, log = job.record.get("job"), job.record.get("log")
    if not isinstance(number, int) or isinstance(number, bool) or not isinstance(log, str):
        raise RecordError(f"the journal's record of SLURM job {job.slurm_id} is incomplete")
    name = f"job-{job.run[:8]}-{number}.sh"
    folder = Path(log).parent
    candidates = [folder / name]
    wildcards = job.record.get("wildcards")
    if isinstance(wildcards, dict) and wildcards:  # array tasks log in the rule's folder
        values = {str(k): str(v) for k, v in wildcards.items()}
        candidates.append(folder / wildcards_dir(values) / name)
    for candidate in candidates:
        where = within(candidate, logdir)
        if where is not None and os.path.lexists(where):
            return where, _command_in(where)
    raise RecordError(
        f"the batch script of SLURM job {job.slurm_id} ({name} beside its log {log}) is not "
        f"in the log folder {logdir}: reproduce runs the job's own command line, which only "
        "that script holds. If the run had --frozen-logdir, give the same folder as --logdir"
    )


def _command_in(script: Path) -> str:
    try:
        fd = os.open(script, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise RecordError(f"cannot read the batch script {script}: {e.strerror}") from None
    with open(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise RecordError(
                f"{script} is not a batch script of yours that only you can write (owner uid "
                f"{st.st_uid}, mode {stat.filemode(st.st_mode)}): not running its command"
            )
        lines = f.read(_MAX_SCRIPT).decode("utf-8", "surrogateescape").split("\n")
    for i, line in enumerate(lines[:-2]):
        if line.strip() == _MARKER and lines[i + 2].strip() == "exit":
            return lines[i + 1].strip()
    raise RecordError(f"{script} holds no job command line: not a batch script of this plugin")


def provide_inputs(where: Place, inputs: Sequence[str], live_workdir: Path) -> dict[str, str]:
    """Link each relative input into DIR to its live file; how each input is given to the
    reproduction: ``linked``, ``snapshot`` (the snapshot holds it), ``absolute`` (read where
    it is) or ``refused`` (its folder in DIR leads out of DIR)."""
    how: dict[str, str] = {}
    inside = os.path.realpath(where.dir)
    for path in inputs:
        if os.path.isabs(path):
            how[path] = "absolute"
            continue
        target = where.of(path)
        if os.path.lexists(target):
            how[path] = "snapshot"
            continue
        how[path] = "refused"  # a link of the snapshot's on the way, or a file
        if Path(os.path.realpath(target.parent)).is_relative_to(inside):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(os.path.normpath(live_workdir / path), target)
                how[path] = "linked"
            except OSError:
                pass
    return how


@dataclass(frozen=True)
class Ran:
    returncode: int
    log: Path
    guard: str  # what the guard said: how the live working directory was kept from writes


def run(where: Place, command: str, manifest: Manifest, live_workdir: Path) -> Ran:
    """Run ``command`` (the job's line) for the reproduction laid out at ``where``, its
    output in ``<its working directory>/.snakemake/reproduce.log``."""
    log = where.workdir / ".snakemake" / "reproduce.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix="snakemake-frozen-reproduce-"))
    try:
        wait = private / "wait-for-files"
        wait.touch()
        script = private / "job.sh"
        tail = f" --wait-for-files --wait-for-files-file {quote(str(wait))}"
        script.write_text(f"set -euo pipefail\n{command}{tail}\n", errors="surrogateescape")
        report = private / "guard"
        guard = [sys.executable, "-P", "-m", __name__, GUARD, "--report", str(report)]
        guard += ["--read-only", str(live_workdir), "--writable", str(where.dir)]
        guard += ["--writable", str(private), "--", "bash", str(script)]
        with open(log, "wb") as out:
            returncode = subprocess.run(
                guard,
                cwd=where.workdir,
                env=_environment(where, manifest, private),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            ).returncode
        said = report.read_text() if report.exists() else "the guard did not start"
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return Ran(returncode, log, said)


def _environment(where: Place, manifest: Manifest, private: Path) -> dict[str, str]:
    """The job's variables as ``node enter`` exports them, pointing into DIR (no job-site
    folder: the code already lies at the paths the job names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FROZEN_")}
    root = manifest.code_root()
    pythonpath = frozen_pythonpath(where.code_root, Path(root), env.get("PYTHONPATH", ""), sys.path)
    env.update(
        {
            contract.FROZEN_DIR: str(where.code_root),
            contract.FROZEN_COPY: str(where.tree),
            contract.FROZEN_SNAPSHOT: manifest.id,
            contract.FROZEN_CODE_ROOT: root,
            contract.FROZEN_JOB_DIR: str(private),
            "PYTHONPATH": os.pathsep.join(pythonpath),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    return env


def protect(live: str, writable: Sequence[str]) -> str:
    """In a mount namespace of this process's own, bind the live working directory read-only
    over itself, the ``writable`` folders inside it staying writable; what was done, for
    the report. Must run single-threaded, before the command is started."""
    from snakemake_executor_plugin_frozen.node import namespace

    try:
        kind = namespace.enter_namespace()
    except namespace.ViewUnavailable as e:
        return f"not read-only: no mount namespace here ({e})"
    live = os.path.realpath(live)
    fds = []
    try:
        for folder in map(os.path.realpath, writable):
            if Path(folder).is_relative_to(live):
                fds.append(os.open(folder, _PATH))
                namespace.bind(fds[-1], fds[-1])  # carried along by the recursive bind below
        fds.append(os.open(live, _PATH))
        namespace.bind(fds[-1], fds[-1])
        namespace.make_read_only(fds[-1], live)
        os.chdir(os.getcwd())  # into the new mounts
    except OSError as e:
        return f"not read-only: binding {e.filename or live} failed ({e.strerror})"
    finally:
        for fd in fds:
            os.close(fd)
    return f"read-only ({kind})"


def _guard(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__} {GUARD}")
    parser.add_argument("--report", required=True)
    parser.add_argument("--read-only", required=True)
    parser.add_argument("--writable", action="append", default=[])
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    Path(args.report).write_text(protect(args.read_only, args.writable))
    try:
        os.execvp(args.command[0], args.command)
    except OSError as e:
        print(f"reproduce: cannot run {args.command[0]}: {e.strerror}", file=sys.stderr)
    return 127


if __name__ == "__main__":
    if sys.argv[1:2] != [GUARD]:
        sys.exit(f"usage: python -m {__name__} {GUARD} --report FILE --read-only DIR -- COMMAND")
    sys.exit(_guard(sys.argv[2:]))
