"""``snakemake-frozen pack``: the archive-only documentation mode on the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.files import write

from snakemake_executor_plugin_frozen.cli import main
from snakemake_executor_plugin_frozen.snapshot import read_manifest

# The `repo` fixture's tree (tests/conftest.py): local.yaml is ignored.
pytestmark = pytest.mark.tree(
    {"Snakefile": "rule a:\n", "wf/scripts/a.py": "a", "docs/paper.pdf": "pdf" * 1000},
    ignore="local.yaml\n",
    untracked={"local.yaml": "token: 1\n"},
)


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["pack", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_output_describes_the_stored_snapshot(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _json(capsys, str(repo), "--store", str(tmp_path / "store"))
    assert {"id", "archive", "manifest", "files", "bytes", "archive_bytes"} <= out.keys()
    assert out["archive"] == str(tmp_path / "store" / f"{out['id']}.tar.zst")
    assert Path(out["archive"]).stat().st_size == out["archive_bytes"]
    manifest = read_manifest(Path(out["manifest"]))
    assert manifest.id == out["id"]
    assert out["files"] == len(manifest.files) == 5
    assert out["bytes"] == sum(f.size for f in manifest.files)
    assert out["created"] is True
    assert _json(capsys, str(repo), "--store", str(tmp_path / "store"))["created"] is False


def test_defaults_are_the_git_top_level_and_its_store(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo / "wf" / "scripts")
    out = _json(capsys)
    assert Path(out["archive"]).parent == repo.resolve() / ".snakemake/frozen/snapshots"
    assert "Snakefile" in {f.path for f in read_manifest(Path(out["manifest"])).files}


def test_outside_git_the_default_root_is_the_current_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "plain", "a.py")
    monkeypatch.chdir(tmp_path / "plain")
    out = _json(capsys)
    assert Path(out["archive"]).parent == tmp_path / "plain/.snakemake/frozen/snapshots"
    assert out["files"] == 1


def test_human_summary(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pack", str(repo)]) == 0
    first = capsys.readouterr()
    assert first.out.startswith("snapshot ") and "(stored)" in first.out
    assert "5 files" in first.out and ".tar.zst" in first.out
    assert first.err == ""
    write(repo, "secrets.yaml", "token: 1\n")
    assert main(["pack", str(repo)]) == 0
    left_out = capsys.readouterr()
    assert "warning: 1 file(s) that look like credentials were left out" in left_out.err
    assert "--allow-secrets PATTERN" in left_out.err
    assert "already stored, nothing written" in left_out.out  # the same code as before
    assert main(["pack", str(repo), "--allow-secrets", "secrets.yaml"]) == 0
    assert "(stored)" in capsys.readouterr().out


def test_selection_options(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "store")
    out = _json(
        capsys,
        str(repo),
        "--store",
        store,
        "--exclude",
        "*.pdf",
        "/Snakefile",
        "--code-suffixes",
        ".R",
        "--exclude-folders",
        "wf",
        "--level",
        "9",
    )
    assert {f.path for f in read_manifest(Path(out["manifest"])).files} == {".gitignore"}


def test_size_guard_refuses_with_a_one_line_reason(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "store")
    assert main(["pack", str(repo), "--store", store, "--max-size-mb", "0.001"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("snakemake-frozen: error: the selected files total")
    assert "docs/paper.pdf" in err[1]
    assert main(["pack", str(repo), "--store", store, "--skip-size-check"]) == 0


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["pack", "--max-size-mb", "1", "--skip-size-check"], "not allowed with argument"),
        (["pack", "--level", "x"], "invalid int value"),
        (["unpack"], "invalid choice"),
        ([], "the following arguments are required"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("snakemake-frozen: error: ") and reason in err


def test_refusals_exit_1_with_one_line(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pack", str(tmp_path / "missing")]) == 1
    assert main(["pack", str(repo), "--level", "99"]) == 1
    assert main(["pack", str(repo), "--level", "-3"]) == 1  # zstd's fast levels: not offered
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"snakemake-frozen: error: the code root {tmp_path / 'missing'} is not a folder",
        "snakemake-frozen: error: compression level 99 is out of range: use 1 to 22",
        "snakemake-frozen: error: compression level -3 is out of range: use 1 to 22",
    ]


def test_console_script(repo: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "snakemake-frozen"
    done = subprocess.run(
        [str(script), "pack", "--json", "--store", str(tmp_path / "s")],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=True,
    )
    out = json.loads(done.stdout)
    assert out["files"] == 5 and Path(out["archive"]).is_file()
    assert "local.yaml" in {f.path for f in read_manifest(Path(out["manifest"])).files}
