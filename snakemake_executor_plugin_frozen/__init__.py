"""snakemake-executor-plugin-frozen: every SLURM job runs the code of submission time.

Snakemake imports every installed executor plugin on every run (even `snakemake -n`), so this
module only names the plugin surface; the snapshot engine and the SLURM calls load with it but
do no work until a workflow runs with `--executor frozen`.
"""

from snakemake_interface_executor_plugins.settings import CommonSettings

from snakemake_executor_plugin_frozen.executor import Executor
from snakemake_executor_plugin_frozen.settings import ExecutorSettings

__all__ = ["Executor", "ExecutorSettings", "common_settings"]

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
