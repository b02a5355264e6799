"""Issue 15 item 8: a symbolic link to a credential is left out like the credential itself,
and a link that leaves the code root is warned about (its target's content is packed, as
before: see ``test_symlinks.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.files import write
from helpers.snapshots import manifest_records, members, pack_tree, packed

# The `root` fixture's tree, inside and outside git (tests/snapshot/conftest.py).
pytestmark = pytest.mark.tree(
    {"Snakefile": "rule a:\n    shell: 'true'\n", "config/base.yaml": "a: 1\n"}
)


def _secret_warning(result) -> str:
    (warning,) = [w for w in result.warnings if "look like credentials" in w]
    return warning


def _leaving_warnings(result) -> list[str]:
    return [w for w in result.warnings if "lead out of the code root" in w]


def test_links_to_credentials_outside_are_left_out_with_a_warning(
    root: Path, tmp_path: Path
) -> None:
    key = write(tmp_path, "home/.ssh/id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\n")
    shadow = write(tmp_path, "etc/shadow", "root:$6$hash:19000:0:99999:7:::\n")
    os.symlink(key, root / "deploy_key.txt")
    os.symlink(shadow, root / "config" / "passwd.yaml")
    result = pack_tree(root)
    assert packed(result) == {"Snakefile", "config/base.yaml"}
    names = [m.name for m in members(result.archive)]
    assert not any(n.endswith(("deploy_key.txt", "passwd.yaml")) for n in names), names
    warning = _secret_warning(result)
    assert f"deploy_key.txt -> {key}" in warning
    assert f"config/passwd.yaml -> {shadow}" in warning
    assert "--allow-secrets" in warning
    # Left out, they are not also reported as links leaving the root.
    assert not any("deploy_key" in w for w in _leaving_warnings(result))


def test_link_to_a_credential_inside_the_root_is_left_out(root: Path) -> None:
    write(root, "certs/server.pem", "-----BEGIN PRIVATE KEY-----\n")
    os.symlink("certs/server.pem", root / "server.crt.txt")
    result = pack_tree(root)
    assert packed(result) == {"Snakefile", "config/base.yaml"}
    warning = _secret_warning(result)
    assert "server.crt.txt -> certs/server.pem" in warning
    assert "certs/server.pem" in warning


def test_allow_secrets_matching_the_link_packs_it(root: Path, tmp_path: Path) -> None:
    key = write(tmp_path, "home/.ssh/id_ed25519", "key\n")
    os.symlink(key, root / "deploy_key.txt")
    result = pack_tree(root, allow_secrets=("/deploy_key.txt",))
    assert packed(result) == {"Snakefile", "config/base.yaml", "deploy_key.txt"}
    assert not any("look like credentials" in w for w in result.warnings)
    # Still a link leaving the root: said so.
    (warning,) = _leaving_warnings(result)
    assert f"deploy_key.txt -> {key}" in warning


def test_link_inside_the_root_to_an_ordinary_file_is_packed_as_before(root: Path) -> None:
    os.symlink("config/base.yaml", root / "current.yaml")
    result = pack_tree(root)
    assert packed(result) == {"Snakefile", "config/base.yaml", "current.yaml"}
    records = manifest_records(result)
    assert records["current.yaml"] == {
        "path": "current.yaml",
        "type": "link",
        "target": "config/base.yaml",
    }
    assert not any("credentials" in w or "code root" in w for w in result.warnings)


def test_link_leaving_the_root_to_an_ordinary_file_is_warned_about(
    root: Path, tmp_path: Path
) -> None:
    shared = write(tmp_path, "shared/common.py", "shared = True\n")
    os.symlink(shared, root / "common.py")
    result = pack_tree(root)
    assert "common.py" in packed(result)
    record = manifest_records(result)["common.py"]
    assert record["type"] == "file" and record["link_to"] == str(shared)
    (warning,) = _leaving_warnings(result)
    assert f"common.py -> {shared}" in warning
    assert not any("look like credentials" in w for w in result.warnings)
