"""What a run does once its jobs are over, besides releasing its lease: the gc the settings
ask for (``--frozen-gc-*``) and the figure of how often it asked SLURM."""

from snakemake_executor_plugin_frozen.record import gc
from snakemake_executor_plugin_frozen.record.errors import RecordError
from snakemake_executor_plugin_frozen.record.layout import Layout
from snakemake_executor_plugin_frozen.settings import ExecutorSettings
from snakemake_executor_plugin_frozen.voice import Voice


def status_rate(calls: int, seconds: float) -> str | None:
    """The run's status queries, and per minute for a run of a minute or more (in a shorter
    one the first call, due at once, would make the rate look higher than the budget)."""
    if not calls:
        return None
    minutes = seconds / 60
    text = f"{calls} status queries in {minutes:.1f} minutes"
    return text if minutes < 1 else f"{text} ({calls / minutes:.1f} per minute)"


def collect_garbage(layout: Layout, settings: ExecutorSettings, voice: Voice) -> None:
    """--frozen-gc-*: the policy of `snakemake-frozen gc`, once the run's jobs are over
    (while its lease keeps its own snapshot)."""
    keep_last = settings.gc_keep_last or None
    older_than = settings.gc_older_than_days or None
    if keep_last is None and older_than is None:
        return
    try:
        report = gc.collect(layout.workdir, layout.logdir, keep_last, older_than, dry_run=False)
    except (RecordError, OSError) as e:
        voice.warn(f"--frozen-gc-*: nothing removed: {e}")
        return
    for note in report.notes:
        voice.say(f"gc: {note}")
    if report.snapshots or report.files:
        voice.say(
            f"gc removed {len(report.snapshots)} snapshot(s) and "
            f"{len(report.files)} file(s) of {len(report.runs)} earlier run(s), "
            f"{report.bytes / 1e6:.1f} MB freed"
        )
