"""The `--frozen-*` settings (profile keys `frozen-*`) and the plugin's common settings.

Kept free of heavy imports: Snakemake imports every installed executor plugin on every run
to build its command line parser.
"""

from dataclasses import dataclass, field

from snakemake_interface_executor_plugins.settings import CommonSettings, ExecutorSettingsBase

from .settings_checks import COPIES, MODES, SUBMITTERS, VIEWS, check
from .slurm.call_budget import DEFAULT_PER_MINUTE, MIN_GAP

DEFAULT_LOGDIR = ".snakemake/frozen_logs"
DEFAULT_EXCLUDE_FOLDERS = (".git", ".snakemake", "wandb", "outputs", "datasets")
DEFAULT_CODE_SUFFIXES = (".py", ".sh", ".yaml", ".yml", ".toml", ".smk")


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    mode: str = field(
        default="freeze",
        metadata={
            "help": "freeze: every job runs from the snapshot taken at submission (default); "
            "archive: the snapshot is only placed next to the rule logs as a record, jobs run "
            "the live code; off: a plain SLURM executor.",
            "choices": MODES,
        },
    )
    view: str = field(
        default="auto",
        metadata={
            "help": "How a frozen job sees its code. mount: every program of the job sees the "
            "snapshot's files at their live paths (a mount namespace of the job's own; an "
            "unprivileged user namespace for ordinary users), and a node that cannot give "
            "one fails the job, saying why; python: only Python's open() and imports are "
            "redirected to the snapshot (shell: commands read live files); auto: mount "
            "where the node allows it, else python, said at the end of the run (default).",
            "choices": VIEWS,
        },
    )
    copy: str = field(
        default="shared",
        metadata={
            "help": "shared: the code is read-only in the job's view, and a write into it "
            "fails (default); per-job: each job gets its own private, writable copy of the "
            "code, gone when the job ends (writes reach neither the live files nor other "
            "jobs). Needs the mount view.",
            "choices": COPIES,
        },
    )
    submit: str = field(
        default="sbatch",
        metadata={
            "help": "sbatch: submit to SLURM (default); local: run the same batch script as a "
            "local process (a workstation without SLURM).",
            "choices": SUBMITTERS,
        },
    )
    logdir: str = field(
        default=DEFAULT_LOGDIR,
        metadata={
            "help": "Directory for SLURM logs, batch scripts and the per-rule code archives "
            "(rule_<rule>/code-<id>.tar.zst). Relative to the working directory.",
        },
    )
    scratch: str = field(
        default="",
        metadata={
            "help": "Node-local directory to extract snapshots into, resolved ON THE NODE. "
            "Write variables as {VAR} (e.g. '{LOCAL_SCRATCH}/frozen'), because Snakemake "
            "expands $VAR in profiles on the login node. Default: $SLURM_TMPDIR, else "
            "$TMPDIR, else /tmp.",
        },
    )
    keep_extracted: bool = field(
        default=False,
        metadata={
            "help": "Keep the extracted copy on the node after its last job ends "
            "(default: removed)."
        },
    )
    scratch_max_age_hours: float = field(
        default=24.0,
        metadata={
            "help": "Extracted copies (kept ones too) and lock files that killed jobs left "
            "in node scratch are removed by a later job on that node once unused this many "
            "hours and held by no running job (default 24; 'inf': never)."
        },
    )
    code_root: str = field(
        default="",
        metadata={
            "help": "Root of the code to snapshot. Default: the git top level of the "
            "Snakefile's directory, else the Snakefile's directory.",
        },
    )
    # Lists take nargs without `type`: Snakemake then infers the element type, whereas
    # `type=str` would turn the whole list into its repr.
    exclude_folders: list[str] = field(
        default_factory=lambda: list(DEFAULT_EXCLUDE_FOLDERS),
        metadata={
            "help": "Folder names never packed, at any depth "
            "(default: .git .snakemake wandb outputs datasets).",
            "nargs": "+",
        },
    )
    code_suffixes: list[str] = field(
        default_factory=lambda: list(DEFAULT_CODE_SUFFIXES),
        metadata={
            "help": "File suffixes packed even when gitignored (default: .py .sh .yaml .yml "
            ".toml .smk; files named Snakefile always).",
            "nargs": "+",
        },
    )
    exclude: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Extra gitignore-style patterns to leave out of the snapshot.",
            "nargs": "+",
        },
    )
    allow_secrets: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Gitignore-style patterns of files that look like credentials (.env*, "
            "*.pem, *.key, id_rsa*, .netrc, *credential*, *secret*, *token*, .ssh/, .aws/, "
            "...) to pack anyway; by default they are left out of the snapshot.",
            "nargs": "+",
        },
    )
    max_size_mb: int = field(
        default=200,
        metadata={"help": "Refuse a snapshot whose selected files exceed this many MB."},
    )
    skip_size_check: bool = field(
        default=False, metadata={"help": "Do not refuse large snapshots."}
    )
    level: int = field(
        default=3, metadata={"help": "zstd compression level of the snapshot (1-22)."}
    )
    qos: str = field(default="", metadata={"help": "SLURM QoS for every job (--qos)."})
    reservation: str = field(
        default="", metadata={"help": "SLURM reservation for every job (--reservation)."}
    )
    requeue: bool = field(
        default=False, metadata={"help": "Let SLURM requeue jobs after node failure or preemption."}
    )
    no_requeue: bool = field(
        default=False,
        metadata={
            "help": "Never let SLURM requeue a job (--no-requeue), whatever the cluster's "
            "default; excludes --frozen-requeue."
        },
    )
    array_jobs: str = field(
        default="",
        metadata={
            "help": "Rules whose ready jobs are submitted as SLURM job arrays, one sbatch per "
            "batch: comma-separated rule names, or 'all'. Group jobs are never arrays."
        },
    )
    array_limit: int = field(
        default=1000,
        metadata={"help": "Most tasks per job array (also capped by the cluster's MaxArraySize)."},
    )
    stuck_minutes: float = field(
        default=10.0,
        metadata={
            "help": "End a job as an error, and cancel it, once it has stayed this many "
            "minutes in a state it may never leave on its own: pending for a reason no "
            "waiting resolves (PartitionConfig, BadConstraints, ...), COMPLETING, or NODE_FAIL/"
            "PREEMPTED that SLURM does not requeue (with --frozen-requeue); also once SLURM "
            "has not known it that long."
        },
    )
    status_calls_per_minute: float = field(
        default=DEFAULT_PER_MINUTE,
        metadata={
            "help": "Most status calls (sacct, squeue, scontrol) a run makes a minute, evenly "
            f"spaced and never two within {MIN_GAP:g} s, however many jobs it has: the controller "
            "is shared. A job's end is noticed from its own end hint within a second; SLURM "
            "confirms it in the next call."
        },
    )
    gc_keep_last: int = field(
        default=0,
        metadata={
            "help": "At the end of each run, remove the snapshots of this working directory "
            "beyond the N last used, with their rule-log copies, batch scripts and logs "
            "(never what a pending or running job needs; as 'snakemake-frozen gc "
            "--keep-last N'). 0: keep everything (default)."
        },
    )
    gc_older_than_days: float = field(
        default=0,
        metadata={
            "help": "At the end of each run, remove what was last used more than this many "
            "days ago (as 'snakemake-frozen gc --older-than DAYS'; with --frozen-gc-keep-last, "
            "only what is beyond both). 0: keep everything (default)."
        },
    )
    exclude_failed_nodes: str = field(
        default="",
        metadata={
            "help": "Comma-separated nodes never to submit to (--exclude). Nodes on which a "
            "job ends NODE_FAIL are added for the rest of the run."
        },
    )

    def __post_init__(self) -> None:
        check(self)


common_settings = CommonSettings(
    non_local_exec=True,
    implies_no_shared_fs=False,
    # frozen makes and ships its own snapshot; Snakemake's source upload is for clusters
    # without a shared file system.
    job_deploy_sources=False,
    pass_default_storage_provider_args=True,
    pass_default_resources_args=True,
    # Jobs are started with `sbatch --export=ALL`, which carries the environment over.
    pass_envvar_declarations_to_cmd=False,
    auto_deploy_default_storage_provider=False,
    init_seconds_before_status_checks=1,
)
