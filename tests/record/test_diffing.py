"""``diff``: snapshots against each other and against the live tree, with diff's exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.files import write
from helpers.records import Job, make_site, run_cli

RUN = "aaaaaaaa-0000-4000-8000-000000000001"


def _diff(capsys: pytest.CaptureFixture[str], site, *argv: str) -> tuple[int, dict]:
    code, out, err = run_cli(capsys, "-C", str(site.workdir), "diff", "--json", *argv)
    return code, (json.loads(out) if out else {"error": err})


def test_an_unchanged_tree_is_identical_to_its_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    snapshot = site.pack()
    site.run(RUN, snapshot, [Job("count", "results/a.tsv", "101")])
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "diff", snapshot.id[:8])
    assert (code, out) == (0, "")
    code, shown = _diff(capsys, site, snapshot.id, "live")
    assert code == 0 and shown["identical"] is True and shown["b"]["id"] == snapshot.id


def test_exactly_the_changed_file_is_shown_and_the_exit_is_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    first = site.pack()
    site.edit("scripts/count.py", "VERSION = 'v2'\n")
    code, shown = _diff(capsys, site, first.id[:8])
    assert code == 1
    assert (shown["added"], shown["removed"]) == ([], [])
    assert [(c["path"], c["changes"]) for c in shown["changed"]] == [
        ("scripts/count.py", ["content"])
    ]
    second = site.pack()
    code, shown = _diff(capsys, site, first.id[:8], second.id[:8])
    assert code == 1 and [c["path"] for c in shown["changed"]] == ["scripts/count.py"]
    code, shown = _diff(capsys, site, second.id, str(second.archive))
    assert code == 0


def test_patch_added_removed_and_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = make_site(tmp_path / "wf")
    first = site.pack()
    site.edit("scripts/count.py", "VERSION = 'v2'\n")
    (site.workdir / "config/config.yaml").unlink()
    write(site.workdir, "scripts/new.py", "NEW = 1\n")
    write(site.workdir, "data.bin", b"\x00\x01", mode=0o755)  # untracked, not ignored: packed
    (site.workdir / "Snakefile").chmod(0o755)
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "diff", first.id, "-p")
    assert code == 1
    lines = out.splitlines()
    assert "A  scripts/new.py" in lines and "A  data.bin" in lines
    assert "D  config/config.yaml" in lines
    assert "M  Snakefile (mode 644 -> 755)" in lines
    assert "M  scripts/count.py" in lines
    assert "--- a/scripts/count.py" in lines and "+++ b/scripts/count.py" in lines
    assert "-VERSION = 'v1'" in lines and "+VERSION = 'v2'" in lines
    assert "Snakefile" not in out.split("--- a/scripts")[1]  # a mode change has no patch


def test_outputs_in_the_journal_are_data_not_new_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    (site.workdir / ".gitignore").write_text("")  # outputs not ignored: only the journal tells
    site.commit()
    snapshot = site.pack()
    site.run(RUN, snapshot, [Job("count", "out/a.py", "101")])
    code, shown = _diff(capsys, site, snapshot.id)
    assert (code, shown["added"]) == (0, [])


def test_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = make_site(tmp_path / "wf")
    site.pack()
    code, _, err = run_cli(capsys, "-C", str(site.workdir), "diff", "0000")
    assert code == 2 and "no snapshot 0000" in err
    code, _, err = run_cli(capsys, "-C", str(site.workdir), "diff", "live", "live")
    assert code == 2 and "live twice" in err
    code, _, err = run_cli(capsys, "-C", str(site.workdir), "diff", "--bogus")
    assert code == 2


def test_environment_records_are_compared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    first = site.pack()
    records = []
    for version, sha in (("9.1", "a" * 64), ("9.2", "b" * 64)):
        manifest = json.loads(first.manifest.read_text())
        manifest["snakemake"] = version
        manifest["programs"] = [{"name": "bwa", "path": "/usr/bin/bwa", "size": 1, "sha256": sha}]
        record = tmp_path / f"{version}.json"
        record.write_text(json.dumps(manifest))
        records.append(str(record))
    code, shown = _diff(capsys, site, *records)
    assert code == 1 and shown["changed"] == []
    changes = {(c["what"], c["name"]): (c["a"], c["b"]) for c in shown["environment"]}
    assert changes[("snakemake", "snakemake")] == ("9.1", "9.2")
    assert changes[("program", "bwa")] == ("/usr/bin/bwa " + "a" * 12, "/usr/bin/bwa " + "b" * 12)
