"""The plugin as Snakemake sees it: discovery, settings on the command line, cheap import."""

import subprocess
import sys

from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

from snakemake_executor_plugin_frozen import ExecutorSettings


def test_registry_discovers_frozen() -> None:
    registry = ExecutorPluginRegistry()
    assert "frozen" in registry.plugins
    plugin = registry.get_plugin("frozen")
    assert plugin.common_settings.non_local_exec
    assert plugin.settings_cls is ExecutorSettings


def test_help_lists_frozen_settings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--executor", "frozen", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "frozen executor plugin settings" in result.stdout
    for flag in ("--frozen-mode", "--frozen-scratch", "--frozen-logdir", "--frozen-exclude"):
        assert flag in result.stdout


def test_import_is_cheap() -> None:
    """Snakemake imports every plugin on every run: importing this one must not start
    subprocesses or pull in Snakemake's workflow machinery."""
    code = (
        "import sys, subprocess\n"
        "calls = []\n"
        "real = subprocess.Popen.__init__\n"
        "def spy(self, *a, **k):\n"
        "    calls.append(a)\n"
        "    return real(self, *a, **k)\n"
        "subprocess.Popen.__init__ = spy\n"
        "import snakemake_executor_plugin_frozen\n"
        "assert not calls, calls\n"
        "assert 'snakemake.workflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_node_side_imports_nothing_of_snakemake() -> None:
    """Every job runs the node helper twice; it must not pay for Snakemake's interfaces."""
    code = (
        "import sys\n"
        "import snakemake_executor_plugin_frozen.node.__main__\n"  # all that `-m ...node` runs
        "ours = ('snakemake_executor_plugin_frozen', 'snakemake_executor_plugin_frozen.dirfd',\n"
        "        'snakemake_executor_plugin_frozen.slurm',\n"
        "        'snakemake_executor_plugin_frozen.slurm.srun_options')\n"
        "loaded = [m for m in sys.modules if m.startswith('snakemake') and m not in ours\n"
        "          and not m.startswith('snakemake_executor_plugin_frozen.node')]\n"
        "assert loaded == [], loaded\n"
    )
    subprocess.run([sys.executable, "-P", "-c", code], check=True)
