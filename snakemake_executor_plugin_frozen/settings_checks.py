"""Every ``--frozen-*`` value checked when the settings are made, before the workflow is
parsed or anything is submitted (``snakemake -n`` too): one line naming the option, its
profile key and what to give instead.

The error is an ``ApiError``: Snakemake prints it as one ``Error: ...`` line, where a
``WorkflowError`` would carry the plugin's stack frames along.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from snakemake_interface_common.exceptions import ApiError

if TYPE_CHECKING:
    from .settings import ExecutorSettings

# zstd's highest level; the lowest offered is 1 (its negative "fast" levels are not).
MAX_LEVEL = 22
# The values the choice settings take (settings.py offers them to argparse).
MODES = ("freeze", "archive", "off")
SUBMITTERS = ("sbatch", "local")
VIEWS = ("auto", "mount", "python")
COPIES = ("shared", "per-job")


class SettingError(ApiError):
    """A ``--frozen-*`` value that cannot work; the message says which and what to give."""


def _name(setting: str) -> str:
    dashed = setting.replace("_", "-")
    return f"--frozen-{dashed} (profile key frozen-{dashed})"


def _at_least(settings: ExecutorSettings, setting: str, low: float, above: bool = False) -> None:
    value = getattr(settings, setting)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or math.isnan(value) or (value <= low if above else value < low):
        bound = f"above {low:g}" if above else f"{low:g} or more"
        raise SettingError(f"frozen: {_name(setting)} is {value!r}: give a number {bound}")


def _one_of(settings: ExecutorSettings, setting: str, choices: tuple[str, ...]) -> None:
    value = getattr(settings, setting)
    if value not in choices:
        raise SettingError(
            f"frozen: {_name(setting)} is {value!r}: give one of {', '.join(choices)}"
        )


def _finite(settings: ExecutorSettings, setting: str) -> None:
    value = getattr(settings, setting)
    if math.isinf(value):
        raise SettingError(f"frozen: {_name(setting)} is {value!r}: give a finite number")


def check(settings: ExecutorSettings) -> None:
    """Raise SettingError for the first value of ``settings`` that cannot work."""
    for setting, choices in (("mode", MODES), ("view", VIEWS), ("copy", COPIES)):
        _one_of(settings, setting, choices)
    _one_of(settings, "submit", SUBMITTERS)
    if settings.copy == "per-job" and settings.view == "python":
        raise SettingError(
            "frozen: --frozen-copy per-job needs the mount view, which --frozen-view python "
            "turns off: with Python-level freezing a write into the code would reach the live "
            "file. Use --frozen-view auto or mount."
        )
    if not settings.logdir.strip():
        raise SettingError(f"frozen: {_name('logdir')} is empty: give a folder")
    scratch = settings.scratch
    if scratch and not scratch.startswith(("/", "{")):
        raise SettingError(
            f"frozen: {_name('scratch')} {scratch!r} is a relative path: it would be resolved "
            "in the working directory on each node (and land in the code). Give an absolute "
            "node-local folder, e.g. '{LOCAL_SCRATCH}/frozen' or '/tmp'."
        )
    _at_least(settings, "scratch_max_age_hours", 0)
    _at_least(settings, "max_size_mb", 0, above=True)
    _finite(settings, "max_size_mb")
    if not (isinstance(settings.level, int) and 1 <= settings.level <= MAX_LEVEL):
        raise SettingError(
            f"frozen: {_name('level')} is {settings.level!r}: give a zstd level from 1 to "
            f"{MAX_LEVEL} (3, the default, packs fast; higher levels pack smaller, slower)"
        )
    _at_least(settings, "array_limit", 1)
    _at_least(settings, "stuck_minutes", 0, above=True)
    _at_least(settings, "status_calls_per_minute", 0, above=True)
    _finite(settings, "status_calls_per_minute")
    _at_least(settings, "gc_keep_last", 0)
    _at_least(settings, "gc_older_than_days", 0)
    _finite(settings, "gc_older_than_days")
    _check_slurm_lists(settings)


def _check_slurm_lists(settings: ExecutorSettings) -> None:
    from .slurm.sbatch_options import SlurmSubmitError, node_list
    from .slurm.submit import SubmitSettings

    rules = [name.strip() for name in settings.array_jobs.split(",") if name.strip()]
    bad = [name for name in rules if not name.isidentifier()]
    if bad:
        raise SettingError(
            f"frozen: {_name('array_jobs')} names {bad[0]!r}, which is no rule name: give "
            "rule names separated by commas, or 'all'"
        )
    try:
        excluded = frozenset(node_list(settings.exclude_failed_nodes))
        SubmitSettings(
            requeue=settings.requeue, no_requeue=settings.no_requeue, exclude_nodes=excluded
        )
    except SlurmSubmitError as e:  # a ValueError too: first
        raise SettingError(f"frozen: {e}") from None
    except ValueError as e:
        raise SettingError(
            f"frozen: {_name('exclude_failed_nodes')}: {e}; give node names or hostlist "
            "expressions separated by commas, e.g. 'node1,gpu[3-4]'."
        ) from None
