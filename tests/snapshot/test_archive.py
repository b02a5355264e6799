"""The archive: byte-identical round trips, deterministic headers, the manifest, and the
refusal of damaged or malicious archives."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from backports import zstd
from helpers.files import tree_files, write
from helpers.snapshots import MANIFEST, git, make_repo, members, pack_tree, special_member

from snakemake_executor_plugin_frozen.snapshot import SnapshotError, extract, read_manifest
from snakemake_executor_plugin_frozen.snapshot.archive_write import _header
from snakemake_executor_plugin_frozen.snapshot.entries import FILE, Entry, archive_prefix

LONG = "deeply/" * 12 + "nested_module_with_a_rather_long_name_beyond_one_hundred_bytes.py"


# The `repo` fixture's tree (tests/conftest.py).
pytestmark = pytest.mark.tree(
    {
        "Snakefile": "rule all:\n",
        "scripts/tool.py": "print('tool')\n",
        "data/blob.bin": bytes(range(256)) * 40,
        "empty.txt": "",
        LONG: "long = True\n",
        "naïve/données.yaml": "é: ü\n",
        "scripts/run.sh": "#!/bin/sh\necho hi\n",
    },
    modes={"scripts/run.sh": 0o755},
    links={"tool.py": "scripts/tool.py"},
)


def test_round_trip_restores_byte_identical_files(repo: Path, tmp_path: Path) -> None:
    result = pack_tree(repo)
    out = tmp_path / "restored" / "code"
    extract(result.archive, out, result.archive_sha256)
    expected = tree_files(repo, skip=(".git", ".snakemake"))
    assert tree_files(out) == expected
    assert os.access(out / "scripts/run.sh", os.X_OK)
    assert not os.access(out / "scripts/tool.py", os.X_OK)
    assert json.loads((out / MANIFEST).read_text())["id"] == result.id
    assert sorted(os.listdir(out.parent)) == ["code"]  # the temporary folder is gone


def test_entries_are_sorted_with_normalised_headers(repo: Path) -> None:
    infos = members(pack_tree(repo).archive)
    assert infos[0].name == MANIFEST  # first, so it is found without reading the rest
    names = [i.name for i in infos[1:]]
    assert names == sorted(names)
    for info in infos:
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
        assert info.mode in (0o644, 0o755, 0o777)
    by_name = {i.name: i for i in infos}
    assert by_name["tool.py"].issym() and by_name["tool.py"].linkname == "scripts/tool.py"
    assert by_name["scripts/run.sh"].mode == 0o755
    assert LONG in by_name and "naïve/données.yaml" in by_name


def test_same_code_gives_the_same_file_entries_in_any_store(repo: Path, tmp_path: Path) -> None:
    def headers(archive: Path) -> list[tuple]:
        return [(i.name, i.mode, i.size, i.type, i.linkname) for i in members(archive)[1:]]

    first = pack_tree(repo)
    second = pack_tree(repo, store=tmp_path / "store-2", level=1)
    assert first.id == second.id
    assert headers(first.archive) == headers(second.archive)


def test_archive_is_zstd_with_the_frame_checksum(repo: Path) -> None:
    result = pack_tree(repo)
    frame = result.archive.read_bytes()
    assert frame[:4] == b"\x28\xb5\x2f\xfd"  # zstd magic number
    assert frame[4] & 0b100  # Frame_Header_Descriptor: Content_Checksum_flag
    assert hashlib.sha256(frame).hexdigest() == result.archive_sha256
    assert len(frame) == result.archive_bytes


def test_the_manifest_is_a_frame_of_its_own_and_tar_reads_the_whole(
    repo: Path, tmp_path: Path
) -> None:
    """Two zstd frames: the manifest's member, then the files (hashed while compressed,
    before the manifest holding their hashes exists); decompressors read them as one."""
    result = pack_tree(repo)
    data = result.archive.read_bytes()
    first = zstd.get_frame_size(data)
    assert 0 < first < len(data)
    with tarfile.open(fileobj=io.BytesIO(zstd.decompress(data[:first])), mode="r|") as tar:
        only = tar.next()
        assert only is not None and only.name == MANIFEST
        manifest = tar.extractfile(only)
        assert manifest is not None and json.loads(manifest.read())["id"] == result.id
    if not (shutil.which("tar") and shutil.which("zstd")):
        pytest.skip("tar or zstd is not installed")
    out = tmp_path / "by-tar"
    out.mkdir()
    subprocess.run(["tar", "-I", "zstd", "-xf", result.archive, "-C", out], check=True)
    assert tree_files(out) == tree_files(repo, skip=(".git", ".snakemake"))


def test_store_record_is_the_manifest_plus_the_archive_hash(repo: Path, tmp_path: Path) -> None:
    result = pack_tree(repo)
    record = read_manifest(result.manifest).as_json()
    inside = read_manifest(result.archive).as_json()
    extract(result.archive, tmp_path / "out", None)
    assert read_manifest(tmp_path / "out").as_json() == inside
    assert record == {
        **inside,
        "archive_sha256": result.archive_sha256,
        "archive_bytes": len(result.archive.read_bytes()),
    }
    assert (result.archive.parent / "CACHEDIR.TAG").read_bytes().startswith(b"Signature: ")


def test_manifest_records_provenance(repo: Path) -> None:
    git(repo, "branch", "-m", "main")
    git(repo, "remote", "add", "origin", "https://user:token@example.org/lab/wf.git")
    (repo / "data/blob.bin").write_bytes(b"\xff\xfe" * 100)  # binary change
    (repo / "scripts/tool.py").write_text("print('edited')\n")
    write(repo, "new_untracked.py", "n = 1\n")
    manifest = read_manifest(pack_tree(repo).manifest).as_json()
    assert manifest["user"] and manifest["host"] and manifest["created"].endswith("Z")
    assert manifest["root"] == str(repo.resolve())
    assert manifest["file_count"] == len(manifest["files"])
    run_sh = next(f for f in manifest["files"] if f["path"] == "scripts/run.sh")
    assert run_sh["mode"] == "755" and run_sh["size"] == 18 and len(run_sh["sha256"]) == 64
    g = manifest["git"]
    assert g["commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert g["branch"] == "main"
    assert g["remote"] == "https://example.org/lab/wf.git"  # the token is not recorded
    assert g["dirty"] is True
    assert g["untracked"] == ["new_untracked.py"]
    diff = g["diff"] if g["diff_encoding"] == "utf-8" else base64.b64decode(g["diff"]).decode()
    assert "print('edited')" in diff and "GIT binary patch" in diff
    # The recorded diff applies: it is the exact uncommitted state.
    git(repo, "stash", "-q")
    patch = repo.parent / "change.patch"
    patch.write_text(diff)
    git(repo, "apply", str(patch))
    assert (repo / "data/blob.bin").read_bytes() == b"\xff\xfe" * 100
    assert manifest["selection"]["exclude_folders"] == [
        ".git",
        ".snakemake",
        "wandb",
        "outputs",
        "datasets",
    ]
    assert manifest["python"]["version"].count(".") == 2
    assert manifest["snakemake"] == manifest["distributions"]["snakemake"]
    assert "pathspec" in manifest["distributions"]


def test_manifest_outside_git_has_no_git_record(tmp_path: Path) -> None:
    write(tmp_path / "plain", "a.py")
    assert read_manifest(pack_tree(tmp_path / "plain").manifest).git is None


def _malicious(tmp_path: Path, build) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    archive = tmp_path / "evil.tar.zst"
    archive.write_bytes(zstd.compress(raw.getvalue()))
    return archive


def _file(tar: tarfile.TarFile, name: str, data: bytes = b"x") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


MALICIOUS = {
    "absolute path": lambda t: _file(t, "/etc/evil"),
    "dot-dot": lambda t: _file(t, "a/../../evil"),
    "link escaping": lambda t: special_member(t, "a", tarfile.SYMTYPE, "../../etc"),
    "absolute link": lambda t: special_member(t, "a", tarfile.SYMTYPE, "/etc"),
    "link chain escaping": lambda t: (
        special_member(t, "b", tarfile.SYMTYPE, "a/.."),
        special_member(t, "a", tarfile.SYMTYPE, "."),
    ),
    "write through a link": lambda t: (
        special_member(t, "d", tarfile.SYMTYPE, "."),
        _file(t, "d/evil"),
    ),
    "hard link": lambda t: (_file(t, "a"), special_member(t, "b", tarfile.LNKTYPE, "a")),
    "device": lambda t: special_member(t, "null", tarfile.CHRTYPE),
    "fifo": lambda t: special_member(t, "pipe", tarfile.FIFOTYPE),
    "duplicate": lambda t: (_file(t, "a", b"1"), _file(t, "a", b"2")),
}


@pytest.mark.parametrize("case", MALICIOUS)
def test_malicious_archives_are_refused(tmp_path: Path, case: str) -> None:
    archive = _malicious(tmp_path, MALICIOUS[case])
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    dest = tmp_path / "nodes" / "code"
    with pytest.raises(SnapshotError, match="refusing to extract"):
        extract(archive, dest, digest)
    assert os.listdir(dest.parent) == []  # neither the destination nor a temporary folder
    assert not (tmp_path / "evil").exists() and not Path("/etc/evil").exists()


def test_damaged_or_unexpected_archives_are_refused(repo: Path, tmp_path: Path) -> None:
    result = pack_tree(repo)
    with pytest.raises(SnapshotError, match=r"expected 0+: the archive is damaged"):
        extract(result.archive, tmp_path / "a", "0" * 64)
    truncated = tmp_path / "truncated.tar.zst"
    truncated.write_bytes(result.archive.read_bytes()[:-100])
    with pytest.raises(SnapshotError, match="not a readable snapshot archive"):
        extract(truncated, tmp_path / "b", None)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    (tmp_path / "c").mkdir()
    with pytest.raises(SnapshotError, match="already exists"):
        extract(result.archive, tmp_path / "c", result.archive_sha256)


@pytest.mark.parametrize(
    ("name", "size", "mode", "kind", "link"),
    [
        ("a/b.py", 1234, 0o755, tarfile.REGTYPE, ""),
        ("x" * 100, 0, 0o644, tarfile.REGTYPE, ""),
        ("l", 0, 0o777, tarfile.SYMTYPE, "a/b.py"),
        ("big.bin", 8**11 - 1, 0o644, tarfile.REGTYPE, ""),
    ],
)
def test_fast_headers_are_tarfile_ustar_headers(
    name: str, size: int, mode: int, kind: bytes, link: str
) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type, info.linkname = size, mode, kind, link
    info.mtime, info.uname, info.gname = 0, "", ""
    expected = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    assert _header(name, size, mode, kind, link) == expected


@pytest.fixture
def nested(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A code root a/b/nest/subdir whose workflow names a/b/resources/ files by '../../'."""
    root = make_repo(tmp_path / "a/b/nest/subdir", {"Snakefile": "rule all:\n", "s/x.py": "x"})
    write(tmp_path, "a/b/resources/test.txt", "outside\n")
    write(tmp_path, "a/b/resources/v2.yaml", "v: 2\n", mode=0o755)
    os.symlink("v2.yaml", tmp_path / "a/b/resources/current.yaml")
    monkeypatch.chdir(root)
    return root


OUTSIDE = [Path("../../resources/test.txt"), Path("../../resources/current.yaml")]


def test_outside_files_lie_beside_the_code_root_in_the_archive(
    nested: Path, tmp_path: Path
) -> None:
    result = pack_tree(nested, explicit=OUTSIDE, allow_outside=True)
    assert result.prefix == "nest/subdir"
    assert [i.name for i in members(result.archive)] == [
        MANIFEST,
        "resources/current.yaml",
        "resources/test.txt",
        "nest/subdir/Snakefile",
        "nest/subdir/s/x.py",
    ]
    manifest = read_manifest(result.manifest).as_json()
    assert manifest["code_root_in_archive"] == "nest/subdir"
    assert manifest["selection"]["explicit"] == [str(p) for p in sorted(OUTSIDE)]
    records = {f["path"]: f for f in manifest["files"]}
    resources = tmp_path.resolve() / "a/b/resources"
    assert records["../../resources/test.txt"]["original"] == str(resources / "test.txt")
    linked = records["../../resources/current.yaml"]
    assert linked["type"] == "file" and linked["mode"] == "755"  # the link is followed
    assert linked["original"] == str(resources / "current.yaml")
    assert linked["link_to"] == str(resources / "v2.yaml")
    assert "original" not in records["Snakefile"]

    out = tmp_path / "node" / "C"
    extract(result.archive, out, result.archive_sha256)
    code = out / result.prefix
    assert (code / "../../resources/test.txt").read_bytes() == b"outside\n"
    assert not (code / "../../resources/current.yaml").is_symlink()
    assert (code / "Snakefile").read_text() == "rule all:\n"
    assert read_manifest(out).id == result.id


def test_without_outside_files_there_is_no_prefix(nested: Path) -> None:
    plain = pack_tree(nested)
    assert plain.prefix == "" and read_manifest(plain.manifest).code_root_in_archive == ""
    assert [i.name for i in members(plain.archive)][1:] == ["Snakefile", "s/x.py"]
    with_outside = pack_tree(nested, explicit=OUTSIDE[:1], allow_outside=True)
    assert with_outside.id != plain.id


def test_the_prefix_is_part_of_the_id(nested: Path, tmp_path: Path) -> None:
    # The same code and outside file, but the code root's folders have other names: the
    # archives differ (other/subdir/...), so the ids must too.
    first = pack_tree(nested, explicit=OUTSIDE[:1], allow_outside=True)
    other = tmp_path / "a/b/other/subdir"
    git(tmp_path, "clone", "-q", str(nested), str(other))
    second = pack_tree(other, explicit=[other / OUTSIDE[0]], allow_outside=True)
    assert second.prefix == "other/subdir"
    assert second.id != first.id


@pytest.mark.parametrize(
    ("named", "allow_outside", "error"),
    [
        ("../../resources/test.txt", False, r"test\.txt lies outside the code root"),
        ("../../resources", True, r"resources, outside the code root .*, is not a regular file"),
        ("../../.frozen/x.yaml", True, r"would store \.\./\.\./\.frozen/x\.yaml in \.frozen/"),
    ],
)
def test_outside_files_that_cannot_be_packed_are_refused(
    nested: Path, named: str, allow_outside: bool, error: str
) -> None:
    write(nested.parent.parent, ".frozen/x.yaml")  # beside the prefix: where the manifest goes
    with pytest.raises(SnapshotError, match=error):
        pack_tree(nested, explicit=[Path(named)], allow_outside=allow_outside)


def test_a_prefix_needs_as_many_folders_above_the_root() -> None:
    entry = Entry("../../x.yaml", FILE, 1, False, "", "/x.yaml", (1, 0, 0, 1), "")
    assert archive_prefix("/a/b", [entry]) == "a/b"
    with pytest.raises(SnapshotError, match=r"needs 2 folders above the code root /a, .* only 1"):
        archive_prefix("/a", [entry])
