"""Settings given as `frozen-*` keys of a workflow profile reach the executor, including
lists, booleans and a `{VAR}` scratch that must survive Snakemake's `$VAR` expansion."""

import os
from pathlib import Path

from backports.zstd import tarfile as zstd_tarfile
from helpers.snakemake import run_snakemake


def test_profile_keys_configure_the_executor(tmp_path: Path, monkeypatch) -> None:
    workdir = tmp_path / "wf"
    (workdir / "profiles" / "default").mkdir(parents=True)
    (workdir / "notes").mkdir()
    (workdir / "notes" / "draft.md").write_text("not code\n")
    (workdir / "helper.py").write_text("X = 1\n")
    (workdir / "Snakefile").write_text(
        "rule a:\n    output: 'a.txt'\n    shell: 'echo \"$FROZEN_DIR\" > {output}'\n"
    )
    scratch = tmp_path / "node-scratch"
    (scratch / "x").mkdir(parents=True)
    (workdir / "profiles" / "default" / "config.yaml").write_text(
        "executor: frozen\n"
        "jobs: 1\n"
        "frozen-submit: local\n"
        "frozen-logdir: job_logs\n"
        "frozen-scratch: '{FROZEN_TEST_SCRATCH}/x'\n"
        "frozen-keep-extracted: true\n"
        "frozen-exclude: ['notes/', '*.tmp']\n"
        "frozen-level: 5\n"
    )
    monkeypatch.setenv("FROZEN_TEST_SCRATCH", str(scratch))
    run_snakemake(workdir)

    frozen_dir = Path((workdir / "a.txt").read_text().strip())
    assert frozen_dir.parent == scratch / "x" / f"snakemake-frozen-{os.getuid()}"
    assert (frozen_dir / "helper.py").is_file(), "keep-extracted: the copy stays"
    archives = list((workdir / "job_logs" / "rule_a").glob("code-*.tar.zst"))
    assert len(archives) == 1
    with zstd_tarfile.open(archives[0]) as archive:
        names = set(archive.getnames())
    assert "helper.py" in names and "Snakefile" in names
    assert not any(n.startswith("notes") for n in names)
