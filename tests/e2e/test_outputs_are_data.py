"""The workflow's own outputs, logs and benchmarks are data, not code: a workflow without a
.gitignore for them (like most) gets the same snapshot on its rerun, and the snapshot holds
none of them."""

import re
from pathlib import Path

from helpers.snakemake import run_snakemake

from snakemake_executor_plugin_frozen.snapshot import read_manifest

SNAKEFILE = """
rule all:
    input: expand("results/{s}.txt", s=["a", "b"]), "results/dir"

rule make:
    output: "results/{s}.txt"
    log: "logs/{s}.log"
    benchmark: "bench/{s}.tsv"
    shell: "echo {wildcards.s} > {output}; echo done > {log}"

rule folder:
    output: directory("results/dir")
    shell: "mkdir -p {output}; echo x > {output}/inner.yaml"
"""
SNAPSHOT_LINE = re.compile(
    r"frozen: snapshot ([0-9a-f]{12}) of .*\((new|already stored), [0-9.]+ s: (\S+)\)"
)


def snapshot_of(stderr: str) -> tuple[str, str, Path]:
    match = SNAPSHOT_LINE.search(stderr)
    assert match, stderr
    return match.group(1), match.group(2), Path(match.group(3))


def test_a_rerun_reuses_the_snapshot_and_outputs_stay_out(tmp_path: Path) -> None:
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(SNAKEFILE)
    (workdir / "helper.py").write_text("X = 1\n")
    local = ("--executor", "frozen", "--frozen-submit", "local", "-j2")
    first = snapshot_of(run_snakemake(workdir, *local).stderr)
    assert (workdir / "results" / "dir" / "inner.yaml").is_file()
    again = run_snakemake(workdir, *local, "--forceall")
    second = snapshot_of(again.stderr)
    assert first[0] == second[0]
    assert (first[1], second[1]) == ("new", "already stored")
    assert "output, log or benchmark file(s) of the workflow left out" in again.stderr
    packed = {f.path for f in read_manifest(second[2]).files}
    assert packed == {"Snakefile", "helper.py"}
