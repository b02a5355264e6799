"""The manifest as a typed record: its one writer gives the bytes the plugin has always
written (the records of earlier versions too), its one reader reads every version's, and
refuses, naming the file, what is not a manifest it can read."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from helpers.files import write
from helpers.snapshots import MANIFEST, make_repo

from snakemake_executor_plugin_frozen.record import show
from snakemake_executor_plugin_frozen.record.snapshots import SnapshotStore, open_snapshot
from snakemake_executor_plugin_frozen.snapshot import SnapshotError, pack, read_manifest
from snakemake_executor_plugin_frozen.snapshot.archive import read_member
from snakemake_executor_plugin_frozen.snapshot.earn import manifest_records
from snakemake_executor_plugin_frozen.snapshot.hashing import id_of
from snakemake_executor_plugin_frozen.snapshot.manifest import (
    FORMAT,
    FileRecord,
    ManifestError,
    record_bytes,
)
from snakemake_executor_plugin_frozen.snapshot.manifest_reader import parse_manifest

# Store records written by `snakemake-frozen pack` before the manifest was typed: by the
# plugin's first version (26ef5da: no code_root_in_archive, no data_excluded), and by the
# version just before (84a5f39), in git with a binary diff, a non-UTF-8 and a non-ASCII
# name, a link and an added-back file; and outside git with files from outside the code
# root, a link leaving it and the programs and conda environments a run records.
RECORDS = Path(__file__).parent / "manifests"
WRITTEN_BEFORE = sorted(RECORDS.glob("*.json"))


@pytest.mark.parametrize("record", WRITTEN_BEFORE, ids=lambda p: p.stem)
def test_the_records_of_earlier_versions_are_read_and_written_back_byte_for_byte(
    record: Path,
) -> None:
    data = record.read_bytes()
    manifest = read_manifest(record)
    assert manifest.encode() == data
    assert manifest.as_json() == json.loads(data)
    # The archive's copy is the record without the store's two keys, and back.
    inner = manifest.in_archive()
    assert inner.archive_sha256 is None and inner.archive_bytes is None
    assert parse_manifest(inner.encode(), "inner") == inner
    assert manifest.archive_sha256 and manifest.archive_bytes
    assert record_bytes(inner.encode(), manifest.archive_sha256, manifest.archive_bytes) == data
    # Its files still earn its id: verify and earn derive it as they always did.
    files = [(p, kind, mode, content) for p, kind, mode, _, content in manifest_records(manifest)]
    assert id_of(files, manifest.prefix) == manifest.id


def test_a_record_of_the_first_version_reads_as_what_it_implied(tmp_path: Path) -> None:
    first = read_manifest(RECORDS / "first-version.json")
    assert first.code_root_in_archive is None and first.prefix == ""
    assert first.selection is not None
    assert first.selection.data_excluded is None and first.selection.data_excluded_paths is None
    assert first.environment.programs is None and first.environment.conda_envs is None
    assert first.git is not None and first.git.diff_encoding == "base64"
    # The record commands read it (here without its archive, as a record file).
    snapshot = open_snapshot(str(RECORDS / "first-version.json"), SnapshotStore(tmp_path))
    lines = [" ".join(line.split()) for line in show.describe(snapshot).splitlines()]
    assert "data 0 output/log path(s) left out" in lines and "archive missing" in lines
    assert "scripts/run.sh" in show.files_table(snapshot)


def test_the_parts_are_typed(tmp_path: Path) -> None:
    outside = read_manifest(RECORDS / "outside.json")
    assert outside.prefix == "nest/wf" and outside.git is None
    by_path = {f.path: f for f in outside.files}
    assert by_path["../../shared/ref.py"].original == "/tmp/mfix/outer/shared/ref.py"
    assert by_path["table.tsv"] == FileRecord(
        "table.tsv",
        "file",
        5,
        0o644,
        "6667b2d1aab6a00caa5aee5af8ad9f1465e567abf1c209d15727d57b3e8f6e5f",
        link_to="/tmp/mfix/outer/shared/table.tsv",
    )
    programs = outside.environment.programs
    assert programs is not None and [p.name for p in programs] == ["bash", "nosuchtool_xyz"]
    assert programs[1].path is None
    envs = outside.environment.conda_envs
    assert envs is not None and envs[0].rules == ("a",)
    git = read_manifest(RECORDS / "git.json")
    link = next(f for f in git.files if f.type == "link")
    assert (link.path, link.target, link.mode) == ("config.yaml", "conf/base.yaml", None)
    assert git.selection is not None and git.selection.added_back == ("local/settings.py",)


def test_a_new_pack_is_written_as_before_and_read_back_equal(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {"Snakefile": "rule a:\n    shell: 'bash run.sh'\n", "run.sh": "echo a\n"},
        modes={"run.sh": 0o755},
        links={"current.sh": "run.sh"},
        untracked={"new.py": "x = 1\n"},
    )
    write(tmp_path / "shared", "ref.py", "REF = 1\n")
    result = pack(
        repo,
        tmp_path / "store",
        explicit=[tmp_path / "shared" / "ref.py"],
        allow_outside=True,
        environment_extra={
            "programs": [{"name": "bash", "path": "/bin/bash", "size": 1, "sha256": None}],
            "conda_envs": [],
        },
    )
    data = result.manifest.read_bytes()
    record = read_manifest(result.manifest)
    assert record.encode() == data
    inner_data = read_member(result.archive, MANIFEST)
    inner = read_manifest(result.archive)
    assert inner.encode() == inner_data
    assert inner == record.in_archive()
    assert record_bytes(inner_data, result.archive_sha256, result.archive_bytes) == data
    stored = replace(
        inner, archive_sha256=result.archive_sha256, archive_bytes=result.archive_bytes
    )
    assert stored.encode() == data
    assert record.id == result.id and record.prefix == result.prefix != ""
    assert record.file_count == len(record.files) == result.files
    # The JSON keeps its shape: one top-level key per line, one file per line.
    lines = data.decode().splitlines()
    assert lines[:3] == ["{", f'"format": {FORMAT},', f'"id": "{result.id}",']
    assert sum(line.startswith('{"path": ') for line in lines) == result.files
    assert lines[-3:-1] == [
        f'"archive_sha256": "{result.archive_sha256}",',
        f'"archive_bytes": {result.archive_bytes}',
    ]


def _refused(tmp_path: Path, content: bytes | str) -> str:
    path = tmp_path / "code-0123456789ab.json"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(ManifestError) as caught:
        read_manifest(path)
    message = str(caught.value)
    assert str(path) in message, message
    return message


def test_what_is_not_a_readable_manifest_is_refused_naming_the_file(tmp_path: Path) -> None:
    good = json.loads((RECORDS / "git.json").read_bytes())
    assert "not valid JSON" in _refused(tmp_path, '{"broken')
    assert "no snakemake-frozen manifest" in _refused(tmp_path, "[1, 2]")
    assert "no snakemake-frozen manifest" in _refused(tmp_path, json.dumps({"id": "x"}))
    newer = _refused(tmp_path, json.dumps({**good, "format": 2}))
    assert "has format 2 (written by snakemake-executor-plugin-frozen 0.1.0)" in newer
    assert f"reads format {FORMAT} only" in newer and "read it with the version" in newer
    unknown = _refused(tmp_path, json.dumps({**good, "signed_by": "someone"}))
    assert "a key this version does not know ('signed_by')" in unknown
    assert "verify" in unknown  # what to do about it
    files = [{**good["files"][0], "size": "10"}]
    assert 'files[0].size is "10", not a whole number' in _refused(
        tmp_path, json.dumps({**good, "files": files})
    )
    files = [{**good["files"][0], "mode": "rw-r--r--"}]
    assert "files[0].mode is" in _refused(tmp_path, json.dumps({**good, "files": files}))
    git = {**good["git"], "dirty": "yes"}
    assert 'git.dirty is "yes", not true or false' in _refused(
        tmp_path, json.dumps({**good, "git": git})
    )
    # Read from bytes, the reader names what it is given as the source.
    with pytest.raises(ManifestError, match="the manifest of somewhere is not valid JSON"):
        parse_manifest(b"", "somewhere")


def test_a_hand_made_record_lacking_keys_reads_them_as_not_recorded(tmp_path: Path) -> None:
    record = tmp_path / "hand-made.json"
    files = [{"path": "a.py", "type": "file", "size": 1, "mode": "644"}]
    record.write_text(json.dumps({"format": 1, "id": "f" * 64, "files": files}))
    manifest = read_manifest(record)
    assert manifest.root is None and manifest.selection is None and manifest.git is None
    assert manifest.files[0].sha256 is None
    with pytest.raises(SnapshotError, match=f"the manifest of {record} names no code root"):
        manifest.code_root()
    with pytest.raises(ValueError, match="records no mode, size or sha256"):
        manifest_records(manifest)


def test_an_environment_extra_of_another_shape_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"Snakefile": "rule a:\n    shell: 'x'\n"})
    with pytest.raises(SnapshotError, match=r"programs\[0\]\.name is missing, not a string"):
        pack(repo, tmp_path / "store", environment_extra={"programs": [{"path": "/bin/x"}]})
