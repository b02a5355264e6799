"""Snakemake's command for a job as the batch script runs it (job_command.py): every value
Snakemake's own formatter passes is quoted for bash, and what would not reach the job's
Snakemake intact is refused before anything is submitted."""

import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest
from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.utils import format_cli_arg

from snakemake_executor_plugin_frozen import job_command
from snakemake_executor_plugin_frozen.job_command import bash_quoted_job_exec, frozen_general_args


class Job:
    name = "count"
    wildcards: ClassVar[dict[str, str]] = {"sample": "a"}

    def is_group(self) -> bool:
        return False

    def get_target_spec(self) -> list:
        return []

    def get_wait_for_files(self) -> list:
        return []


def test_values_reach_bash_as_they_were(tmp_path: Path) -> None:
    hostile = 'it\'s $(touch pwned) `x` "q" ünï'
    command = bash_quoted_job_exec(
        lambda: "printf '%s\\n' " + format_cli_arg("--x", hostile), Job(), "/tmp"
    )
    out = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True)
    assert out.stdout.splitlines() == ["--x", hostile]
    assert not (tmp_path / "pwned").exists()


def test_a_formatter_no_longer_used_is_refused() -> None:
    with pytest.raises(WorkflowError, match="no longer formats job arguments"):
        bash_quoted_job_exec(lambda: "snakemake --forceall", Job(), "/tmp")


def test_a_control_character_outside_quotes_is_refused() -> None:
    with pytest.raises(WorkflowError, match=r"rule count .*control character"):
        bash_quoted_job_exec(lambda: format_cli_arg("--x", "a") + " \x1b[2J", Job(), "/tmp")


@pytest.mark.parametrize("shares_cache", [True, False])
def test_frozen_jobs_get_only_options_their_snakemake_knows(
    monkeypatch: pytest.MonkeyPatch, shares_cache: bool
) -> None:
    """Their own runtime source cache where Snakemake would hand them the main process's
    (9.13.5 on: before, it knew no such option and each job had a private one); the frozen
    config files; --replace-workflow-config when job_config_files asks for it (never before
    Snakemake 9)."""
    monkeypatch.setattr(job_command, "jobs_share_runtime_source_cache", lambda: shares_cache)
    snapshot = SimpleNamespace(in_copy=lambda path: f'"$FROZEN_COPY{path}"')
    cache = '--runtime-source-cache-path "$FROZEN_JOB_DIR/source-cache" ' if shares_cache else ""
    configs = [Path("/wf/a.yaml"), Path("/b.yaml")]
    assert frozen_general_args(snapshot, configs, True) == (
        f'{cache}--configfiles "$FROZEN_COPY/wf/a.yaml" "$FROZEN_COPY/b.yaml" '
        "--replace-workflow-config"
    )
    assert frozen_general_args(snapshot, configs[:1], False) == (
        f'{cache}--configfiles "$FROZEN_COPY/wf/a.yaml"'
    )
    assert frozen_general_args(snapshot, [], False) == cache.strip()
