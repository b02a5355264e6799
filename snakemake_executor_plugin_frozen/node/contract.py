"""The contract between the batch script (`jobscript.py`, rendered on the login node) and the
node helper (this package, run on the node): how the script calls the helper, and what the
helper's `enter` exports to the job. Both sides take the names from here, so neither can
change one alone. Standard library only: the node helper imports it on every job.

    python -P -m MODULE enter ...   (ENTER and its flags below)
    python -P -m MODULE run [SINGLE_RULE] -- PROGRAM ARGS
    python -P -m MODULE leave [JOB_LEASE JOBID]
"""

MODULE = "snakemake_executor_plugin_frozen.node"

# The subcommands.
ENTER = "enter"
RUN = "run"
LEAVE = "leave"

# The flags of `enter` (JOB_LEASE is one of `leave` too).
ARCHIVE = "--archive"
SHA256 = "--sha256"
ID = "--id"
CODE_ROOT = "--code-root"
PREFIX = "--prefix"
SCRATCH = "--scratch"
SCRATCH_PATH = "--scratch-path"
KEEP = "--keep"
STALE_AFTER = "--stale-after"
HOLDER = "--holder"
JOB_LEASE = "--job-lease"

# The flag of `run` for a job that is no group.
SINGLE_RULE = "--single-rule"

# The default of STALE_AFTER: a script leaves the flag out for it.
STALE_AFTER_SECONDS = 24 * 3600.0

# What `enter` exports; the script and the job's command read them (jobsite/sitecustomize.py
# too, which cannot import this package: it runs in whatever Python the job starts).
FROZEN_DIR = "FROZEN_DIR"  # the copy of the code root: the job runs from there
FROZEN_COPY = "FROZEN_COPY"  # the extracted copy (FROZEN_DIR or above it)
FROZEN_SCRATCH = "FROZEN_SCRATCH"  # the scratch folder, resolved (for the other nodes)
FROZEN_SNAPSHOT = "FROZEN_SNAPSHOT"  # the snapshot id
FROZEN_CODE_ROOT = "FROZEN_CODE_ROOT"  # the live code root
FROZEN_JOB_DIR = "FROZEN_JOB_DIR"  # the job's own folder, which is also its lease
FROZEN_KEEP = "FROZEN_KEEP"  # "1": `leave` keeps the copy after the last job
FROZEN_PYTHONPATH = "FROZEN_PYTHONPATH"  # the frozen import folders

# The job's view of its code (node/view.py): `run` enters it when given VIEW, with the
# folders bound whole as WHOLE (one flag each) and PER_JOB_COPY for a private writable copy.
VIEW = "--view"
VIEW_AUTO = "auto"  # the mount view where the node allows it, else the Python-level freeze
VIEW_MOUNT = "mount"  # the mount view, or the job fails
VIEW_PYTHON = "python"  # no mount view: Python's open() and imports only
WHOLE = "--whole"
LIVE = "--live"  # a file of the copy left live: the workflow wrote it while it was parsed
PER_JOB_COPY = "--per-job-copy"
# `srun` of a job in the view runs the job's wrapper, which calls `SRUN` (node/srun_wrapper.py);
# each task then enters the view by `VIEW_EXEC -- PROGRAM ARGS` on its node.
SRUN = "srun"
VIEW_EXEC = "view-exec"

# What `run` adds for the job's command when it entered the view; `view-exec` reads them.
FROZEN_VIEW = "FROZEN_VIEW"  # VIEW_MOUNT in the mount view (jobsite/sitecustomize.py reads it)
FROZEN_VIEW_REQUEST = "FROZEN_VIEW_REQUEST"  # VIEW_AUTO or VIEW_MOUNT, as asked
FROZEN_VIEW_WHOLE = "FROZEN_VIEW_WHOLE"  # the WHOLE folders, as a JSON list
FROZEN_VIEW_LIVE = "FROZEN_VIEW_LIVE"  # the LIVE files, as a JSON list
FROZEN_WRAPPERS = "FROZEN_WRAPPERS"  # the job's folder of wrappers (srun), first on PATH
