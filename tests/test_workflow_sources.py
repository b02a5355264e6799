"""Which tree the executor snapshots."""

import os
import subprocess
import time
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import pytest
from packaging.version import Version
from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_frozen.workflow_sources import (
    changed_since,
    code_root_for,
    job_config_files,
    jobs_share_runtime_source_cache,
    modules_imported_from,
    process_start_time,
    workflow_outputs,
)


def git_repo(path: Path, ignore: str = "") -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    (path / ".gitignore").write_text(ignore)
    return path


def test_code_root_is_the_git_top_level_above_the_snakefile(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo")
    (repo / "workflow").mkdir()
    (repo / "workflow" / "Snakefile").write_text("")
    assert code_root_for(repo / "workflow" / "Snakefile", "") == repo.resolve()


def test_code_root_outside_git_is_the_snakefiles_directory(tmp_path: Path) -> None:
    (tmp_path / "wf").mkdir()
    assert code_root_for(tmp_path / "wf" / "Snakefile", "") == (tmp_path / "wf").resolve()


def test_an_ignored_snakefile_does_not_belong_to_the_enclosing_repository(tmp_path: Path) -> None:
    repo = git_repo(tmp_path / "repo", ignore=".demo/\n")
    (repo / ".demo").mkdir()
    (repo / ".demo" / "Snakefile").write_text("")
    assert code_root_for(repo / ".demo" / "Snakefile", "") == (repo / ".demo").resolve()


def test_code_root_setting_wins_and_must_exist(tmp_path: Path) -> None:
    assert code_root_for(tmp_path / "x" / "Snakefile", str(tmp_path)) == tmp_path.resolve()
    with pytest.raises(WorkflowError, match="frozen-code-root"):
        code_root_for(tmp_path / "Snakefile", str(tmp_path / "missing"))


def test_process_start_time_is_this_processes_start() -> None:
    started = process_start_time()
    assert started is not None
    # pytest has been running for a while, but not for a day, and not in the future.
    assert time.time() - 86400 < started <= time.time() + 1


def test_files_edited_after_the_run_started_are_reported(tmp_path: Path) -> None:
    old, new, gone = tmp_path / "old.smk", tmp_path / "new.smk", tmp_path / "gone.smk"
    skewed = tmp_path / "skewed.smk"
    for path in (old, new, skewed):
        path.write_text("")
    started = time.time() - 30
    os.utime(old, (started - 60, started - 60))
    os.utime(new, (started + 5, started + 5))
    os.utime(skewed, (started + 3600, started + 3600))  # a file server's clock ahead
    assert changed_since([old, new, gone, skewed], started) == [new, gone]
    assert changed_since([old, new], None) == []


def workflow(directives, cli, replace=False, overwrite=None):
    return SimpleNamespace(
        configfiles=[*directives, *cli],
        overwrite_configfiles=cli,
        config_settings=SimpleNamespace(
            replace_workflow_config=replace, overwrite_config=overwrite or {}
        ),
    )


def test_jobs_get_every_config_file_directives_first_and_replace(tmp_path: Path) -> None:
    wf, cli = tmp_path / "wf.yaml", tmp_path / "cli.yaml"
    assert job_config_files(workflow([wf], [cli], overwrite={"k": 1})) == ([wf, cli], True)
    assert job_config_files(workflow([wf], [])) == ([wf], True)
    assert job_config_files(workflow([], [])) == ([], False)


def test_a_replaced_workflow_config_stays_replaced_in_jobs(tmp_path: Path) -> None:
    """--replace-workflow-config with --configfile: the main process dropped wf.yaml."""
    wf, cli = tmp_path / "wf.yaml", tmp_path / "cli.yaml"
    replaced = workflow([wf], [cli], replace=True, overwrite={"k": 1})
    assert job_config_files(replaced) == ([cli], True)
    # With only --config on the command line the jobs get no file, but still replace.
    only_config = workflow([wf], [], replace=True, overwrite={"k": 1})
    assert job_config_files(only_config) == ([], True)
    # Without any config on the command line, Snakemake replaces nothing.
    assert job_config_files(workflow([wf], [], replace=True)) == ([wf], True)


def test_snakemake_8_neither_replaces_nor_is_told_to(tmp_path: Path) -> None:
    """Snakemake 8's config settings have no replace_workflow_config, nor its command line
    --replace-workflow-config: its jobs get every file, the command line's last, as its main
    process laid them."""
    wf, cli = tmp_path / "wf.yaml", tmp_path / "cli.yaml"
    snakemake_8 = SimpleNamespace(
        configfiles=[wf, cli],
        overwrite_configfiles=[cli],
        config_settings=SimpleNamespace(overwrite_config={"k": 1}),
    )
    assert job_config_files(snakemake_8) == ([wf, cli], False)


def test_jobs_share_the_runtime_source_cache_from_snakemake_9_13_5() -> None:
    """The installed Snakemake's (both environments of scripts/test run this)."""
    assert jobs_share_runtime_source_cache() == (Version(version("snakemake")) >= Version("9.13.5"))


def test_outputs_logs_and_benchmarks_are_data(tmp_path: Path) -> None:
    jobs = [
        SimpleNamespace(output=["results/a.txt", "/abs/b.txt"], log=["logs/a.log"], benchmark=None),
        SimpleNamespace(output=["results/dir"], log=[], benchmark="bench/a.tsv"),
    ]
    assert workflow_outputs(jobs, tmp_path) == sorted(
        [
            tmp_path / "results/a.txt",
            Path("/abs/b.txt"),
            tmp_path / "logs/a.log",
            tmp_path / "results/dir",
            tmp_path / "bench/a.tsv",
        ]
    )


def test_modules_imported_from_the_code_root_but_not_from_environments(tmp_path: Path) -> None:
    root = tmp_path / "wf"
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "mymod.py").write_text("")
    site = root / ".venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    (site / "dep.py").write_text("")
    modules = [
        SimpleNamespace(__name__="mymod", __file__=str(root / "lib" / "mymod.py")),
        SimpleNamespace(__name__="dep", __file__=str(site / "dep.py")),
        SimpleNamespace(__name__="os", __file__=os.__file__),
        SimpleNamespace(__name__="builtin_like"),
    ]
    assert modules_imported_from(root.resolve(), modules) == {
        "mymod": (root / "lib" / "mymod.py").resolve()
    }
