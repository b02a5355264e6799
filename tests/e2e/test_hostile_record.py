"""Issue 15, items 2 and 10, with two users: ``nobody`` attacks, the workflow's owner (root,
or the ordinary user of tests/helpers/users.py) is the one attacked.

The workflow lies in a shared project folder: the folder, ``scripts/``, ``.snakemake/``,
``.snakemake/frozen/`` (the journal's folder), the store and the log folder are writable by
everybody, either sticky (1777: nobody can add names but not remove or replace the owner's)
or plain (0777: nobody can also move the owner's folders aside and put links in their
place). Where nobody forges journal records, the journal is nobody's own file (0666) into
which the owner's runs appended: nobody created it before the owner's first run (the journal
is opened without O_EXCL); in a plain folder nobody could as well replace it at any time.

Beside the workflow lies ``victim/``, a folder of the owner's holding files. Whatever nobody
plants, the record commands run by the owner remove and write nothing outside the workflow's
folders (item 2), and what they print for people carries no control character nobody chose,
while their JSON keeps every value exact (item 10).

The owner's commands run as separate processes (``snakemake-frozen``, as that user), nobody's
through ``setpriv``; no SLURM is needed (one workflow runs with ``--frozen-submit local``).
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.files import shared_folder, tree_files, write
from helpers.records import Job, Site, days_ago, make_site
from helpers.users import OrdinaryUser, UserAccount, user_account_or_skip

from snakemake_executor_plugin_frozen import journal
from snakemake_executor_plugin_frozen.shellwords import visible
from snakemake_executor_plugin_frozen.snapshot import PackResult, read_manifest


def _nobody() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return None


NOBODY = _nobody()
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None or NOBODY is None,
    reason="nobody as the second user needs root, setpriv and the user nobody",
)

SHARING = {"sticky": 0o1777, "plain": 0o777}
OLD = "0a0a0a0a-0000-4000-8000-000000000001"  # the owner's run 30 days ago, snapshot A
KEPT = "0b0b0b0b-0000-4000-8000-000000000002"  # the owner's latest run, 2 days ago, snapshot B
OLD_JOB = Job("count", "results/a.tsv", "101")
KEPT_JOB = Job("count", "results/b.tsv", "202")
VICTIM_FILES = {
    "marker": "precious\n",
    "notes/keep.txt": "kept\n",
    "101.log": "the log of a job of another workflow of the owner's\n",
    "linked.log": "another of the owner's logs\n",
    "code-0123456789ab.tar.zst": "an archive of the owner's\n",
    "code-0123456789ab.json": "{}\n",
    "stolen.json": json.dumps({"id": "0" * 64, "git": {"commit": "VICTIMS-OWN-COMMIT"}}),
}
# A terminal escape sequence (a window title), clearing the screen, a carriage return, a line
# break starting a line of nobody's choosing, and C1 CSI as a character.
FORGED_LINE = "FORGED-LINE"
EVIL = f"\x1b]0;pwned\x07\x1b[2J\r\n{FORGED_LINE}\u009b[31m"
# What a person must never receive: C0 controls but the tool's own line breaks, DEL, C1
# controls as characters, and bytes that are not UTF-8 (0x9b is CSI to an 8-bit terminal).
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\udc80-\udcff]")


def _forged_id(n: int) -> str:
    return f"eeeeee{n:02x}-0000-4000-8000-{n:012x}"


F_ABSOLUTE, F_CLIMB, F_LINKED, F_ENDED, F_CLIMBING_ID, F_WHICH = map(_forged_id, range(1, 7))
F_FOLDER, F_KEPT_LOG, F_KEPT_COPY, F_LOGDIR, F_EVIL, F_RESTORE = map(_forged_id, range(7, 13))
# A run id climbing from <logdir>/.ended up to the shared folder and into the victim.
CLIMBING_ID = "../../../../victim/notes"


# -- the two users -------------------------------------------------------------------------


def as_nobody(*command: str, data: bytes | None = None) -> None:
    """Run ``command`` as nobody (uid and gid of nobody, no other groups, a clean PATH)."""
    assert NOBODY is not None
    result = subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY.pw_uid}",
            f"--regid={NOBODY.pw_gid}",
            "--clear-groups",
            "--",
            "env",
            "-i",
            "PATH=/usr/bin:/bin",
            *command,
        ],
        input=data,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, f"as nobody: {command!r}: {result.stderr!r}"


@dataclass(frozen=True)
class Said:
    """What a command of the owner's said, decoded as a terminal would get it (a byte that is
    not UTF-8 stays a surrogate, so that it can be found)."""

    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}"

    def json(self) -> dict:
        assert self.code in (0, 1), str(self)
        return json.loads(self.out)


@dataclass(frozen=True)
class Owner:
    """The workflow's owner: root (``user`` None) or the ordinary test user, whose commands
    run from its own Python (the plugin installed, not this checkout)."""

    user: OrdinaryUser | None = None

    def own(self, *paths: Path) -> None:
        if self.user is not None:
            owner = f"{self.user.uid}:{self.user.gid}"
            subprocess.run(["chown", "-R", owner, "--", *map(str, paths)], check=True)

    def _argv(self, *command: str) -> list[str]:
        return list(command) if self.user is None else self.user.argv(*command)

    def frozen(self, workdir: Path, *args: str) -> Said:
        """``snakemake-frozen ARGS`` in ``workdir``."""
        cli = (
            [sys.executable, "-m", "snakemake_executor_plugin_frozen.cli"]
            if self.user is None
            else ["snakemake-frozen"]
        )
        result = subprocess.run(
            self._argv(*cli, *args), cwd=workdir, capture_output=True, timeout=300
        )
        return Said(
            result.returncode,
            result.stdout.decode("utf-8", "surrogateescape"),
            result.stderr.decode("utf-8", "surrogateescape"),
        )

    def snakemake(self, workdir: Path, *args: str) -> None:
        python = sys.executable if self.user is None else "python"
        result = subprocess.run(
            self._argv(python, "-m", "snakemake", *args),
            cwd=workdir,
            capture_output=True,
            text=True,
            errors="surrogateescape",
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-8000:]


@pytest.fixture(scope="module")
def account() -> UserAccount:
    """The ordinary test user and its Python (no SLURM needed for what these tests do)."""
    return user_account_or_skip()


@pytest.fixture(params=["root", "ordinary"])
def owner(request: pytest.FixtureRequest) -> Owner:
    if request.param == "root":
        return Owner()
    account = request.getfixturevalue("account")
    return Owner(OrdinaryUser(account, account.home))


@pytest.fixture
def shared() -> Iterator[Path]:
    """A folder both users reach (the test's tmp_path lies in root's private 0700 one)."""
    with shared_folder("frozen-shared-") as root:
        yield root


def _sticky_journal_possible() -> None:
    """With fs.protected_regular, nobody's journal in a sticky folder cannot be opened by the
    owner (O_CREAT): the owner's runs could never have appended to it."""
    try:
        value = Path("/proc/sys/fs/protected_regular").read_text().strip()
    except OSError:
        return
    if value != "0":
        pytest.skip(f"fs.protected_regular={value}: no journal of nobody's in a sticky folder")


# -- the shared workflow -------------------------------------------------------------------


@dataclass
class Shared:
    root: Path
    site: Site
    a: PackResult
    b: PackResult
    victim: Path

    @property
    def workdir(self) -> Path:
        return self.site.workdir

    @property
    def logdir(self) -> Path:
        return self.site.layout.logdir

    @property
    def journal(self) -> Path:
        return self.site.layout.journal

    @property
    def kept_log(self) -> Path:
        return self.site.log_path(KEPT, KEPT_JOB)

    @property
    def kept_copy(self) -> Path:
        """The rule-log copy of the kept run's snapshot B (the archive; its record beside)."""
        return self.logdir / "rule_count" / f"code-{self.b.id[:12]}.tar.zst"

    def kept_files(self) -> dict[str, bytes]:
        """The kept run's log and its snapshot's rule-log copies, by path."""
        copy = self.kept_copy
        paths = (self.kept_log, copy, copy.with_name(copy.name.replace(".tar.zst", ".json")))
        return {str(p): p.read_bytes() for p in paths}

    def outside(self) -> dict[str, tuple]:
        """Everything in the shared folder but the workflow and the owner's own folder: each
        entry's type and mode, owner, mtime (a folder's changes with its entries) and content."""
        return _tree(self.root, skip=("proj", "owner"))

    def forged(
        self,
        run: str,
        log: str | Path,
        *,
        output: str = "results/forged.tsv",
        days: float = 30,
        slurm_id: str = "999",
        wildcards: dict[str, str] | None = None,
        snapshot: str | None = None,
        workdir: str | Path | None = None,
    ) -> list[dict]:
        """A finished run of one job, as nobody writes it (mode off unless ``snapshot``)."""
        moment = days_ago(days)
        workdir = workdir or self.workdir
        return [
            journal.run_started(
                run=run,
                snapshot=snapshot,
                code_root=self.workdir,
                workdir=workdir,
                argv=[],
                time=moment,
            ),
            journal.submitted(
                run=run,
                rule="count",
                wildcards=wildcards or {},
                outputs=[output],
                job=1,
                slurm_id=slurm_id,
                snapshot=snapshot,
                log=log,
                workdir=workdir,
                mode="off" if snapshot is None else "freeze",
                time=moment,
            ),
            journal.ended(
                run=run, slurm_id=slurm_id, outcome="success", state="COMPLETED", time=moment
            ),
        ]

    def nobody_appends(self, records: list[dict]) -> None:
        data = b"".join(journal.encode(record) for record in records)
        as_nobody("tee", "-a", "--", str(self.journal), data=data)


def _tree(root: Path, skip: tuple[str, ...] = ()) -> dict[str, tuple]:
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.relpath(os.path.join(folder, d), root) not in skip]
        for name in [*dirs, *files]:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                content: str | bytes | None = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                content = Path(path).read_bytes()
            else:
                content = None
            found[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_mtime_ns, content)
    return found


def _shared_workflow(
    root: Path, owner: Owner, sharing: str, *, journal_to_nobody: bool = True
) -> Shared:
    """The owner's workflow in ``root/proj`` with two runs (one 30 days old of snapshot A,
    the latest 2 days old of snapshot B, which ``gc --keep-last 1`` keeps), its folders
    shared as ``sharing`` says, and the owner's ``root/victim``."""
    site = make_site(root / "proj")
    a = site.pack()
    site.run(OLD, a, [OLD_JOB], time=days_ago(30))
    site.edit("scripts/count.py", "VERSION = 'v2'\n")
    b = site.pack()
    site.run(KEPT, b, [KEPT_JOB], time=days_ago(2))
    layout = site.layout
    (layout.logdir / ".ended").mkdir()  # as the owner's runs leave it
    victim = root / "victim"
    for rel, text in VICTIM_FILES.items():
        write(victim, rel, text)
    write(victim, f"{F_ENDED}/inside", "the owner's\n")
    owner.own(site.workdir, victim)
    folders = (site.workdir, site.workdir / "scripts", site.workdir / ".snakemake")
    for folder in (*folders, layout.journal.parent, layout.store, layout.logdir):
        folder.chmod(SHARING[sharing])
    if journal_to_nobody:
        if sharing == "sticky":
            _sticky_journal_possible()
        assert NOBODY is not None
        os.chown(layout.journal, NOBODY.pw_uid, NOBODY.pw_gid)
        layout.journal.chmod(0o666)
    return Shared(root, site, a, b, victim)


def _refusals(out: str) -> list[str]:
    return [line for line in out.split("\n") if line.startswith("note: refused: ")]


def _refused(out: str, whose: str) -> bool:
    return any(whose in line for line in _refusals(out))


# -- item 2: paths from the record ---------------------------------------------------------


@pytest.mark.parametrize("sharing", SHARING)
def test_gc_removes_nothing_outside_for_what_nobody_planted(
    shared: Path, owner: Owner, sharing: str
) -> None:
    s = _shared_workflow(shared, owner, sharing)
    logdir, store = s.logdir, s.site.layout.store
    as_nobody("ln", "-s", "--", str(s.victim), str(logdir / "rule_evil"))  # a new name
    s.nobody_appends(
        [
            *s.forged(F_ABSOLUTE, s.victim / "marker"),
            *s.forged(F_CLIMB, f"{logdir}/../../../victim/notes/keep.txt"),
            *s.forged(F_LINKED, logdir / "rule_evil" / "linked.log"),
            # its .ended/<run> lies in the victim once .ended leads there (plain)
            *s.forged(F_ENDED, logdir / "rule_count" / "999.log"),
            # refused by the record builders, so written as nobody would write it
            *(
                {**record, "run": CLIMBING_ID}
                for record in s.forged(F_CLIMBING_ID, logdir / "rule_count" / "998.log")
            ),
        ]
    )
    temporary = store / ".tmp-nobody"  # a pack's temporary, dead for three days
    as_nobody("ln", "-s", "--", str(s.victim), str(temporary))
    as_nobody("touch", "-h", "-d", f"@{int(time.time()) - 3 * 86400}", "--", str(temporary))
    if sharing == "plain":  # the owner's folders moved aside, links to the victim in place
        for name in ("rule_count", ".ended"):
            as_nobody("mv", "-T", "--", str(logdir / name), str(logdir / f"{name}.moved"))
            as_nobody("ln", "-s", "--", str(s.victim), str(logdir / name))
    before = s.outside()

    said = owner.frozen(s.workdir, "gc", "--keep-last", "1")

    assert said.code == 0, str(said)
    assert s.outside() == before, str(said)
    for run in (F_ABSOLUTE, F_CLIMB, F_LINKED):
        assert _refused(said.out, f"of run {run} (SLURM job 999), lies outside {logdir}"), said
    assert CLIMBING_ID not in said.out + said.err  # never read as a run
    kept_folder = logdir / ("rule_count.moved" if sharing == "plain" else "rule_count")
    assert (kept_folder / "202.log").is_file()  # the kept run's log, as gc keeps it
    if sharing == "plain":
        # the old run's own record now leads through nobody's link: refused, not followed
        assert _refused(said.out, f"of run {OLD} (SLURM job 101)"), said
        assert _refused(said.out, f"named by the journal's run {F_ENDED}, lies outside"), said
    else:
        assert not s.site.log_path(OLD, OLD_JOB).exists()  # gc did remove the old run's log
    assert not os.path.lexists(temporary)  # the link went, not what it leads to
    left = journal.read(s.journal)
    assert {r["run"] for r in left.records} == {KEPT} and left.skipped == 0


@pytest.mark.parametrize("sharing", SHARING)
def test_which_restore_and_verify_take_nothing_from_outside(
    shared: Path, owner: Owner, sharing: str
) -> None:
    s = _shared_workflow(shared, owner, sharing)
    as_nobody("ln", "-s", "--", str(s.victim), str(s.logdir / "rule_evil"))
    # A later job claiming the kept run's output, its snapshot "id" climbing out of the
    # store to the victim's stolen.json.
    climbing = [
        {**record, "snapshot": "../../../../victim/stolen"}
        for record in s.forged(
            F_WHICH, s.logdir / "rule_count" / "303.log", output="results/b.tsv", days=1
        )
    ]
    s.nobody_appends(climbing)
    mine = shared / "owner"
    mine.mkdir(mode=0o700)
    owner.own(mine)
    before = s.outside()

    found = owner.frozen(s.workdir, "which", "--json", "results/b.tsv").json()["outputs"][0]
    assert (found["run"], found["snapshot"]) == (KEPT, s.b.id)
    said = owner.frozen(s.workdir, "which", "results/b.tsv")
    assert said.code == 0 and s.b.id[:12] in said.out and "VICTIMS-OWN" not in said.out, said

    dest = mine / "restored"
    said = owner.frozen(s.workdir, "restore", s.b.id, str(dest), "--output", "results/b.tsv")
    assert said.code == 0, str(said)
    assert "snakemake-frozen reproduce results/b.tsv" in said.out, said
    assert set(tree_files(dest)) == {f.path for f in read_manifest(s.b.manifest).files}

    said = owner.frozen(s.workdir, "verify")
    copy = s.logdir / "rule_evil" / "code-0123456789ab.tar.zst"
    assert f"note: {copy}: lies outside the log folder; not read" in said.out, said
    assert said.code == 0 and "DAMAGED" not in said.out, said
    assert s.outside() == before


def test_a_planted_record_naming_the_owners_rule_folder_removes_nothing_kept(
    shared: Path, owner: Owner
) -> None:
    """The reverse: nobody cannot remove the owner's rule folder (sticky log folder, the
    folder 0755), and must not get the owner's gc to remove it either."""
    s = _shared_workflow(shared, owner, "sticky")
    kept = s.kept_files()
    s.nobody_appends(s.forged(F_FOLDER, s.logdir / "rule_count"))

    said = owner.frozen(s.workdir, "gc", "--keep-last", "1")

    assert said.code == 0, str(said)
    assert {path: Path(path).read_bytes() for path in kept if os.path.exists(path)} == kept
    assert _refused(said.out, f"of run {F_FOLDER} (SLURM job 999), is a folder"), said
    assert not s.site.log_path(OLD, OLD_JOB).exists()  # what gc removes is still removed


def test_a_planted_record_naming_the_owners_kept_files_removes_nothing_kept(
    shared: Path, owner: Owner
) -> None:
    s = _shared_workflow(shared, owner, "sticky")
    kept = s.kept_files()
    s.nobody_appends([*s.forged(F_KEPT_LOG, s.kept_log), *s.forged(F_KEPT_COPY, s.kept_copy)])

    said = owner.frozen(s.workdir, "gc", "--keep-last", "1")

    assert said.code == 0, str(said)
    assert {path: Path(path).read_bytes() for path in kept if os.path.exists(path)} == kept


def test_a_log_folder_nobody_replaced_by_a_link_leads_gc_nowhere(
    shared: Path, owner: Owner
) -> None:
    s = _shared_workflow(shared, owner, "plain")  # nobody can move the owner's log folder
    logdir = s.logdir
    as_nobody("mv", "-T", "--", str(logdir), str(logdir.with_name("frozen_logs.moved")))
    as_nobody("ln", "-s", "--", str(s.victim), str(logdir))
    s.nobody_appends(s.forged(F_LOGDIR, logdir / "marker"))
    before = s.outside()

    said = owner.frozen(s.workdir, "gc", "--keep-last", "1")

    # A refusal naming the link: its target may be anything, so nothing is removed.
    assert said.code == 2, str(said)
    assert "nothing removed" in said.err and "symbolic link of another user" in said.err
    assert s.outside() == before, str(said)


# -- item 10: what people are shown --------------------------------------------------------


def _for_people(said: Said) -> str:
    """The command's output and errors, once it is sure that they hold no raw control
    character and no line that a value started."""
    text = f"{said.out}\n{said.err}"
    assert not RAW.findall(text), f"raw control characters {RAW.findall(text)!r} in {text!r}"
    lines = text.split("\n")
    assert not [line for line in lines if line.startswith(FORGED_LINE)], repr(text)
    return text


WILDCARD = "\x1b]0;pwned\x07\x1b[2J\rW\u009b[31m"  # no line break: glob_wildcards' .+ has none
NAME = b"\x1b]0;pwned\x07\nFORGED-LINE\x1b[2J\r\x9b.py"  # a file name, with a byte not UTF-8
LATER = b"\x1b]2;later\x07\nFORGED-LINE\r.py"
SNAKEFILE = """\
S, = glob_wildcards("data/{s}.txt")
rule all:
    input: expand("results/{s}.tsv", s=S)
rule count:
    input: "data/{s}.txt"
    output: "results/{s}.tsv"
    shell: "wc -c < {input:q} > {output:q}"
"""


def test_names_nobody_chose_reach_the_owner_escaped_after_a_real_run(
    shared: Path, owner: Owner
) -> None:
    """nobody drops an input whose name becomes a wildcard value and a script into the
    shared workflow; the owner runs it (locally) and reads the record back."""
    workdir = shared / "proj"
    write(workdir, "Snakefile", SNAKEFILE)
    write(workdir, "data/a.txt", "a\n")
    write(workdir, "scripts/count.py", "X = 1\n")
    owner.own(workdir)
    for folder in (workdir, workdir / "data", workdir / "scripts"):
        folder.chmod(SHARING["sticky"])
    as_nobody("tee", "--", f"{workdir}/data/{WILDCARD}.txt", data=b"hi\n")
    as_nobody("tee", "--", os.fsdecode(bytes(workdir) + b"/scripts/" + NAME), data=b"Y = 2\n")
    owner.snakemake(workdir, "--executor", "frozen", "--frozen-submit", "local", "-j1")
    as_nobody("tee", "--", os.fsdecode(bytes(workdir) + b"/scripts/" + LATER), data=b"Z = 3\n")
    (snapshot,) = owner.frozen(workdir, "list", "--json").json()["snapshots"]
    sid, output = snapshot["id"], f"results/{WILDCARD}.tsv"
    name, later = os.fsdecode(b"scripts/" + NAME), os.fsdecode(b"scripts/" + LATER)

    for args in (
        ["list"],
        ["show", sid],
        ["gc", "--older-than", "0", "--dry-run"],
        ["verify"],
    ):
        said = owner.frozen(workdir, *args)
        assert said.code == 0, str(said)
        _for_people(said)
    said = owner.frozen(workdir, "which", output)
    assert said.code == 0 and f"s={visible(WILDCARD)}" in _for_people(said), said
    said = owner.frozen(workdir, "show", sid, "--files")
    assert said.code == 0 and visible(name) in _for_people(said), said
    said = owner.frozen(workdir, "diff", sid, "live")
    assert said.code == 1 and f"A  {visible(later)}" in _for_people(said), said

    found = owner.frozen(workdir, "which", "--json", output).json()["outputs"][0]
    assert found["wildcards"] == {"s": WILDCARD}
    manifest = owner.frozen(workdir, "show", "--json", sid).json()["manifest"]
    assert name in [f["path"] for f in manifest["files"]]
    assert owner.frozen(workdir, "diff", "--json", sid, "live").json()["added"] == [later]


def _forged_snapshot(s: Shared) -> str:
    """A snapshot of nobody's in the (sticky) store: a record with escape sequences in every
    field people are shown, beside an archive that is junk. Returns its id."""
    forged = hashlib.sha256(b"nobody's").hexdigest()
    record = {
        "id": forged,
        "format": 1,
        "created": days_ago(60),
        "root": f"/srv/{EVIL}",
        "user": EVIL,
        "host": EVIL,
        "git": {"commit": EVIL, "branch": EVIL, "dirty": True},
        "files": [
            {"path": f"scripts/{EVIL}.py", "type": "file", "size": 1, "mode": "644"},
        ],
        "file_count": 1,
        "bytes": 1,
        "archive_bytes": 4,
        "archive_sha256": "0" * 64,
    }
    store = s.site.layout.store
    as_nobody("tee", "--", str(store / f"{forged}.tar.zst"), data=b"junk")
    as_nobody("tee", "--", str(store / f"{forged}.json"), data=json.dumps(record).encode())
    return forged


def test_values_nobody_forged_in_the_record_reach_the_owner_escaped(
    shared: Path, owner: Owner
) -> None:
    s = _shared_workflow(shared, owner, "sticky")
    forged = _forged_snapshot(s)
    evil_log = s.victim / EVIL / "x.log"
    s.nobody_appends(
        s.forged(
            F_EVIL,
            evil_log,
            output=f"results/{EVIL}.tsv",
            slurm_id=EVIL,
            wildcards={"s": EVIL},
        )
    )
    # (a line break in a rule folder's name: test_verify_shows_a_line_break_...)
    rule_folder = s.logdir / f"rule_{EVIL.replace(chr(10), '')}"
    as_nobody("mkdir", "--", str(rule_folder))
    as_nobody("tee", "--", str(rule_folder / "code-0123456789ab.tar.zst"), data=b"junk")
    shown = visible(EVIL)

    said = owner.frozen(s.workdir, "list")
    assert said.code == 0 and visible(EVIL[:10]) in _for_people(said), said
    said = owner.frozen(s.workdir, "show", forged)
    assert said.code == 0 and f"{shown} on {shown}, dirty" in _for_people(said), said
    said = owner.frozen(s.workdir, "show", forged, "--files")
    assert said.code == 0 and f"scripts/{shown}.py" in _for_people(said), said
    said = owner.frozen(s.workdir, "diff", s.b.id, forged)
    assert said.code == 1 and f"A  scripts/{shown}.py" in _for_people(said), said
    said = owner.frozen(s.workdir, "which", f"results/{EVIL}.tsv")
    assert said.code == 0 and f"s={shown}" in _for_people(said), said
    said = owner.frozen(s.workdir, "gc", "--keep-last", "1", "--dry-run")
    text = _for_people(said)
    assert said.code == 0 and _refused(text, f"of run {F_EVIL} (SLURM job {shown})"), said
    said = owner.frozen(s.workdir, "verify")
    assert said.code == 1 and visible(rule_folder.name) in _for_people(said), said

    found = owner.frozen(s.workdir, "which", "--json", f"results/{EVIL}.tsv").json()
    assert found["outputs"][0]["wildcards"] == {"s": EVIL}
    assert found["outputs"][0]["slurm_id"] == EVIL
    notes = owner.frozen(s.workdir, "gc", "--json", "--keep-last", "1", "--dry-run").json()
    assert any(f"refused: {evil_log}, named by" in note for note in notes["notes"])
    listed = owner.frozen(s.workdir, "list", "--json").json()["snapshots"]
    assert [x["commit"] for x in listed if x["id"] == forged] == [EVIL]
    manifest = owner.frozen(s.workdir, "show", "--json", forged).json()["manifest"]
    assert manifest["git"]["branch"] == EVIL
    difference = owner.frozen(s.workdir, "diff", "--json", s.b.id, forged).json()
    assert difference["added"] == [f"scripts/{EVIL}.py"]


def test_verify_shows_a_line_break_in_a_rule_folder_name_escaped(
    shared: Path, owner: Owner
) -> None:
    s = _shared_workflow(shared, owner, "sticky", journal_to_nobody=False)
    fake = f"{FORGED_LINE} verified 9 snapshot(s) and 0 rule-log copy(ies): all intact"
    rule_folder = s.logdir / f"rule_x\n{fake}\n"
    as_nobody("mkdir", "--", str(rule_folder))
    as_nobody("tee", "--", str(rule_folder / "code-0123456789ab.tar.zst"), data=b"junk")

    said = owner.frozen(s.workdir, "verify")

    assert said.code == 1, str(said)
    assert visible(rule_folder.name) in _for_people(said)


def test_show_names_close_files_escaped(shared: Path, owner: Owner) -> None:
    s = _shared_workflow(shared, owner, "sticky", journal_to_nobody=False)
    name = f"count.py\n{FORGED_LINE}.py"
    as_nobody("tee", "--", str(s.workdir / "scripts" / name), data=b"Y = 2\n")
    packed = owner.frozen(s.workdir, "pack", "--json").json()["id"]

    said = owner.frozen(s.workdir, "show", packed, "scripts/count.pyc")  # a typing error

    assert said.code == 1 and "did you mean scripts/count.py" in said.err, str(said)
    assert visible(f"scripts/{name}") in _for_people(said)


def test_restore_shows_no_command_and_the_recorded_values_escaped(
    shared: Path, owner: Owner
) -> None:
    """restore runs nothing and prints no command (reproduce reruns a job, into a folder of
    its own); the forged values it does show are escaped."""
    s = _shared_workflow(shared, owner, "sticky")
    elsewhere = f"/srv/x\n{FORGED_LINE} \x1b[2J"  # the run's working directory, as forged
    job_id = f"404\n{FORGED_LINE}\x1b]0;pwned\x07"  # its SLURM job id, as forged
    s.nobody_appends(
        s.forged(
            F_RESTORE,
            s.logdir / "rule_count" / "404.log",
            output="results/b.tsv",
            days=1,
            slurm_id=job_id,
            snapshot=s.b.id,
            workdir=elsewhere,
        )
    )
    mine = shared / "owner"
    mine.mkdir(mode=0o700)
    owner.own(mine)
    restore = ["restore", s.b.id, "--output", "results/b.tsv"]

    done = owner.frozen(s.workdir, *restore, "--json", str(mine / "first")).json()
    assert "command" not in done and done["slurm_id"] == job_id
    said = owner.frozen(s.workdir, *restore, str(mine / "second"))

    assert said.code == 0, str(said)
    text = _for_people(said)
    assert "--directory" not in text and "--forcerun" not in text and "/srv/x" not in text
    assert f"made by SLURM job {visible(job_id)} of this snapshot" in text
    assert said.out.splitlines()[-1].endswith("snakemake-frozen reproduce results/b.tsv"), said
