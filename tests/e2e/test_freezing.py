"""The promise of the plugin: a job runs the code of submission time, however the live tree
changes while it waits. Every code file of tests/workflows/versioned says "v1"; while its jobs
wait in the queue (and before the later rule is even submitted) the test rewrites them all to
"v2", then reads back which version each job ran."""

import json
import os
import sysconfig
from pathlib import Path

import pytest
from helpers.snakemake import BackgroundRun, make_workflow

from snakemake_executor_plugin_frozen.snapshot import read_manifest

CODE_FILES = (
    "Snakefile",
    "rules/record.smk",
    "scripts/record.py",
    "scripts/helper_mod.py",
    "wflib.py",
    "src/srcpkg/__init__.py",
    "config/config.yaml",
)
ALL_V1 = {
    "snakefile": "v1",
    "smk": "v1",
    "config": "v1",
    "wflib": "v1",
    "srcpkg": "v1",
    "script": "v1",
    "helper_mod": "v1",
    "srcpkg_in_script": "v1",
}


def edit_code(workdir: Path) -> None:
    for name in CODE_FILES:
        path = workdir / name
        path.write_text(path.read_text().replace("v1", "v2"))
    (workdir / "gate.open").touch()


def record(workdir: Path, stage: str) -> dict:
    return json.loads((workdir / "out" / f"{stage}.json").read_text())


def run_with_edit(
    tmp_path: Path, *args: str, submitted_before_edit: int, editable_install: bool = False
) -> Path:
    """Run with `src/` reached through PYTHONPATH (`export PYTHONPATH=$PWD/src`), or through
    a .pth file in site-packages, which is what `pip install -e .` writes."""
    # The versioned workflow as a git repository of its own (its code root).
    workdir = make_workflow(tmp_path, "versioned", ignore="out/\n.snakemake/\ngate.open\n")
    env = dict(os.environ)
    if editable_install:
        env.pop("PYTHONPATH", None)
        pth = Path(sysconfig.get_paths()["purelib"]) / f"frozen_test_{tmp_path.name}.pth"
        pth.write_text(f"{workdir / 'src'}\n")
    else:
        env["PYTHONPATH"] = str(workdir / "src")
    try:
        with BackgroundRun(workdir, "--jobs", "6", "--latency-wait", "10", *args, env=env) as run:
            run.wait_for_submissions(submitted_before_edit)
            edit_code(workdir)
            code, output = run.finish()
        assert code == 0, output
    finally:
        if editable_install:
            pth.unlink()
    return workdir


@pytest.mark.slurm
def test_queued_and_later_jobs_run_submission_time_code(tmp_path: Path) -> None:
    workdir = run_with_edit(
        tmp_path,
        "--executor",
        "frozen",
        "--set-resources",
        "queued:slurm_extra='--begin=now+20'",
        submitted_before_edit=2,  # `queued` (held by --begin) and `gate` (waits for the edit)
    )
    for stage in ("queued", "later1", "later2"):
        result = record(workdir, stage)
        assert result["versions"] == ALL_V1, stage
        frozen_dir = Path(result["frozen_dir"])
        assert Path(result["srcpkg_file"]).is_relative_to(frozen_dir), result
    # Each node extracted its own copy into its own scratch.
    for n in (1, 2):
        result = record(workdir, f"later{n}")
        assert result["host"] == f"node{n}"
        assert f"/nodes/node{n}/scratch/" in result["frozen_dir"]
    # The code each rule ran sits beside its logs, and it is the v1 code.
    archives = sorted((workdir / ".snakemake" / "frozen_logs").glob("rule_*/code-*.tar.zst"))
    assert {a.parent.name for a in archives} == {"rule_queued", "rule_gate", "rule_later"}
    manifest = read_manifest(archives[0])
    paths = {f.path for f in manifest.files}
    assert {"Snakefile", "rules/record.smk", "src/srcpkg/__init__.py"} <= paths
    assert "out/gate.txt" not in paths


@pytest.mark.slurm
@pytest.mark.parametrize("mode", ["off", "archive"])
def test_without_freezing_jobs_see_the_edit(tmp_path: Path, mode: str) -> None:
    """Proves the freezing test can fail: without freezing, the same edit reaches the jobs.
    (Snakemake's own runtime source cache still pins the Snakefile, the included rules and
    the script for as long as the main process lives; config and modules are live.)"""
    workdir = run_with_edit(
        tmp_path,
        "--executor",
        "frozen",
        "--frozen-mode",
        mode,
        "--config",
        'stages=["later1"]',
        submitted_before_edit=1,
    )
    versions = record(workdir, "later1")["versions"]
    for live in ("config", "wflib", "srcpkg", "helper_mod", "srcpkg_in_script"):
        assert versions[live] == "v2", (live, versions)
    archives = sorted((workdir / ".snakemake" / "frozen_logs").glob("rule_*/code-*.tar.zst"))
    if mode == "archive":
        assert {a.parent.name for a in archives} == {"rule_gate", "rule_later"}
    else:
        assert archives == []


@pytest.mark.parametrize("editable_install", [False, True])
def test_local_submission_freezes_without_slurm(tmp_path: Path, editable_install: bool) -> None:
    workdir = run_with_edit(
        tmp_path,
        "--executor",
        "frozen",
        "--frozen-submit",
        "local",
        "--config",
        'stages=["later1","later2"]',
        submitted_before_edit=1,
        editable_install=editable_install,
    )
    for stage in ("later1", "later2"):
        result = record(workdir, stage)
        assert result["versions"] == ALL_V1, stage
        assert Path(result["srcpkg_file"]).is_relative_to(result["frozen_dir"])
