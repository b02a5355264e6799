"""What Snakemake itself knows about a workflow's code and jobs: the code root, the source
files that must be in every snapshot, the config files in the order they were loaded, and a
job's wildcards, inputs, outputs and resources.

These read Snakemake attributes outside the stable executor interface (`workflow.included`,
`workflow.rules`, `workflow.configfiles`, `job.wildcards`, `job.output`, ...); the package
pins snakemake <10 for that reason. Nothing else in the package reads them.
"""

import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_frozen.programs import conda_file
from snakemake_executor_plugin_frozen.snapshot.git import is_ignored, try_git

# Snakemake hashes a conda env from its file and these siblings (deployment/conda.py).
_CONDA_ENV_SIBLINGS = (".post-deploy.sh", ".pin.txt")


def code_root_for(snakefile: Path, setting: str) -> Path:
    """The tree to snapshot: the setting, else the git top level above the Snakefile, else
    the Snakefile's own directory."""
    if setting:
        root = Path(setting).expanduser().resolve()
        if not root.is_dir():
            raise WorkflowError(
                f"frozen: code root {root} (setting frozen-code-root) is not a directory."
            )
        return root
    directory = snakefile.resolve().parent
    toplevel = try_git(["rev-parse", "--show-toplevel"], str(directory))
    # A Snakefile the repository ignores (a scratch copy inside another project) does not
    # belong to that repository's code.
    if toplevel is None or is_ignored(snakefile.name, str(directory)):
        return directory
    return Path(toplevel.decode().strip()).resolve()


def _local_path(source: Any) -> str | None:
    """A local filesystem path for a Snakemake source file object or string, else None."""
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        return None if "://" in path else path
    if type(source).__name__ != "LocalSourceFile":
        return None
    return _path_or_uri(source)


def _path_or_uri(source: Any) -> str:
    """A Snakemake source file's path or URI, any token left out where Snakemake can (its
    `secret_free` argument came with 9.13.5; before it, a local file's path is all there is)."""
    try:
        return source.get_path_or_uri(secret_free=True)
    except TypeError:
        return source.get_path_or_uri()


def _rule_relative(path: str, rule: Any) -> str:
    if os.path.isabs(path):
        return path
    return os.fspath(_path_or_uri(rule.basedir.join(path)))


def snakemake_sources(workflow: Any, jobs: Iterable[Any]) -> list[Path]:
    """Snakefiles, includes, scripts, notebooks, conda env files and config files: the files
    a job re-reads, which therefore must be in the snapshot whatever the selection rules say.

    Unlike `dag.get_sources()` this leaves out its `git ls-files` listing of the working
    directory: that is discovery (the snapshot engine's job, with its own rules), and in a
    workdir outside the code root it lists data, not code.
    """
    files: set[str] = set()
    for source in workflow.included:
        path = _local_path(source)
        if path:
            files.add(path)
    for rule in workflow.rules:
        script = _local_path(rule.script or rule.notebook or "")
        if script:
            files.add(_rule_relative(script, rule))
    for job in jobs:
        spec = getattr(job, "conda_env_spec", None)
        if spec is not None and spec.is_file:
            path = _local_path(spec.file)
            if path:
                env = _rule_relative(path, job.rule)
                files.add(env)
                stem = env.rsplit(".", 1)[0]
                files.update(stem + s for s in _CONDA_ENV_SIBLINGS if os.path.exists(stem + s))
    files.update(os.fspath(f) for f in config_files_in_load_order(workflow))
    return sorted(Path(f).resolve() for f in files)


def runtime_cached_sources(workflow: Any) -> list[Path]:
    """The local files Snakemake's main process read as workflow sources: Snakefiles,
    includes, modules, scripts and `workflow.source_path()` targets. Its runtime source cache
    holds a copy of each, under `file/<absolute path>`, whatever API reached it."""
    try:
        cache = Path(workflow.sourcecache.runtime_cache_path) / "file"
    except (AttributeError, TypeError):
        return []
    found = []
    for folder, _, names in os.walk(cache):
        for name in names:
            original = Path("/", Path(folder, name).relative_to(cache))
            if original.is_file():
                found.append(original)
    return found


def workflow_outputs(jobs: Iterable[Any], workdir: Path) -> list[Path]:
    """Outputs, logs and benchmarks of the DAG's jobs (files and `directory()` folders):
    data the workflow makes, never code, wherever they lie."""
    paths: set[str] = set()
    for job in jobs:
        benchmark = getattr(job, "benchmark", None)
        for path in (*job.output, *getattr(job, "log", ()), *([benchmark] if benchmark else [])):
            paths.add(os.path.normpath(os.path.join(workdir, os.fspath(path))))
    return sorted(Path(p) for p in paths)


def job_config_files(workflow: Any) -> tuple[list[Path], bool]:
    """The config files every job gets (as frozen copies, by --configfiles), and whether
    the job needs --replace-workflow-config.

    Jobs get all of them, directives first, with --replace-workflow-config: a `configfile:`
    directive re-run in the job would read the live file, and a key deleted from the frozen
    copy must not come back from it. When the user replaced the workflow's config
    (--replace-workflow-config with config given on the command line), the main process
    dropped the directives' files; so do the jobs, which get the command line's files only.
    """
    settings = getattr(workflow, "config_settings", None)
    if not hasattr(settings, "replace_workflow_config"):
        # Snakemake 8 has no --replace-workflow-config: its jobs, like its main process,
        # lay the command line's files over the directives' (their frozen copies, given last
        # here, win over whatever a `configfile:` directive re-read).
        return config_files_in_load_order(workflow), False
    replaced = bool(
        settings.replace_workflow_config and getattr(settings, "overwrite_config", None)
    )
    if replaced:
        files = [Path(f).resolve() for f in workflow.overwrite_configfiles or ()]
        return list(dict.fromkeys(files)), True
    files = config_files_in_load_order(workflow)
    return files, bool(files)


def jobs_share_runtime_source_cache() -> bool:
    """Whether this Snakemake hands its jobs the main process's runtime source cache
    (--runtime-source-cache-path, from 9.13.5 on): then each frozen job must be given one of
    its own. Before, each job's Snakemake made a private one and knows no such option."""
    try:
        from snakemake.settings.types import WorkflowSettings
    except ImportError:  # before 8.11, one module
        from snakemake.settings import WorkflowSettings

    return any(f.name == "runtime_source_cache_path" for f in fields(WorkflowSettings))


def modules_imported_from(root: Path, modules: Iterable[Any]) -> dict[str, Path]:
    """Modules this process imported from files inside `root` (not from an environment
    that lies there), by name: the code a job imports too."""
    environments = {Path(p).resolve() for p in (sys.prefix, sys.exec_prefix, sys.base_prefix)}
    found = {}
    for module in list(modules):
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or not file.endswith(".py"):
            continue
        path = Path(file).resolve()
        if not path.is_relative_to(root) or "site-packages" in path.parts:
            continue
        if any(path.is_relative_to(env) for env in environments):
            continue
        found[module.__name__] = path
    return found


def config_files_in_load_order(workflow: Any) -> list[Path]:
    """Config files by increasing precedence: `configfile:` directives, then --configfiles
    (Snakemake applies the command line ones over the directives)."""
    cli = [Path(f).resolve() for f in workflow.overwrite_configfiles or ()]
    directives = [Path(f).resolve() for f in workflow.configfiles]
    ordered = [f for f in directives if f not in cli] + cli
    return list(dict.fromkeys(ordered))


def process_start_time() -> float | None:
    """When this process started (epoch seconds, to a clock tick), from /proc; None elsewhere."""
    try:
        with open("/proc/self/stat") as stat:
            # Field 22 (starttime, clock ticks after boot); the command name before it may
            # contain spaces, so count from the closing parenthesis.
            ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
        since_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    # Not /proc/stat's btime: it is truncated to whole seconds.
    return time.time() - (since_boot - ticks / os.sysconf("SC_CLK_TCK"))


def changed_since(
    paths: list[Path], started: float | None, slack: float = 1.0, now: float | None = None
) -> list[Path]:
    """The files modified between `started` and now: their snapshot may differ from what
    Snakemake parsed when the run began. `slack` covers the clocks' resolution; a file
    stamped in the future tells of a file server's clock running ahead, not of an edit."""
    if started is None:
        return []
    now = time.time() if now is None else now
    changed = []
    for path in paths:
        try:
            if started + slack < path.stat().st_mtime <= now + slack:
                changed.append(path)
        except FileNotFoundError:
            changed.append(path)
    return changed


@dataclass(frozen=True)
class WorkflowCode:
    """What the run's snapshot is taken from, as Snakemake parsed the workflow."""

    snakefile: Path  # the main Snakefile, resolved
    sources: tuple[Path, ...]  # files every snapshot must hold, sorted
    shell_commands: tuple[tuple[str, str], ...]  # (rule, its shell: command)
    conda_files: tuple[tuple[str, Path], ...]  # (rule, its conda environment file)
    outputs: tuple[Path, ...]  # data the workflow makes (workflow_outputs)


def workflow_code(workflow: Any, jobs: Iterable[Any], workdir: Path) -> WorkflowCode:
    jobs = list(jobs)
    rules = workflow.rules
    return WorkflowCode(
        snakefile=Path(workflow.main_snakefile).resolve(),
        sources=tuple(
            sorted({*snakemake_sources(workflow, jobs), *runtime_cached_sources(workflow)})
        ),
        shell_commands=tuple((rule.name, rule.shellcmd) for rule in rules if rule.shellcmd),
        conda_files=tuple(
            (rule.name, path)
            for rule in rules
            if (path := conda_file(rule.conda_env, str(rule.basedir))) is not None
        ),
        outputs=tuple(workflow_outputs(jobs, workdir)),
    )


def job_wildcards(job: Any) -> dict[str, str]:
    # Group jobs have none.
    wildcards = getattr(job, "wildcards", None)
    return {k: str(v) for k, v in wildcards.items()} if wildcards else {}


def job_outputs(job: Any) -> list[str]:
    """The job's outputs as Snakemake names them; a group job's are those of its jobs."""
    jobs = getattr(job, "jobs", None) if job.is_group() else [job]
    return [str(path) for member in jobs or () for path in getattr(member, "output", ())]


def job_inputs(job: Any) -> list[str]:
    """The job's inputs as Snakemake names them; a group job's are those it reads from
    outside the group."""
    return [str(path) for path in getattr(job, "input", ())]


def job_resources(job: Any) -> dict[str, Any]:
    return dict(job.resources.items())
