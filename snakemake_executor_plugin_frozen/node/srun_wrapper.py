"""`srun` inside a job's view: its tasks enter the view too.

slurmstepd starts the tasks of `srun` (on the job's nodes, this one included) outside the
batch script's mount namespace. So the job's PATH starts with a folder of the job's own whose
`srun` runs `node srun`, which calls the real srun with the node helper's `view-exec` put
before each program: `srun -N2 --mem 4G prog args` becomes `srun -N2 --mem 4G PYTHON -P -m
snakemake_executor_plugin_frozen.node view-exec -- prog args`, and each task builds the view
on its node (from that node's copy, which `enter --job-lease` made) before it becomes the
program. Where srun's own options end is read as srun 22.05 reads them (slurm/srun_options.py);
a command line that cannot be read so, and `--multi-prog` (whose word is a file, not a
program), go to the real srun unchanged, and the job's log says that those tasks see the live
files.
"""

import os
import shlex
import sys
from collections.abc import Mapping, Sequence

from snakemake_executor_plugin_frozen.node import contract
from snakemake_executor_plugin_frozen.slurm.srun_options import SrunArgvError, parse_srun_argv

NAME = "srun"


def wrapper_script(python: str) -> str:
    return (
        "#!/bin/sh\n"
        "# snakemake-executor-plugin-frozen: srun's tasks enter the job's view of its code.\n"
        f'exec {shlex.quote(python)} -P -m {contract.MODULE} {contract.SRUN} -- "$@"\n'
    )


def wrapped(argv: Sequence[str], python: str) -> tuple[list[str], str]:
    """srun's arguments with `view-exec` before each program, and "" ; or the arguments
    unchanged and why they were not wrapped."""
    try:
        components = parse_srun_argv(argv)
    except SrunArgvError as e:
        return list(argv), str(e)
    if any(o.name == "multi-prog" for c in components for o in c.options):
        return list(argv), "--multi-prog names a file of programs, which cannot be wrapped"
    enter = [python, "-P", "-m", contract.MODULE, contract.VIEW_EXEC, "--"]
    result = list(argv)
    for c in reversed(components):
        if c.command is not None:
            result[c.command : c.command] = enter
    return result, ""


def real_srun(environ: Mapping[str, str], wrapper_folder: str) -> str | None:
    """The first srun on PATH that is not this wrapper."""
    for folder in environ.get("PATH", "").split(os.pathsep):
        if not folder or os.path.abspath(folder) == os.path.abspath(wrapper_folder):
            continue
        candidate = os.path.join(folder, NAME)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def srun(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """Become the real srun, with the view entered by each task."""
    wrapper_folder = environ.get(contract.FROZEN_WRAPPERS, "")
    real = real_srun(environ, wrapper_folder)
    if real is None:
        print("frozen: srun: no srun on PATH besides the job's wrapper", file=sys.stderr)
        return 127
    arguments = list(argv)
    if environ.get(contract.FROZEN_VIEW) == contract.VIEW_MOUNT:
        arguments, why = wrapped(argv, sys.executable)
        if why:
            print(
                f"frozen: srun: the tasks of this srun see the LIVE files, not the snapshot's: "
                f"{why}",
                file=sys.stderr,
            )
    os.execv(real, [real, *arguments])
    return 127  # not reached
