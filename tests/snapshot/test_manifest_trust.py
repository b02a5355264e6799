"""The record cannot be read for what the archive leaves out (issue 15, item 1).

A tracked credential committed with a placeholder and then filled in locally is left out of
the archive, and so is a file excluded by ``.frozenignore``; their uncommitted changes must
not reach the record either (store ``<id>.json``, the archive and its manifest member). And
the record is never more readable than the most private file whose content or diff it holds:
``nobody`` (uid 65534) plays the other user on the machine.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from backports import zstd
from helpers.files import shared_folder, write
from helpers.snapshots import git
from helpers.users import AS_NOBODY

from snakemake_executor_plugin_frozen.snapshot import pack

TOKEN = "tok-9f1c2e7d-REAL-SECRET"
PASSWORD = "pw-hunter2-EXCLUDED"


@pytest.fixture
def world() -> Iterator[Path]:
    with shared_folder("frozen-trust-") as root:
        yield root


def committed(repo: Path, files: dict[str, str]) -> Path:
    repo.mkdir(parents=True, exist_ok=True)
    git(repo, "init", "-q")
    for rel, content in files.items():
        write(repo, rel, content, mode=0o644)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "placeholders")
    return repo


def record_texts(result) -> dict[str, bytes]:
    """Everything the record holds, as bytes: the store's json, the decompressed archive
    (its manifest member included) and the manifest's diff decoded if base64."""
    texts = {"json": result.manifest.read_bytes()}
    with zstd.open(result.archive, "rb") as f:
        texts["archive"] = f.read()
    found = json.loads(texts["json"])["git"]
    if found["diff_encoding"] == "base64":
        texts["diff"] = base64.b64decode(found["diff"])
    return texts


def readers(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode) & 0o044


def nobody_reads(path: Path) -> bool:
    run = subprocess.run([*AS_NOBODY, "cat", str(path)], capture_output=True, check=False)
    return run.returncode == 0


can_be_nobody = pytest.mark.skipif(
    os.getuid() != 0 or not shutil.which("setpriv"),
    reason="needs root, and setpriv to act as another user",
)


@pytest.mark.parametrize("code_root", ["", "workflow"])
def test_a_local_secret_value_reaches_no_part_of_the_record(world: Path, code_root: str) -> None:
    sub = f"{code_root}/" if code_root else ""
    repo = committed(
        world / "repo",
        {
            f"{sub}Snakefile": "rule all:\n    input: []\n",
            f"{sub}.env": "TOKEN=placeholder\n",
            f"{sub}db_secret.yaml": "password: placeholder\n",
            f"{sub}.frozenignore": "private notes.py\n",
            f"{sub}private notes.py": "PASSWORD = 'placeholder'\n",
            f"{sub}scripts/größe ok.py": "x = 1\n",
        },
    )
    code = repo / code_root
    write(code, ".env", f"TOKEN={TOKEN}\n", mode=0o600)
    write(code, "db_secret.yaml", f"password: {TOKEN}\n", mode=0o600)
    write(code, "private notes.py", f"PASSWORD = '{PASSWORD}'\n", mode=0o600)
    # A packed change (a name with a space and non-ASCII letters) is still recorded.
    write(code, "scripts/größe ok.py", "x = 2  # packed change\n", mode=0o644)

    result = pack(code, world / "store")

    assert result.created
    manifest = json.loads(result.manifest.read_bytes())
    assert {f["path"] for f in manifest["files"]} == {
        "Snakefile",
        ".frozenignore",
        "scripts/größe ok.py",
    }
    assert "packed change" in manifest["git"]["diff"]
    assert manifest["git"]["dirty"]
    for where, data in record_texts(result).items():
        assert TOKEN.encode() not in data, f"the credential's value is in the {where}"
        assert PASSWORD.encode() not in data, f"the excluded file's value is in the {where}"
    # Nothing private is packed: the record stays as readable as the tree's public files.
    assert readers(result.manifest) == readers(result.archive) == 0o044


def test_an_excluded_binary_file_leaks_no_binary_diff(world: Path) -> None:
    repo = committed(
        world / "repo",
        {"Snakefile": "rule all:\n    input: []\n", "keys.pem": "placeholder\n"},
    )
    write(repo, "keys.pem", b"\0\x01binary" + TOKEN.encode() + b"\xff\0", mode=0o600)
    write(repo, "Snakefile", "rule all:\n    input: []\n# edited\n")

    result = pack(repo, world / "store")

    texts = record_texts(result)
    diff = json.loads(texts["json"])["git"]["diff"]
    assert "# edited" in diff
    # A binary diff is base85 of zlib: grepping for the value would not find it.
    assert "keys.pem" not in diff
    for where, data in texts.items():
        assert TOKEN.encode() not in data, f"the binary secret is in the {where}"


@can_be_nobody
def test_a_private_packed_file_with_a_diff_makes_the_record_private(world: Path) -> None:
    repo = committed(
        world / "repo",
        {"Snakefile": "rule all:\n    input: []\n", "settings.py": "KEY = 'placeholder'\n"},
    )
    write(repo, "settings.py", f"KEY = '{TOKEN}'\n", mode=0o600)

    result = pack(repo, world / "store")

    assert TOKEN in json.loads(result.manifest.read_bytes())["git"]["diff"]
    for path in (result.manifest, result.archive):
        assert readers(path) == 0, path
        assert not nobody_reads(path), path
    # The control: nobody can read what the store makes readable.
    assert nobody_reads(world / "store" / "CACHEDIR.TAG")


@can_be_nobody
def test_nobody_reads_the_record_but_not_the_secret(world: Path) -> None:
    repo = committed(
        world / "repo",
        {"Snakefile": "rule all:\n    input: []\n", ".env": "TOKEN=placeholder\n"},
    )
    write(repo, ".env", f"TOKEN={TOKEN}\n", mode=0o600)

    result = pack(repo, world / "store")

    for path in (result.manifest, result.archive):
        run = subprocess.run([*AS_NOBODY, "cat", str(path)], capture_output=True, check=False)
        assert run.returncode == 0 or readers(path) == 0
        assert TOKEN.encode() not in run.stdout, path


def test_the_diff_keeps_every_packed_file_however_it_is_named(world: Path) -> None:
    names = ["sp b/x.py", 'q"uote.py', "tab\there.py", "ünï.py", "a/b.py"]
    repo = committed(
        world / "repo",
        {"Snakefile": "rule all:\n    input: []\n", ".env": "T=placeholder\n"}
        | dict.fromkeys(names, "old\n"),
    )
    for name in names:
        write(repo, name, "new\n")
    write(repo, ".env", f"T={TOKEN}\n", mode=0o600)

    result = pack(repo, world / "store")

    diff = json.loads(result.manifest.read_bytes())["git"]["diff"]
    assert diff.count("diff --git ") == len(names)
    assert diff.count("+new") == len(names)
    assert ".env" not in diff and TOKEN not in diff
