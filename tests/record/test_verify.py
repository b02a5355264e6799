"""``verify``: stored archives against their records, every file against the manifest, and
the rule-log copies against the store."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from backports import zstd
from helpers.files import write
from helpers.records import flip_byte, make_site, run_cli, unlink_copy


def _verify(capsys: pytest.CaptureFixture[str], site, *argv: str) -> tuple[int, dict]:
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "verify", "--json", *argv)
    return code, json.loads(out)


@pytest.fixture
def placed(tmp_path: Path):
    """Two snapshots, each placed beside two rules' logs (hard links, as the executor does)."""
    site = make_site(tmp_path / "wf")
    first = site.pack()
    site.edit("scripts/count.py", "VERSION = 'v2'\n")
    second = site.pack()
    copies = {(s.id, rule): site.place(s, rule) for s in (first, second) for rule in ("a", "b")}
    return site, first, second, copies


def test_an_intact_store_verifies(placed, capsys: pytest.CaptureFixture[str]) -> None:
    site, _, _, _ = placed
    code, report = _verify(capsys, site)
    assert (code, report["ok"], report["snapshots"], report["copies"]) == (0, True, 2, 4)
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "verify")
    assert code == 0 and "verified 2 snapshot(s) and 4 rule-log copy(ies): all intact" in out


def test_a_flipped_byte_in_the_store_is_caught_once_and_repaired_from_a_copy(
    placed, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rule-log copies share no inode with the store (issue 16 item 6): one damaged file
    is one problem, and ``--repair`` puts it back from an intact copy."""
    site, first, _, copies = placed
    flip_byte(first.archive)
    code, report = _verify(capsys, site)
    assert code == 1 and report["ok"] is False
    damaged = {(d["id"], d["path"]) for d in report["damaged"]}
    assert damaged == {(first.id, str(first.archive))}
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "verify")
    assert code == 1 and f"DAMAGED {first.id[:12]} {first.archive}" in out
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "verify", "--repair")
    assert code == 0 and f"REPAIRED {first.id[:12]} {first.archive}" in out, out
    assert "all repaired" in out
    assert hashlib.sha256(first.archive.read_bytes()).hexdigest() == first.archive_sha256
    assert not os.path.samefile(first.archive, copies[first.id, "a"])
    code, report = _verify(capsys, site)
    assert code == 0 and report["ok"] and report["damaged"] == []


def test_a_damaged_copy_and_a_broken_store_record_are_repaired(
    placed, capsys: pytest.CaptureFixture[str]
) -> None:
    """A damaged rule-log copy comes back from the store; a store record that is no JSON
    any more is reported (not a crash) and comes back from an intact copy's record."""
    site, first, _, copies = placed
    flip_byte(copies[first.id, "a"])
    first.manifest.chmod(0o644)
    first.manifest.write_text('{"broken')
    code, report = _verify(capsys, site)
    assert code == 1
    assert {d["path"] for d in report["damaged"]} == {
        str(copies[first.id, "a"]),
        str(first.manifest),
    }
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "verify", "--repair")
    assert code == 0 and "all repaired" in out, out
    code, report = _verify(capsys, site)
    assert code == 0 and report["ok"], report


def test_a_flipped_byte_inside_a_member_is_named_by_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An archive rebuilt with one file changed and its record's archive hash updated: only
    the per-file check against the manifest can tell."""
    site = make_site(tmp_path / "wf")
    snapshot = site.pack()
    tar = bytearray(zstd.decompress(snapshot.archive.read_bytes()))
    at = tar.find(b"VERSION = 'v1'")
    tar[at : at + 14] = b"VERSION = 'XX'"
    archive = zstd.compress(bytes(tar))
    record = json.loads(snapshot.manifest.read_text())
    record |= {"archive_sha256": hashlib.sha256(archive).hexdigest(), "archive_bytes": len(archive)}
    for path, data in (
        (snapshot.archive, archive),
        (snapshot.manifest, json.dumps(record).encode()),
    ):
        path.chmod(0o644)
        write(path.parent, path.name, data)
    code, report = _verify(capsys, site)
    assert code == 1
    problems = [d["problem"] for d in report["damaged"]]
    assert "scripts/count.py does not have the sha256 the manifest records" in problems
    record["host"] = "elsewhere"
    write(snapshot.manifest.parent, snapshot.manifest.name, json.dumps(record))
    _, report = _verify(capsys, site)
    assert "its manifest differs from the store's record" in [
        d["problem"] for d in report["damaged"]
    ]


def test_a_damaged_rule_log_copy_is_named_alone(placed, capsys: pytest.CaptureFixture[str]) -> None:
    site, first, _, copies = placed
    copy = copies[first.id, "b"]
    unlink_copy(copy)  # a real copy (another file system), not the store's file
    flip_byte(copy, offset=100)
    code, report = _verify(capsys, site)
    assert code == 1
    assert [(d["id"], d["path"]) for d in report["damaged"]] == [(first.id, str(copy))]


def test_an_edited_manifest_copy_is_caught(placed, capsys: pytest.CaptureFixture[str]) -> None:
    site, first, _, copies = placed
    record = copies[first.id, "a"].with_name(f"code-{first.id[:12]}.json")
    unlink_copy(record)
    record.chmod(0o644)
    record.write_text(record.read_text().replace('"dirty": false', '"dirty": true'))
    code, report = _verify(capsys, site)
    assert code == 1 and [d["path"] for d in report["damaged"]] == [str(record)]


def test_verify_by_id_checks_only_those(placed, capsys: pytest.CaptureFixture[str]) -> None:
    site, first, second, _ = placed
    flip_byte(first.archive)
    code, report = _verify(capsys, site, second.id[:6])
    assert (code, report["snapshots"], report["copies"]) == (0, 1, 2)
    code, report = _verify(capsys, site, first.id[:6])
    assert code == 1


def test_a_copy_whose_snapshot_left_the_store_is_checked_alone(
    placed, capsys: pytest.CaptureFixture[str]
) -> None:
    site, first, _, copies = placed
    first.archive.unlink()
    first.manifest.unlink()
    code, report = _verify(capsys, site)
    assert (code, report["snapshots"], report["copies"]) == (0, 1, 4)
    assert any("is not in the store" in note for note in report["notes"])
    flip_byte(copies[first.id, "a"])
    code, report = _verify(capsys, site)
    assert code == 1 and {d["path"] for d in report["damaged"]} == {
        str(copies[first.id, "a"])  # the copy in rule_b is a file of its own
    }
