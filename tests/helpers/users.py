"""Running commands as an ordinary (non-root) user, as users of the plugin do (and the
uid of nobody, the other user of the tests that attack).

`scripts/slurm-cluster start` creates the user (`frozentest`, uid 2001) and adds it to the
cluster's accounting; `scripts/lib/user.sh setup` builds its Python: a venv of Debian's
/usr/bin/python3, root-owned and world-readable, with this checkout's plugin installed (not
editable: the checkout, like root's own Python, may be where the user cannot read). The
fixtures in tests/conftest.py (`ordinary_user`) hand a test an `OrdinaryUser` with a fresh
workspace of its own.

Commands run through `setpriv`, not `runuser`: setpriv execs the command, so the process a
test starts, waits for, times out or kills is the command itself (runuser forks and waits,
and killing it would orphan the command)."""

import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.paths import REPO

USER_SCRIPT = REPO / "scripts" / "lib" / "user.sh"
# nobody (uid and gid 65534), the hostile other user of the tests run as root, and the argv
# prefix that runs a command as nobody.
NOBODY = 65534
AS_NOBODY = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")


class SetupError(Exception):
    """The ordinary user or its Python cannot be had on this machine."""


@dataclass(frozen=True)
class UserAccount:
    """The test user and its Python, as `scripts/lib/user.sh setup` reported them."""

    name: str
    uid: int
    gid: int
    home: Path
    venv: Path

    @classmethod
    def set_up(cls) -> "UserAccount":
        """Build or refresh the user's venv (0.1 s when up to date) and describe the user.
        Needs root, and the user made by `scripts/slurm-cluster start`."""
        if os.geteuid() != 0:
            raise SetupError("running commands as another user needs root")
        if shutil.which("setpriv") is None:
            raise SetupError("setpriv (util-linux) is not installed")
        result = subprocess.run(
            ["bash", str(USER_SCRIPT), "setup"], capture_output=True, text=True, timeout=900
        )
        if result.returncode != 0:
            raise SetupError(
                f"{USER_SCRIPT.relative_to(REPO)} setup failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        info = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        return cls(
            name=info["user"],
            uid=int(info["uid"]),
            gid=int(info["gid"]),
            home=Path(info["home"]),
            venv=Path(info["venv"]),
        )


@dataclass(frozen=True)
class OrdinaryUser:
    """The test user for one test: `workspace` is a fresh folder of its own (mode 0700)."""

    account: UserAccount
    workspace: Path

    @property
    def name(self) -> str:
        return self.account.name

    @property
    def uid(self) -> int:
        return self.account.uid

    @property
    def gid(self) -> int:
        return self.account.gid

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A login-like environment with the user's venv first on PATH, nothing of ours."""
        env = {
            "HOME": str(self.account.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "SHELL": "/bin/bash",
            "PATH": f"{self.account.venv}/bin:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
        }
        env.update(extra or {})
        return env

    def argv(self, *command: str, env: Mapping[str, str] | None = None) -> list[str]:
        """The argv that runs `command` as the user, in a clean environment (`env` adds to
        it). The process is the command itself (setpriv and env exec it)."""
        assignments = [f"{key}={value}" for key, value in self.env(env).items()]
        return [
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--init-groups",
            "--",
            "env",
            "-i",
            *assignments,
            *command,
        ]

    def run(
        self,
        *command: str,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess[str]:
        """Run `command` as the user in `cwd` (default: the workspace); with `check`, a
        non-zero exit raises an AssertionError showing its output."""
        result = subprocess.run(
            self.argv(*command, env=env),
            cwd=cwd or self.workspace,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"as {self.name}: {' '.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout[-6000:]}\n{result.stderr[-12000:]}"
            )
        return result

    def copy_in(self, source: Path, target: Path, exclude: tuple[str, ...] = ()) -> None:
        """Copy the folder `source` (readable by root) to `target` (new, in the user's space)
        through a tar stream, so that the user creates every file: all are its own."""
        self.run("mkdir", "--", str(target))  # fails if it exists
        excludes = [f"--exclude=./{pattern}" for pattern in exclude]
        pack = subprocess.Popen(
            ["tar", "-C", str(source), *excludes, "-cf", "-", "."], stdout=subprocess.PIPE
        )
        unpack = subprocess.run(
            self.argv("tar", "-C", str(target), "--no-same-owner", "-xf", "-"),
            stdin=pack.stdout,
            capture_output=True,
            text=True,
        )
        assert pack.stdout is not None
        pack.stdout.close()
        if pack.wait() != 0 or unpack.returncode != 0:
            raise AssertionError(f"copying {source} to {target} failed:\n{unpack.stderr}")


def user_account_or_skip() -> UserAccount:
    """`UserAccount.set_up()`, or else the test skipped; under CI=true it fails instead (a
    skipped test would let CI pass without it)."""
    try:
        return UserAccount.set_up()
    except SetupError as e:
        message = f"ordinary test user unavailable: {e}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def make_workspace(account: UserAccount, label: str) -> Path:
    """A new folder `<home>/t/<label>-<random>` made by the user (mode 0700)."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)[:60]
    path = account.home / "t" / f"{safe}-{uuid.uuid4().hex[:8]}"
    user = OrdinaryUser(account, account.home)
    user.run("mkdir", "-p", "-m", "700", "--", str(path.parent))
    user.run("mkdir", "-m", "700", "--", str(path))
    return path


def remove_workspace(path: Path) -> None:
    """Remove a workspace (as root: read-only folders left by a run are no bar; rmtree
    never follows a link the user may have put there)."""
    shutil.rmtree(path, ignore_errors=True)
