"""``restore``: a snapshot's files into a new folder, to read; it runs nothing and prints no
command that would (``reproduce`` reruns a job, into a folder of its own)."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from helpers.files import write
from helpers.records import Job, flip_byte, make_site, run_cli

from snakemake_executor_plugin_frozen.snapshot import SelectionSettings, pack

RUN = "aaaaaaaa-0000-4000-8000-000000000001"


def test_the_files_are_byte_identical_with_their_recorded_modes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    (site.workdir / "scripts/count.py").chmod(0o755)
    snapshot = site.pack()
    site.edit("scripts/count.py", "VERSION = 'live'\n")
    dest = tmp_path / "restored"
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "restore", snapshot.id[:8], str(dest))
    assert code == 0
    for entry in json.loads(snapshot.manifest.read_text())["files"]:
        restored = dest / entry["path"]
        assert hashlib.sha256(restored.read_bytes()).hexdigest() == entry["sha256"]
        assert f"{stat.S_IMODE(restored.stat().st_mode):o}" == entry["mode"]
    assert f"Snakefile: {dest / 'Snakefile'}" in out.splitlines()
    assert "snakemake " not in out and "--directory" not in out
    assert out.splitlines()[-1].endswith("snakemake-frozen reproduce OUTPUT")


def test_a_non_empty_destination_is_refused_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    snapshot = site.pack()
    dest = tmp_path / "mine"
    write(dest, "notes.txt", "keep me\n")
    code, _, err = run_cli(capsys, "-C", str(site.workdir), "restore", snapshot.id, str(dest))
    assert code == 2 and "is not empty" in err
    assert [p.name for p in dest.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, _ = run_cli(capsys, "-C", str(site.workdir), "restore", snapshot.id, str(empty))
    assert code == 0 and (empty / "Snakefile").is_file()


def test_output_names_reproduce_and_no_command_that_writes_into_the_workdir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    snapshot = site.pack()
    site.run(RUN, snapshot, [Job("count", "results/a.tsv", "101", (("s", "a"),))])
    dest = tmp_path / "restored"
    argv = ["-C", str(site.workdir), "restore", snapshot.id, str(dest), "--output"]
    code, out, _ = run_cli(capsys, *argv, "./results/a.tsv", "--json")
    assert code == 0
    restored = json.loads(out)
    assert "command" not in restored
    assert (restored["run"], restored["slurm_id"], restored["outside_files"]) == (RUN, "101", False)

    code, out, _ = run_cli(capsys, *argv[:-2], str(tmp_path / "again"), "--output", "results/a.tsv")
    assert code == 0 and "--forcerun" not in out and "--directory" not in out
    assert out.splitlines()[-1] == (
        "results/a.tsv was made by SLURM job 101 of this snapshot; to run that job again "
        "from it, into a folder of its own, and compare: snakemake-frozen reproduce "
        "results/a.tsv"
    )


def test_output_of_another_snapshot_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    first = site.pack()
    site.edit("scripts/count.py", "VERSION = 'v2'\n")
    second = site.pack()
    site.run(RUN, second, [Job("count", "results/a.tsv", "101")])
    dest = tmp_path / "restored"
    code, _, err = run_cli(
        capsys, "-C", str(site.workdir), "restore", first.id, str(dest), "--output", "results/a.tsv"
    )
    assert code == 2 and second.id[:12] in err
    assert not dest.exists()


def test_a_damaged_archive_restores_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    snapshot = site.pack()
    flip_byte(snapshot.archive)
    dest = tmp_path / "restored"
    code, _, err = run_cli(capsys, "-C", str(site.workdir), "restore", snapshot.id, str(dest))
    assert code == 1 and "sha256" in err
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".restored")] == []


def test_outside_files_are_said_and_the_code_root_is_below_dest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    outside = write(tmp_path, "shared/config.yaml", "x: 1\n")
    layout = site.layout
    snapshot = pack(
        site.workdir,
        layout.store,
        SelectionSettings(extra_excluded_dirs=(layout.logdir,)),
        explicit=[outside],
        allow_outside=True,
    )
    assert snapshot.prefix
    dest = tmp_path / "restored"
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "restore", snapshot.id, str(dest))
    assert code == 0 and "files from outside its code root" in out
    assert (dest / snapshot.prefix / "Snakefile").is_file()
    assert (dest / snapshot.prefix / ".." / "shared" / "config.yaml").read_text() == "x: 1\n"
    assert f"Snakefile: {dest / snapshot.prefix / 'Snakefile'}" in out
