"""Archive mode says where its answer is uncertain: the jobs ran the live files, so an edit
during the run is named with that caveat at the end of the run (issue 16 item 3)."""

from __future__ import annotations

from pathlib import Path

from helpers.snakemake import run_snakemake

ARCHIVE = ("--executor", "frozen", "--frozen-submit", "local", "--frozen-mode", "archive", "-j1")


def test_an_edit_during_an_archive_run_is_named_with_its_caveat(tmp_path: Path) -> None:
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "helper.py").write_text("VERSION = 1\n")
    # The job itself edits the code, as a user would while the run goes on.
    (workdir / "Snakefile").write_text(
        "rule a:\n    output: 'out.txt'\n"
        "    shell: 'cat helper.py > {output} && echo \"VERSION = 2\" > helper.py'\n"
    )
    result = run_snakemake(workdir, *ARCHIVE)
    lines = [line for line in result.stderr.splitlines() if "edited during this run" in line]
    assert len(lines) == 1, result.stderr
    assert "helper.py" in lines[0] and "--frozen-mode archive" in lines[0]
    assert "may have run code that snapshot" in lines[0]
