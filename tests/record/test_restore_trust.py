"""Issue 15 item 7: ``restore`` never widens a file's mode, the store's copies keep the group
of the files whose group bits they keep (or drop the bits), and a symbolic link or another
user's folder as DEST is a clear refusal."""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from helpers.files import mode
from helpers.paths import REPO
from helpers.records import make_site, run_cli

USER_PYTHON = Path("/opt/snakemake-frozen-user-venv/bin/python")
GROUP = "frozentestgrp"


def test_restore_keeps_a_private_file_private_whatever_the_umask(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    (site.workdir / "config.yaml").write_text("token: s3cret\n")
    (site.workdir / "config.yaml").chmod(0o600)
    (site.workdir / "scripts/count.py").chmod(0o700)
    snapshot = site.pack()
    dest = tmp_path / "restored"
    old = os.umask(0o022)
    try:
        code, _, err = run_cli(capsys, "-C", str(site.workdir), "restore", snapshot.id, str(dest))
    finally:
        os.umask(old)
    assert code == 0, err
    assert mode(dest / "config.yaml") == 0o600
    assert mode(dest / "scripts/count.py") == 0o700
    # A private file inside: no folder of the copy lets anyone else in.
    assert mode(dest) == 0o700 and mode(dest / "scripts") == 0o700
    assert mode(dest / "Snakefile") == 0o600


def test_restore_follows_the_umask_for_files_everyone_may_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    snapshot = site.pack()
    dest = tmp_path / "restored"
    old = os.umask(0o027)
    try:
        code, _, err = run_cli(capsys, "-C", str(site.workdir), "restore", snapshot.id, str(dest))
    finally:
        os.umask(old)
    assert code == 0, err
    assert mode(dest / "Snakefile") == 0o640 and mode(dest) == 0o750


def _other_group() -> int:
    if os.geteuid() != 0:
        pytest.skip("changing a file's group to another group needs root")
    subprocess.run(["groupadd", "-f", GROUP], check=True, capture_output=True)
    return grp.getgrnam(GROUP).gr_gid


def test_the_store_keeps_the_group_of_group_readable_files(tmp_path: Path) -> None:
    gid = _other_group()
    site = make_site(tmp_path / "wf")
    for path in site.workdir.rglob("*"):
        if ".git" not in path.parts and path.is_file():
            os.chown(path, -1, gid)
            path.chmod(0o640)
    snapshot = site.pack()
    for copy in (snapshot.archive, snapshot.manifest):
        st = os.stat(copy)
        # group-readable only by the files' own group
        assert not st.st_mode & 0o004
        assert not st.st_mode & 0o040 or st.st_gid == gid, (copy, oct(st.st_mode), st.st_gid)


def test_the_store_drops_group_read_when_the_files_groups_differ(tmp_path: Path) -> None:
    gid = _other_group()
    site = make_site(tmp_path / "wf")
    for path in site.workdir.rglob("*"):
        if ".git" not in path.parts and path.is_file():
            path.chmod(0o640)
    os.chown(site.workdir / "Snakefile", -1, gid)  # the others keep root's group
    snapshot = site.pack()
    for copy in (snapshot.archive, snapshot.manifest):
        assert mode(copy) == 0o400, (copy, oct(mode(copy)))


def test_restore_into_a_symbolic_link_is_a_clear_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    snapshot = site.pack()
    (tmp_path / "empty").mkdir()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "empty")
    code, out, err = run_cli(capsys, "-C", str(site.workdir), "restore", snapshot.id, str(link))
    assert code == 2
    assert str(link) in err and "symbolic link" in err and "Traceback" not in err + out
    assert link.is_symlink() and list((tmp_path / "empty").iterdir()) == []


def test_restore_into_another_users_folder_is_a_clear_refusal() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None or not USER_PYTHON.exists():
        pytest.skip("needs root, setpriv and the ordinary user's Python")
    # Everything nobody must read lies in a world-readable folder; the DEST is root's.
    top = Path(tempfile.mkdtemp(prefix="frozen-modes-"))
    try:
        top.chmod(0o755)
        site = make_site(top / "wf")
        snapshot = site.pack()
        for path in [top, *top.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o005 if path.is_dir() else 0o644)
        roots = top / "roots"
        roots.mkdir(mode=0o755)
        for dest in (roots / "empty", roots / "new"):
            if dest.name == "empty":
                dest.mkdir(mode=0o755)
            result = subprocess.run(
                [
                    "setpriv",
                    "--reuid=nobody",
                    "--regid=nogroup",
                    "--clear-groups",
                    str(USER_PYTHON),
                    "-m",
                    "snakemake_executor_plugin_frozen.cli",
                    "-C",
                    str(site.workdir),
                    "restore",
                    snapshot.id,
                    str(dest),
                ],
                capture_output=True,
                text=True,
                cwd="/",
                env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "HOME": "/"},
                timeout=120,
            )
            assert result.returncode == 2, (dest, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr and str(dest) in result.stderr
            assert dest.name != "empty" or list(dest.iterdir()) == []
            assert dest.name != "new" or not dest.exists()
    finally:
        shutil.rmtree(top)


def test_a_stored_copy_whose_files_changed_group_follows_them(tmp_path: Path) -> None:
    gid = _other_group()
    site = make_site(tmp_path / "wf")
    files = [p for p in site.workdir.rglob("*") if ".git" not in p.parts and p.is_file()]
    for path in files:
        path.chmod(0o640)
    first = site.pack()
    assert mode(first.archive) == 0o440 and os.stat(first.archive).st_gid == os.getegid()
    for path in files:
        os.chown(path, -1, gid)
    again = site.pack()  # the same id, reused: the copies now answer to the files' group
    assert again.id == first.id
    for copy in (again.archive, again.manifest):
        st = os.stat(copy)
        assert not st.st_mode & 0o040 or st.st_gid == gid, (copy, oct(st.st_mode), st.st_gid)
