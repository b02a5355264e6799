"""Every ``--frozen-*`` value is checked when the settings are made: a bad one stops even
``snakemake -n`` with one clean line naming the option, before anything is parsed or
submitted (issue 16 item 7)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from snakemake_executor_plugin_frozen.settings import ExecutorSettings
from snakemake_executor_plugin_frozen.settings_checks import SettingError

SNAKEFILE = 'rule a:\n    output: "a.txt"\n    shell: "touch {output}"\n'


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"level": 0}, "--frozen-level"),
        ({"level": 23}, "--frozen-level"),
        ({"max_size_mb": 0}, "--frozen-max-size-mb"),
        ({"max_size_mb": math.inf}, "--frozen-max-size-mb"),
        ({"gc_keep_last": -2}, "--frozen-gc-keep-last"),
        ({"gc_older_than_days": math.nan}, "--frozen-gc-older-than-days"),
        ({"gc_older_than_days": -1}, "--frozen-gc-older-than-days"),
        ({"scratch_max_age_hours": -1}, "--frozen-scratch-max-age-hours"),
        ({"stuck_minutes": 0}, "--frozen-stuck-minutes"),
        ({"array_limit": 0}, "--frozen-array-limit"),
        ({"array_jobs": "a, b c"}, "--frozen-array-jobs"),
        ({"exclude_failed_nodes": "node1, a/b"}, "--frozen-exclude-failed-nodes"),
        ({"requeue": True, "no_requeue": True}, "--frozen-no-requeue"),
        ({"copy": "per-job", "view": "python"}, "--frozen-view"),
        ({"mode": "frozen"}, "--frozen-mode"),
        ({"scratch": "scratch/here"}, "--frozen-scratch"),
        ({"logdir": " "}, "--frozen-logdir"),
    ],
)
def test_a_bad_value_is_refused_naming_its_option(values: dict, named: str) -> None:
    with pytest.raises(SettingError) as caught:
        ExecutorSettings(**values)
    assert named in str(caught.value), caught.value


def test_the_defaults_and_good_values_pass() -> None:
    ExecutorSettings()
    ExecutorSettings(
        level=19,
        gc_keep_last=3,
        scratch_max_age_hours=math.inf,
        array_jobs="align, call_variants",
        exclude_failed_nodes="node1,gpu[3-4]",
        scratch="{LOCAL_SCRATCH}/frozen",
    )


def test_a_dry_run_stops_with_one_clean_line(tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(
        'rule a:\n    output: "a.txt"\n    shell: "touch {output}"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--executor", "frozen", "-j1",
         "--frozen-gc-keep-last", "-2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "frozen-gc-keep-last" in line]
    assert errors == [
        "Error: frozen: --frozen-gc-keep-last (profile key frozen-gc-keep-last) is -2: give "
        "a number 0 or more"
    ], result.stderr
    assert 'File "' not in result.stderr
    assert "Building DAG" not in result.stderr  # stopped before the workflow was parsed
    assert not (tmp_path / ".snakemake" / "frozen").exists()


def test_a_run_that_cannot_start_says_why_in_one_clean_line(tmp_path: Path) -> None:
    """Refusals before the first job (here: the code too large to pack) carry no stack
    frames of the plugin (issue 16 item 7)."""
    (tmp_path / "Snakefile").write_text(
        'rule a:\n    output: "a.txt"\n    shell: "touch {output}"\n'
    )
    (tmp_path / "big.py").write_bytes(b"x" * 2_000_000)
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--executor", "frozen", "--frozen-submit", "local",
         "-j1", "--frozen-max-size-mb", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Error: frozen: cannot snapshot" in result.stderr, result.stderr
    assert 'File "' not in result.stderr and "WorkflowError" not in result.stderr
    assert not (tmp_path / "a.txt").exists()
