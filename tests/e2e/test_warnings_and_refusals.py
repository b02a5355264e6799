"""What the executor tells the user before any job runs: code a `shell:` command reaches by a
workdir-relative path, and a missing sbatch."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.snakemake import run_snakemake

from snakemake_executor_plugin_frozen.jobscript import frozen_path
from snakemake_executor_plugin_frozen.leaks import shell_leaks

ROOT = Path("/home/ann/wf")
FILES = {"scripts/tool.py", "workflow/scripts/x.sh", "Snakefile"}


def test_relative_paths_to_snapshot_files_are_leaks() -> None:
    command = "python scripts/tool.py {input} > {output}; bash ./workflow/scripts/x.sh"
    assert shell_leaks(command, ROOT, ROOT, FILES) == ["scripts/tool.py", "./workflow/scripts/x.sh"]


def test_the_recommended_forms_are_not_leaks() -> None:
    command = (
        'python {workflow.basedir}/scripts/tool.py; bash "$FROZEN_DIR/workflow/scripts/x.sh"; '
        "cat data/scripts/tool.py"
    )
    assert shell_leaks(command, ROOT, ROOT, FILES) == []


def test_paths_are_taken_relative_to_the_workdir() -> None:
    """With the workdir below the code root, `../scripts/tool.py` names a snapshot file."""
    workdir = ROOT / "runs"
    assert shell_leaks("python ../scripts/tool.py", workdir, ROOT, FILES) == ["../scripts/tool.py"]
    assert shell_leaks("python scripts/tool.py", workdir, ROOT, FILES) == []


def test_frozen_paths_expand_only_our_variable(tmp_path: Path) -> None:
    awkward = 'dir with space/$HOME/"quoted"/`tick`\\x.py'
    word = frozen_path(awkward)
    out = subprocess.run(
        ["bash", "-c", f"printf %s {word}"],
        capture_output=True,
        text=True,
        env={"FROZEN_DIR": "/f", "HOME": "/nope"},
        check=True,
    )
    assert out.stdout == "/f/" + awkward


def test_the_executor_warns_per_rule(tmp_path: Path) -> None:
    workdir = tmp_path / "wf"
    (workdir / "scripts").mkdir(parents=True)
    (workdir / "scripts" / "tool.py").write_text("print('live tool')\n")
    (workdir / "Snakefile").write_text(
        "rule all:\n"
        "    input: 'a.txt', 'b.txt'\n"
        "rule leaky:\n"
        "    output: '{name}.txt'\n"
        "    shell: 'python scripts/tool.py > {output}'\n"
    )
    # Only the Python view reads live files there; the mount view (the default) does not.
    python_view = ("--frozen-view", "python")
    result = run_snakemake(
        workdir, "--executor", "frozen", "--frozen-submit", "local", "-j2", *python_view
    )
    warnings = [line for line in result.stderr.splitlines() if "LIVE file" in line]
    assert len(warnings) == 1, result.stderr
    assert "rule leaky" in warnings[0] and "scripts/tool.py" in warnings[0]
    assert (workdir / "a.txt").read_text() == "live tool\n"


def test_without_sbatch_the_run_stops_at_once_saying_what_to_do(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with the basics but no SLURM commands
    bin_dir.mkdir()
    for tool in ("bash", "sh", "git", "env", "uname"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(
        "rule a:\n    output: 'a.txt'\n    shell: 'touch {output}'\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--executor", "frozen", "-j1"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(bin_dir)},
    )
    assert result.returncode != 0
    assert "sbatch was not found on PATH" in result.stderr
    assert "--frozen-submit local" in result.stderr
    assert not (workdir / ".snakemake" / "frozen_logs").exists()


@pytest.mark.slurm
def test_submission_warnings_once_per_rule_and_refusals_that_say_what_to_do(
    tmp_path: Path,
) -> None:
    """Three jobs of one rule without runtime/mem_mb: one warning of each kind for the rule.
    A job with more threads than a node has CPUs, alone and in a group: sbatch's refusal is
    shown (for the group too, whose error Snakemake reports without a message), with the way
    to ask for fewer threads, and no claim of attempts that were never made."""
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(
        "rule all:\n"
        "    input: expand('{n}.txt', n=[1, 2, 3]), 'big.txt', 'grouped.txt'\n"
        "rule small:\n"
        "    output: '{n}.txt'\n"
        "    shell: 'touch {output}'\n"
        "rule big:\n"
        "    output: 'big.txt'\n"
        "    threads: 8\n"
        "    shell: 'touch {output}'\n"
        "rule grouped:\n"
        "    output: 'grouped.txt'\n"
        "    group: 'g'\n"
        "    threads: 8\n"
        "    shell: 'touch {output}'\n"
    )
    result = run_snakemake(
        workdir,
        "--executor",
        "frozen",
        "-j4",
        "--keep-going",
        "--max-threads",
        "8",
        check=False,
        timeout=180,
    )
    assert result.returncode != 0
    log = result.stdout + result.stderr
    runtime = [line for line in log.splitlines() if "no 'runtime' resource" in line]
    assert sum("rule small:" in line for line in runtime) == 1, runtime
    assert all(line.count("rule small") <= 1 for line in runtime), runtime
    assert all((workdir / f"{n}.txt").exists() for n in (1, 2, 3))
    refusals = [line for line in log.splitlines() if "frozen: submitting" in line]
    assert any("rule big" in line for line in refusals), log
    assert any("group g" in line for line in refusals), log
    assert "--max-threads" in log and "--set-threads" in log
    assert "attempt 1 of" not in log


def test_a_module_the_workflow_imports_but_the_snapshot_lacks_is_named(tmp_path: Path) -> None:
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "mymod.py").write_text("VALUE = 1\n")
    (workdir / "Snakefile").write_text(
        "import mymod\nrule a:\n    output: 'a.txt'\n    shell: 'touch {output}'\n"
    )
    result = run_snakemake(
        workdir, "--executor", "frozen", "--frozen-submit", "local", "-j1",
        "--frozen-exclude", "mymod.py", check=False,
    )  # fmt: skip
    (warning,) = [line for line in result.stderr.splitlines() if "module mymod" in line]
    assert "'mymod.py'" in warning and "--frozen-exclude" in warning
    # Without the pattern there is nothing to say.
    quiet = run_snakemake(workdir, "--executor", "frozen", "--frozen-submit", "local", "-j1")
    assert "module mymod" not in quiet.stderr
