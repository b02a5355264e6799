"""What the job's view of its code costs per job (see node/view.py), as root and as an
ordinary user.

    python benchmarks/view_bench.py [--reps 30] [--trees 5k 50k flat] [--no-user] [--no-profile]

Three trees, each packed with the package's own ``pack``, extracted as a job does
(``node enter``, with the ``--scratch`` and ``--holder`` the batch script gives it) and
planned as the executor does (``view_plan.whole_folders`` with the workflow's data folders):
- ``5k``: snapshot_bench's synthetic ~5,000-file / 40 MB workflow repository: code folders
  bound whole, the root (which also holds ``results/``, ``.snakemake/``, a ``.venv``, a log)
  file by file;
- ``50k``: the same generator at 50,000 files / 100 MB (400 code folders);
- ``flat``: the worst case, 5,000 code files in ONE folder that also holds a data file and
  ``.snakemake/``: every file bound on its own.
Then, with the FROZEN_* environment that ``enter`` exported and the tree as working folder,
``node run --view auto --whole=... -- /bin/true`` against ``node run -- /bin/true`` (no view),
alternating, ``--reps`` times each: the difference of the medians is what the view costs a
job (entering it, and tearing its mounts down when the job ends). The job's log line gives
the view's own time (``...; N ms``), the count of bind mounts is read from
``/proc/self/mountinfo`` inside and outside the view. ``whole_folders`` is timed too: the
executor runs it once per Snakemake run, on the login node.

With profiling (the default) a child process enters the view with the view's functions
wrapped in timers (the package is not changed): the seal (read, parse), the wrapper script,
unshare, the plan, the per-entry O_PATH walks, mount(2) calls and the statvfs of each
read-only remount; and the time from the child's exit starting (its pipe's EOF) to its
parent's waitpid returning, which is when the kernel tears the namespace's mounts down.

The scratch (where ``enter`` extracts the copy) is first a folder beside the trees, on the
same filesystem, then, when it is another filesystem, on /dev/shm: as on a node whose scratch
is local while the code lies on a shared filesystem. That matters: a bind mount's cost grows
with the mounts already made below the mount it binds from, and when the copy and the live
tree share a filesystem, every bind of the view lands below that very mount.

As the ordinary user ``frozentest`` (uid 2001, made by ``scripts/slurm-cluster start``) with
its venv /opt/snakemake-frozen-user-venv (``scripts/lib/user.sh setup``, run here when that
venv's plugin differs from this checkout's): the same runs through ``setpriv`` (a user and a
mount namespace, as on a cluster node). Skipped, with a note, when either is missing or this
is not run as root. ``benchmarks/run`` prints these tables (``--skip-view`` leaves them out).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import snapshot_bench

REPO = Path(__file__).resolve().parents[1]

MODULE = "snakemake_executor_plugin_frozen.node"
USER = "frozentest"
USER_VENV = Path("/opt/snakemake-frozen-user-venv")
TMPFS = Path("/dev/shm")
TARGET_MS = 50.0  # the target for the 5k tree: entering the view, per job
_LOG_LINE = re.compile(
    r"frozen: view: mount \(.*?: (\d+) folder\(s\) and (\d+) file\(s\) .*?; ([\d.]+) ms\)"
)

# The probe: one view entered in a forked child with the view's steps timed (wrappers
# around module functions, nothing of the package changed), then the namespace's teardown
# seen from the parent: from EOF on the child's pipe (its files closed, early in its exit)
# to waitpid (after its namespaces are gone).
_PROBE = r"""
import json, os, sys, time
from snakemake_executor_plugin_frozen.node import namespace, view
spent = {}
each = []  # every mount(2) call's seconds, in order
def timed(module, name, key):
    function = getattr(module, name)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            seconds = time.perf_counter() - start
            s = spent.setdefault(key, [0.0, 0])
            s[0] += seconds
            s[1] += 1
            if key == "mount(2)":
                each.append(seconds)
    setattr(module, name, wrapper)
for module, name, key in [
    (view, "open_user_folder", "user folder"), (view, "sealed_entries", "seal"),
    (view, "_read_seal", "seal read"), (view, "_parse_seal", "seal parse"),
    (view, "_write_wrappers", "wrappers"), (view, "enter_namespace", "unshare"),
    (view, "reopen", "reopen"), (view, "plan", "plan"), (view, "_bind_one", "binds"),
    (view, "open_under", "opens"), (view, "bind", "bind"), (namespace, "_mount", "mount(2)"),
    (namespace, "_kept_flags", "statvfs"),
]:
    timed(module, name, key)
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(read)
    start = time.perf_counter()
    if sys.argv[1] == "view":
        view.enter_view(view.ViewRequest("auto", tuple(json.loads(sys.argv[2]))), os.environ)
    spent["total"] = [time.perf_counter() - start, 1]
    tenth = max(1, len(each) // 10)
    spent["mount first"] = [sum(each[:tenth]) / tenth, tenth]
    spent["mount last"] = [sum(each[-tenth:]) / tenth, tenth]
    os.write(write, json.dumps(spent).encode())
    os._exit(0)
os.close(write)
data = b""
while chunk := os.read(read, 1 << 16):
    data += chunk
eof = time.perf_counter()
os.waitpid(pid, 0)
spent = json.loads(data)
spent["teardown"] = [time.perf_counter() - eof, 1]
print(json.dumps(spent))
"""


@dataclass
class Tree:
    name: str
    root: Path
    data: list[Path]  # what the workflow writes there: no whole folder may hold it
    files: int = 0
    archive: Path | None = None
    sha256: str = ""
    snapshot_id: str = ""
    whole: list[str] = field(default_factory=list)
    plan_seconds: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Runner:
    """Runs the node helper as root (`user` None) or as the ordinary user."""

    label: str
    python: str
    scratch: Path
    user: pwd.struct_passwd | None = None

    def argv(self, command: list[str], env: dict[str, str]) -> tuple[list[str], dict | None]:
        if self.user is None:
            return command, env
        u = self.user
        words = [f"{k}={v}" for k, v in env.items()]
        setpriv = ["setpriv", f"--reuid={u.pw_uid}", f"--regid={u.pw_gid}", "--init-groups"]
        return [*setpriv, "--", "env", "-i", *words, *command], {"PATH": os.environ["PATH"]}

    def base_env(self) -> dict[str, str]:
        if self.user is None:
            keep = ("PATH", "HOME", "USER", "LANG", "TMPDIR")
            return {k: os.environ[k] for k in keep if k in os.environ}
        u = self.user
        return {
            "HOME": u.pw_dir,
            "USER": u.pw_name,
            "LOGNAME": u.pw_name,
            "PATH": f"{USER_VENV}/bin:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
        }

    def node(self, args: list[str], env: dict[str, str], cwd: Path, log=None):
        argv, run_env = self.argv([self.python, "-P", "-m", MODULE, *args], env)
        return subprocess.run(
            argv,
            env=run_env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=log if log is not None else subprocess.PIPE,
            text=True,
        )


def _progress(text: str) -> None:
    print(f"view_bench: {text}", file=sys.stderr, flush=True)


def build_flat_tree(root: Path, files: int = 5000) -> Path:
    """The worst case: `files` code files in the root folder itself, beside a data file and
    `.snakemake/` (a git repository that ignores both): no folder can be bound whole."""
    root.mkdir(parents=True)
    body = "import os\n\n\ndef f(x):\n    return os.path.join(x, 'y')\n" * 20
    for i in range(files):
        (root / f"m{i}.py").write_text(f"# module {i}\n{body}")
    (root / "Snakefile").write_text('rule a:\n    output: "results.tsv"\n    shell: "true"\n')
    (root / ".gitignore").write_text("results.tsv\n.snakemake/\n")
    snapshot_bench.git(root, "init", "-q")
    snapshot_bench.git(root, "add", "-A")
    snapshot_bench.git(root, "commit", "-q", "-m", "flat")
    (root / "results.tsv").write_text("a\tb\n1\t2\n")
    (root / ".snakemake" / "log").mkdir(parents=True)
    return root


# No `git gc --auto` left running in the background after the trees' commits: it would
# remove files under the tree while it is handed to the user, and load the machine.
_NO_GC = {
    "GIT_CONFIG_COUNT": "2",
    "GIT_CONFIG_KEY_0": "gc.auto",
    "GIT_CONFIG_VALUE_0": "0",
    "GIT_CONFIG_KEY_1": "maintenance.auto",
    "GIT_CONFIG_VALUE_1": "false",
}


def make_tree(name: str, work: Path) -> Tree:
    root = work / "trees" / name
    start = time.perf_counter()
    saved = {key: os.environ.get(key) for key in _NO_GC}
    os.environ.update(_NO_GC)
    try:
        if name == "5k":
            snapshot_bench.build_tree(root)
        elif name == "50k":
            snapshot_bench.build_tree(root, files=50_000, total_bytes=100_000_000)
        elif name == "flat":
            build_flat_tree(root)
        else:
            raise ValueError(name)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    _progress(f"built the {name} tree in {time.perf_counter() - start:.1f} s")
    if name == "flat":
        return Tree(name, root, [root / "results.tsv", root / ".snakemake"])
    return Tree(name, root, [root / "results", root / ".snakemake"])


def pack_and_plan(tree: Tree, work: Path, plan_reps: int) -> None:
    """Pack as the executor does, time `whole_folders` on it, and put the archive where
    every user can read it."""
    from snakemake_executor_plugin_frozen.snapshot import pack, read_manifest
    from snakemake_executor_plugin_frozen.view_plan import whole_folders

    start = time.perf_counter()
    result = pack(tree.root, work / "store")
    _progress(f"packed {tree.name} ({result.files} files) in {time.perf_counter() - start:.1f} s")
    assert not result.prefix, "the bench trees have no files outside the code root"
    files = [f.path for f in read_manifest(result.manifest).files]
    for _ in range(plan_reps):
        start = time.perf_counter()
        tree.whole = whole_folders(tree.root, files, tree.data)
        tree.plan_seconds.append(time.perf_counter() - start)
    archive = work / "archives" / result.archive.name
    archive.parent.mkdir(mode=0o755, exist_ok=True)
    shutil.copyfile(result.archive, archive)
    archive.chmod(0o644)
    tree.files, tree.archive = result.files, archive
    tree.sha256, tree.snapshot_id = result.archive_sha256, result.id


def enter(runner: Runner, tree: Tree) -> tuple[dict[str, str], list[float]]:
    """`node enter` as the batch script calls it: the job's environment (the exports on top
    of the base one); the first call extracts, the later ones (timed) find the copy sealed."""
    assert tree.archive is not None
    args = [
        "enter",
        "--archive", str(tree.archive), "--sha256", tree.sha256, "--id", tree.snapshot_id,
        "--code-root", str(tree.root), "--scratch", str(runner.scratch),
        "--holder", str(os.getpid()),
    ]  # fmt: skip
    env = runner.base_env()
    reused = []
    for attempt in range(4):
        start = time.perf_counter()
        result = runner.node(args, env, tree.root)
        if attempt:
            reused.append(time.perf_counter() - start)
        if result.returncode:
            raise RuntimeError(f"node enter as {runner.label} failed:\n{result.stderr}")
    exports = {}
    for line in result.stdout.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export":
            key, value = words[1].split("=", 1)
            exports[key] = value
    return {**env, **exports}, reused


def leave(runner: Runner, tree: Tree, env: dict[str, str]) -> None:
    runner.node(["leave"], env, tree.root)


def _view_args(tree: Tree) -> list[str]:
    return ["--view", "auto", *(f"--whole={folder}" for folder in tree.whole)]


def _mounts(runner: Runner, tree: Tree, env: dict[str, str], view: bool) -> int:
    count = ["/bin/sh", "-c", "wc -l < /proc/self/mountinfo"]
    result = runner.node(["run", *(_view_args(tree) if view else []), "--", *count], env, tree.root)
    return int(result.stdout.strip())


def time_runs(runner: Runner, tree: Tree, env: dict[str, str], reps: int, work: Path) -> dict:
    """`run` with and without the view, alternating; wall and CPU seconds of each (the CPU
    of the process and what it waited for: less swayed by other load than the wall time),
    and what the job's log says of the view."""
    with_view, without, logged, binds = [], [], [], None
    cpu: dict[bool, list[float]] = {True: [], False: []}
    log_path = work / "job.log"
    for rep in range(2 * reps + 2):
        view = rep % 2 == 0
        args = ["run", *(_view_args(tree) if view else []), "--", "/bin/true"]
        with open(log_path, "w+") as log:  # a file, as the job's log is in SLURM
            if runner.user is not None:
                os.fchown(log.fileno(), runner.user.pw_uid, runner.user.pw_gid)
            cpu_start, start = snapshot_bench._cpu_seconds(), time.perf_counter()
            result = runner.node(args, env, tree.root, log=log)
            seconds = time.perf_counter() - start
            cpu_seconds = snapshot_bench._cpu_seconds() - cpu_start
            log.seek(0)
            text = log.read()
        if result.returncode:
            raise RuntimeError(f"node run as {runner.label} failed:\n{text}")
        if rep < 2:
            continue  # warm-up: one of each
        cpu[view].append(cpu_seconds)
        if not view:
            without.append(seconds)
            continue
        with_view.append(seconds)
        match = _LOG_LINE.search(text)
        if match is None:
            return {"unavailable": text.strip().splitlines()[-1] if text.strip() else "?"}
        binds = (int(match.group(1)), int(match.group(2)))
        logged.append(float(match.group(3)) / 1000)
    return {
        "view": with_view,
        "plain": without,
        "view_cpu": cpu[True],
        "plain_cpu": cpu[False],
        "logged": logged,
        "folders": binds[0] if binds else 0,
        "files": binds[1] if binds else 0,
        "mounts": _mounts(runner, tree, env, True) - _mounts(runner, tree, env, False),
    }


def probe(runner: Runner, tree: Tree, env: dict[str, str], reps: int) -> dict:
    """The view's steps, medians over `reps` probes; `teardown_plain` is the same exit
    without a view."""
    runs: list[dict] = []
    plain: list[float] = []
    for rep in range(reps):
        for mode in ("view", "plain"):
            argv, run_env = runner.argv(
                [runner.python, "-P", "-c", _PROBE, mode, json.dumps(tree.whole)], env
            )
            result = subprocess.run(
                argv, env=run_env, cwd=tree.root, capture_output=True, text=True
            )
            if result.returncode:
                raise RuntimeError(f"the probe as {runner.label} failed:\n{result.stderr}")
            spent = json.loads(result.stdout.strip().splitlines()[-1])
            if rep == 0:
                continue  # warm-up
            if mode == "view":
                runs.append(spent)
            else:
                plain.append(spent["teardown"][0])
    keys = {key for spent in runs for key in spent}
    out = {
        key: (
            statistics.median(s.get(key, [0.0, 0])[0] for s in runs),
            max(s.get(key, [0.0, 0])[1] for s in runs),
        )
        for key in keys
    }
    out["teardown_plain"] = (statistics.median(plain), 1)
    return out


def _cost(row: dict, view: str, plain: str) -> float:
    """The median of the paired differences (each view run minus the plain run after it):
    a slow spell of the machine touches both runs of a pair."""
    return statistics.median(v - p for v, p in zip(row[view], row[plain], strict=True))


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def bench_runner(runner: Runner, trees: list[Tree], reps: int, profile: bool, work: Path) -> list:
    rows = []
    for tree in trees:
        env, reused = enter(runner, tree)
        try:
            row = {"tree": tree, "runner": runner.label, "enter": statistics.median(reused)}
            row.update(time_runs(runner, tree, env, reps, work))
            if profile and "unavailable" not in row:
                row["probe"] = probe(runner, tree, env, max(4, reps // 5))
        finally:
            leave(runner, tree, env)
        _progress(f"{tree.name} as {runner.label} done")
        rows.append(row)
    return rows


def cost_table(rows: list[dict]) -> str:
    head = (
        "| tree | as | files | whole folders / single files | mounts | `run` no view ms "
        "(median / p90) | `run` in view ms (median / p90) | **view's cost ms** (wall; CPU) | "
        "view's own log ms (median / p90) | `enter`, copy reused, ms |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    body = []
    for r in rows:
        tree = r["tree"]
        if "unavailable" in r:
            body.append(
                f"| {tree.name} | {r['runner']} | {tree.files} | no mount view: "
                f"{r['unavailable']} | | | | | | {_ms(r['enter'])} |"
            )
            continue
        view, plain, logged = r["view"], r["plain"], r["logged"]
        cost, cpu = _cost(r, "view", "plain"), _cost(r, "view_cpu", "plain_cpu")
        body.append(
            f"| {tree.name} | {r['runner']} | {tree.files} | {r['folders']} / {r['files']} | "
            f"{r['mounts']} | {_ms(statistics.median(plain))} / {_ms(_p90(plain))} | "
            f"{_ms(statistics.median(view))} / {_ms(_p90(view))} | **{_ms(cost)}**; {_ms(cpu)} | "
            f"{_ms(statistics.median(logged))} / {_ms(_p90(logged))} | {_ms(r['enter'])} |"
        )
    return "\n".join([head, *body])


_STEPS = [
    ("user folder", "open the per-user folder"),
    ("seal", "seal: read + parse + filter"),
    ("seal parse", "  of which the parse"),
    ("wrappers", "write bin/srun"),
    ("unshare", "unshare + make mounts private"),
    ("reopen", "reopen the copy and live root"),
    ("plan", "plan the binds"),
    ("binds", "bind every entry (`_bind_one`)"),
    ("opens", "  O_PATH walks, copy and live side"),
    ("mount(2)", "  mount(2): bind + read-only remount"),
    ("statvfs", "  statvfs for the kept flags"),
    ("mount first", "  one mount(2), first tenth of the calls"),
    ("mount last", "  one mount(2), last tenth of the calls"),
    ("total", "entering the view, in all"),
    ("teardown", "teardown at exit (EOF to waitpid)"),
    ("teardown_plain", "  the same exit without a view"),
]


def profile_table(rows: list[dict]) -> str:
    profiled = [r for r in rows if "probe" in r]
    if not profiled:
        return ""
    names = [f"{r['tree'].name} {r['runner']}" for r in profiled]
    head = "| step (ms, calls) | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names)
    body = []
    for key, label in _STEPS:
        cells = []
        for r in profiled:
            seconds, calls = r["probe"].get(key, (0.0, 0))
            if key.startswith("mount "):  # a mean per call
                cells.append(f"{seconds * 1e6:.0f} µs")
            else:
                cells.append(f"{_ms(seconds)}" + (f" ({calls})" if calls > 1 else ""))
        body.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join([head, *body])


def plan_table(trees: list[Tree]) -> str:
    head = (
        "| tree | files | whole folders | `whole_folders` ms (median / p90), once per run |\n"
        "|---|---:|---:|---:|"
    )
    body = [
        f"| {t.name} | {t.files} | {len(t.whole)} | {_ms(statistics.median(t.plan_seconds))} / "
        f"{_ms(_p90(t.plan_seconds))} |"
        for t in trees
    ]
    return "\n".join([head, *body])


def verdict(rows: list[dict]) -> str:
    lines = []
    for r in rows:
        if "view" not in r:
            continue
        cost, logged = _cost(r, "view", "plain"), statistics.median(r["logged"])
        line = (
            f"- {r['tree'].name} tree as {r['runner']}: {_ms(cost)} ms per job (the view's "
            f"own log: {_ms(logged)} ms; {r['mounts']} mounts)"
        )
        if r["tree"].name == "5k":
            met = "met" if cost <= TARGET_MS / 1000 else "MISSED"
            line += f"; target <= {TARGET_MS:.0f} ms: {met}"
        lines.append(line)
    return "\n".join(lines)


def _scratch(folder: Path) -> Path:
    """A scratch folder every user may use, as /tmp is (sticky, world-writable)."""
    scratch = folder / "scratch"
    scratch.mkdir()
    scratch.chmod(0o1777)
    return scratch


def _other_filesystem(path: Path, work: Path) -> bool:
    try:
        return path.is_dir() and path.stat().st_dev != work.stat().st_dev
    except OSError:
        return False


def _user_runner() -> tuple[Runner | None, str]:
    """The ordinary user's runner, or None and why not."""
    if os.geteuid() != 0:
        return None, "not run as root: cannot run as another user"
    try:
        user = pwd.getpwnam(USER)
    except KeyError:
        return None, f"no user {USER} (scripts/slurm-cluster start makes it)"
    if shutil.which("setpriv") is None:
        return None, "setpriv (util-linux) is not installed"
    python = USER_VENV / "bin" / "python"
    if not _venv_current(python):
        _progress(f"refreshing {USER_VENV} (scripts/lib/user.sh setup)")
        result = subprocess.run(
            ["bash", str(REPO / "scripts" / "lib" / "user.sh"), "setup"],
            capture_output=True,
            text=True,
        )
        if result.returncode or not _venv_current(python):
            return None, f"{USER_VENV} is missing or not this checkout's plugin"
    return Runner(USER, str(python), Path("/nonexistent"), user), ""


def _venv_current(python: Path) -> bool:
    if not python.exists():
        return False
    code = "import snakemake_executor_plugin_frozen as p; print(p.__file__)"
    result = subprocess.run([python, "-P", "-c", code], capture_output=True, text=True, cwd="/")
    if result.returncode:
        return False
    installed = Path(result.stdout.strip()).parent
    ours = REPO / "snakemake_executor_plugin_frozen"
    return (
        all(
            (installed / path.relative_to(ours)).read_bytes() == path.read_bytes()
            for path in [*ours.glob("node/*.py"), ours / "view_plan.py"]
            if (installed / path.relative_to(ours)).exists()
        )
        and (installed / "node" / "view.py").exists()
    )


def run_all(
    trees: list[str], reps: int, user: bool = True, profile: bool = True, tmpfs: bool = True
) -> str:
    """The tables, as markdown, with a line per target; what benchmarks/report.py prints."""
    work = Path(tempfile.mkdtemp(prefix="view-bench-"))
    cleanup = [work]
    try:
        work.chmod(0o755)  # the ordinary user reaches the trees, archives and scratch
        scratches = {"": _scratch(work)}
        if tmpfs and _other_filesystem(TMPFS, work):
            tmpfs_work = Path(tempfile.mkdtemp(prefix="view-bench-", dir=TMPFS))
            cleanup.append(tmpfs_work)
            tmpfs_work.chmod(0o755)
            scratches[f", scratch on {TMPFS}"] = _scratch(tmpfs_work)
        built = [make_tree(name, work) for name in trees]
        for tree in built:
            pack_and_plan(tree, work, plan_reps=max(5, reps // 3))
        runners = [Runner(f"root{s}", sys.executable, path) for s, path in scratches.items()]
        note = ""
        if user:
            runner, note = _user_runner()
            if runner is not None:
                assert runner.user is not None
                for tree in built:  # the user's own workflow
                    subprocess.run(
                        ["chown", "-R", f"{runner.user.pw_uid}:{runner.user.pw_gid}", tree.root],
                        check=True,
                    )
                runners += [
                    replace(runner, label=f"{runner.label}{s}", scratch=path)
                    for s, path in scratches.items()
                ]
        else:
            note = "left out (--no-user)"
        rows = []
        for runner in runners:
            rows += bench_runner(runner, built, reps, profile, work)
    finally:
        for folder in cleanup:
            shutil.rmtree(folder, ignore_errors=True)
    parts = [
        f"`node run -- /bin/true` with and without `--view auto`, {reps} runs each, "
        "alternating, after one warm-up each. The view's cost: the median of the paired "
        "differences (a view run minus the plain run after it), wall time and CPU time (the "
        "run and what it waited for); it holds entering the view and its teardown when the "
        "job ends. Mounts: lines of "
        "/proc/self/mountinfo in the view minus outside. `enter`, copy reused: the batch "
        "script's `node enter` on a node that has the copy already (it re-stats the copy "
        "against its seal), for scale. Scratch on /dev/shm: the copy on another filesystem "
        "than the live tree, as on a node with a local scratch and the code on a shared one.",
        "",
        cost_table(rows),
    ]
    if note:
        parts += ["", f"As the ordinary user {USER}: skipped, {note}."]
    if profile:
        parts += [
            "",
            "Where the time goes (one view entered in a probe process with the view's "
            "functions wrapped in timers, which add about a microsecond per call; medians; "
            "indented rows are part of the row above them):",
            "",
            profile_table(rows),
        ]
    parts += [
        "",
        "On the login node, once per Snakemake run (`view_plan.whole_folders`):",
        "",
        plan_table(built),
        "",
        verdict(rows),
    ]
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=30, help="runs of each variant")
    parser.add_argument(
        "--trees", nargs="+", choices=("5k", "50k", "flat"), default=["5k", "50k", "flat"]
    )
    parser.add_argument("--no-user", action="store_true", help="as root only")
    parser.add_argument("--no-profile", action="store_true", help="no per-step breakdown")
    parser.add_argument(
        "--no-tmpfs", action="store_true", help=f"no runs with the scratch on {TMPFS}"
    )
    args = parser.parse_args()
    if args.reps < 2:
        parser.error("--reps must be 2 or more")
    start = time.perf_counter()
    text = run_all(args.trees, args.reps, not args.no_user, not args.no_profile, not args.no_tmpfs)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M %Z')}, load average {load}")
    print(text)
    print(f"\n(view benchmark: {time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
