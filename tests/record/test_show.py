"""``list`` and ``show``: the store's snapshots and one snapshot's manifest, files and content."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.records import RUN_A, RUN_B, Job, flip_byte, make_site, run_cli, unlink_copy


def test_list_shows_each_snapshot_with_its_runs_and_jobs_newest_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    first = site.pack()
    site.run(
        RUN_A, first, [Job("count", "results/a.tsv", "101"), Job("count", "results/b.tsv", "102")]
    )
    site.edit("scripts/count.py", "VERSION = 'v2'\n")  # uncommitted: dirty
    second = site.pack()
    # a job without an end record, run locally: SLURM cannot be asked about it
    site.run(RUN_B, second, [Job("count", "results/a.tsv", "local1", outcome=None)])
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "list", "--json")
    assert code == 0
    listed = json.loads(out)
    rows = {s["id"]: s for s in listed["snapshots"]}
    assert (rows[first.id]["runs"], rows[first.id]["jobs"]) == (1, 2)
    assert (rows[first.id]["pending"], rows[first.id]["running"]) == (0, 0)
    assert rows[first.id]["dirty"] is False and rows[second.id]["dirty"] is True
    assert rows[second.id]["pending"] is None  # unknown
    assert rows[first.id]["archive_bytes"] == first.archive_bytes
    assert rows[first.id]["files"] == first.files
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "list")
    lines = out.splitlines()
    assert lines[0].split() == [
        "ID",
        "CREATED",
        "COMMIT",
        "FILES",
        "SIZE",
        "RUNS",
        "JOBS",
        "ACTIVE",
    ]
    by_id = {line.split()[0]: line for line in lines[1:]}
    assert by_id[second.id[:12]].endswith("unknown") and " dirty " in by_id[second.id[:12]]
    assert by_id[first.id[:12]].endswith(" -")


def _set_created(record: Path, created: str) -> None:
    manifest = json.loads(record.read_text())
    record.chmod(0o644)
    record.write_text(json.dumps(manifest | {"created": created}))


def test_list_is_newest_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = make_site(tmp_path / "wf")
    first = site.pack()
    site.edit("scripts/count.py", "VERSION = 'v2'\n")
    second = site.pack()
    for created, order in (
        ("2001-01-01T00:00:00Z", [second, first]),
        ("2099-01-01T00:00:00Z", [first, second]),
    ):
        _set_created(first.manifest, created)
        _, out, _ = run_cli(capsys, "-C", str(site.workdir), "list", "--json")
        assert [s["id"] for s in json.loads(out)["snapshots"]] == [s.id for s in order]


def test_list_of_an_empty_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "-C", str(tmp_path), "list")
    assert (code, out.strip()) == (0, "no snapshots in this working directory's store")


def test_show_prints_the_manifest_readably(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    snapshot = site.pack()
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "show", snapshot.id[:8])
    assert code == 0
    fields = dict(line.split(None, 1) for line in out.splitlines() if not line.startswith(" "))
    assert fields["snapshot"] == snapshot.id
    commit = json.loads(snapshot.manifest.read_text())["git"]["commit"]
    assert fields["git"].startswith(commit) and fields["git"].endswith("clean")
    assert fields["files"].startswith(f"{snapshot.files} ")
    assert "python" in fields and "snakemake" in fields


def test_show_files_and_one_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = make_site(tmp_path / "wf")
    snapshot = site.pack()
    site.edit("scripts/count.py", "VERSION = 'live'\n")
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "show", snapshot.id, "--files")
    assert code == 0
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:]}
    assert rows["scripts/count.py"] == ["15", "B", "644"]
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "show", snapshot.id, "scripts/count.py")
    assert (code, out) == (0, "VERSION = 'v1'\n")  # the snapshot's, not the live file
    code, out, _ = run_cli(
        capsys, "-C", str(site.workdir), "show", snapshot.id, "scripts/count.py", "--json"
    )
    shown = json.loads(out)
    assert (shown["content"], shown["encoding"], shown["size"]) == ("VERSION = 'v1'\n", "utf-8", 15)
    code, _, err = run_cli(capsys, "-C", str(site.workdir), "show", snapshot.id, "scripts/cont.py")
    assert code == 1 and "did you mean scripts/count.py" in err


def test_show_reads_a_rule_log_copy_by_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    snapshot = site.pack()
    copy = site.place(snapshot, "count")
    code, out, _ = run_cli(capsys, "show", str(copy), "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["id"] == snapshot.id and shown["archive"] == str(copy)


def test_show_refuses_a_file_of_a_damaged_archive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    snapshot = site.pack()
    copy = site.place(snapshot, "count")
    unlink_copy(copy)
    flip_byte(copy)
    code, out, err = run_cli(capsys, "show", str(copy), "Snakefile")
    assert code == 1 and out == ""
    assert "does not have the sha256 its record names" in err
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "show", snapshot.id, "Snakefile")
    assert code == 0 and out.startswith("rule count:")  # the store's archive is intact


def test_show_prints_the_environment_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    snapshot = site.pack()
    manifest = json.loads(snapshot.manifest.read_text())
    manifest["programs"] = [
        {"name": "bwa", "path": "/usr/bin/bwa", "size": 9, "sha256": "c" * 64},
        {"name": "samtools", "path": None, "size": None, "sha256": None},
    ]
    manifest["conda_envs"] = [{"path": "envs/align.yaml", "sha256": "d" * 64, "rules": ["align"]}]
    record = tmp_path / "record.json"
    record.write_text(json.dumps(manifest))
    code, out, _ = run_cli(capsys, "show", str(record))
    assert code == 0
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert f"program bwa: /usr/bin/bwa {'c' * 12}" in lines
    assert "program samtools: not found" in lines
    assert f"conda env envs/align.yaml {'d' * 12}" in lines
    assert "archive missing" in lines  # no record.tar.zst beside it
