"""snakemake-executor-plugin-frozen: every SLURM job runs the code of submission time.

Snakemake imports every installed executor plugin on every run (even `snakemake -n`), and
every job runs `python -m snakemake_executor_plugin_frozen.node` on its node before and after
its work, which imports this package too. So the plugin surface is loaded on first use:
the node side never imports Snakemake's interfaces.
"""

from typing import Any

__all__ = ["Executor", "ExecutorSettings", "common_settings"]


def __getattr__(name: str) -> Any:
    if name == "Executor":
        from snakemake_executor_plugin_frozen.executor import Executor

        return Executor
    if name == "ExecutorSettings":
        from snakemake_executor_plugin_frozen.settings import ExecutorSettings

        return ExecutorSettings
    if name == "common_settings":
        from snakemake_executor_plugin_frozen.settings import common_settings

        return common_settings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
