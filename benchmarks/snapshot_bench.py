"""Pack speed of the snapshot engine, against ``tar -c -T list | zstd -3 -T0``.

    python benchmarks/snapshot_bench.py [--runs 3] [--repo /work/main] [--tree DIR]
        [--large] [--large-tree DIR] [--profile]

Two trees: a synthetic workflow repository of about 5,000 files / 40 MB (built in a
temporary folder, or in ``--tree`` and reused when it exists) and a real repository
(``--repo``); with ``--large`` a third, the same generator at monorepo size (``LARGE``:
50,000 files / 100 MB, in ``--large-tree`` and reused when it exists). For each: files,
selected bytes, archive bytes, the cold pack (empty store: select, hash, archive), the warm
pack (unchanged tree, same store: no content read), and the same selected files through
``tar | zstd`` for comparison. Medians of ``--runs`` runs. The second pack (the first warm
one) is shown apart too. "Reuse, not yet earned" is a pack of an unchanged tree whose stored
entry this user has not checked yet (a colleague stored it, or the check cache was lost):
the archive is read once and proven to hold exactly the tree's files (``snapshot/earn.py``);
that is the cost per run start in that case, and nothing in the usual one, where the stat of
the entry this user wrote or earned vouches. CPU seconds (this process and its children:
git, tar, zstd) tell more than wall seconds on a shared machine. To compare the work rather
than the disk, put the tree and the stores on tmpfs: ``TMPDIR=/dev/shm python
benchmarks/snapshot_bench.py --tree /dev/shm/bench-tree``.

With ``--tools`` it also prints each step of that pipeline on its own: ``tar -c -T list``
alone (no compression, written to a file), ``zstd -3 -T0`` alone on that tar file, and the
extraction on the node: ``snapshot.extract`` (sha256 check, member checks, private folder
renamed into place, as a job does) against ``tar -I zstd -xf`` of the same archive.
``benchmarks/run`` prints those tables.

With ``--profile`` (``profile_pack``): where a cold and a warm pack of the large tree spend
their time, by cProfile: the pack's phases (cumulative seconds and share) and the functions
with the most time of their own.

``build_tree`` is also used by the tests.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The monorepo-size tree (issue 18): ten times the files of the default tree; the bytes
# grow less, as code files, not data, make up the count of a large repository.
LARGE = {"files": 50_000, "total_bytes": 100_000_000}

_SUFFIXES = [".py"] * 12 + [".yaml"] * 3 + [".smk", ".sh", ".toml", ".md", ".txt", ".json"]


def git(root: Path, *args: str) -> None:
    """git in `root`, with an identity so that commits work on a bare machine."""
    subprocess.run(
        ["git", "-c", "user.email=bench@example.org", "-c", "user.name=bench", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def _text(rng: random.Random, lines: list[str], size: int) -> bytes:
    # Lines average about 40 characters: draw enough of them at once, then cut to size.
    text = "\n".join(rng.choices(lines, k=size // 20 + 1)).encode()
    while len(text) < size:
        text += b"\n" + text
    return text[:size]


def build_tree(root: Path, files: int = 5000, total_bytes: int = 40_000_000, seed: int = 0) -> Path:
    """A deterministic workflow-like git repository whose selection is ``files`` files of
    ``total_bytes`` bytes in all (both about): mostly small text files of varied size, a few
    large ones (CSV text and incompressible binaries), some untracked files, gitignored noise
    that must stay out (a ``.venv``, ``results/``, logs, ``__pycache__``) and gitignored
    configs that the code-suffix rule adds back."""
    rng = random.Random(seed)
    # A fixed vocabulary of identifiers, like code: compresses about as well as real code.
    words = [
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 10))) for _ in range(3000)
    ]
    words += list("()[]{}:=.,+-*/'\"#")
    lines = [
        "    " * rng.randint(0, 3) + " ".join(rng.choices(words, k=rng.randint(2, 12)))
        for _ in range(50_000)
    ]
    root.mkdir(parents=True)
    large = max(1, files // 160)  # ~30 large files carry ~35 % of the bytes
    untracked, added_back = max(1, files // 80), max(1, files // 500)
    small = files - large - untracked - added_back
    sizes = [min(200_000, max(40, int(rng.lognormvariate(7.6, 1.1)))) for _ in range(small)]
    scale = total_bytes * 0.65 / sum(sizes)
    packages = [f"pkg{i}" for i in range(max(1, files // 125))]

    def small_path(i: int) -> Path:
        depth = rng.randint(1, 3)
        parts = [rng.choice(packages)] + [f"sub{rng.randint(0, 6)}" for _ in range(depth - 1)]
        return root.joinpath(*parts, f"m{i}{rng.choice(_SUFFIXES)}")

    for i, size in enumerate(sizes):
        path = small_path(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_text(rng, lines, max(1, int(size * scale))))
        if path.suffix == ".sh":
            path.chmod(0o755)
    (root / "data").mkdir()
    large_size = int(total_bytes * 0.35 / large)
    for i in range(large):
        if i % 4 == 3:  # figures, models: incompressible
            (root / "data" / f"blob{i}.bin").write_bytes(rng.randbytes(large_size))
        else:
            # Measurements: random hex fields, 8 to a row (compresses about 2x).
            digits = rng.randbytes(large_size // 2).hex()
            fields = [digits[j : j + 8] for j in range(0, len(digits), 8)]
            rows = (",".join(fields[j : j + 8]) for j in range(0, len(fields), 8))
            text = "\n".join(rows).encode()
            (root / "data" / f"table{i}.csv").write_bytes(text[:large_size])
    (root / "Snakefile").write_text('configfile: "config/config.yaml"\ninclude: "rules/a.smk"\n')
    (root / "rules").mkdir()
    (root / "rules" / "a.smk").write_text('rule a:\n    output: "results/a.txt"\n')
    (root / "config").mkdir()
    (root / "config" / "config.yaml").write_text("samples: [a, b]\n")
    (root / ".gitignore").write_text(
        ".venv/\nresults/\n__pycache__/\n*.log\nconfig/local*\n.snakemake/\n"
    )
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "tree")

    for i in range(untracked):
        path = root / "scratch" / f"u{i}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(_text(rng, lines, 2000))
    for i in range(added_back):
        (root / "config" / f"local{i}.yaml").write_bytes(_text(rng, lines, 500))
    # Ignored noise, never selected: a virtualenv full of .py files, outputs, caches, logs.
    (root / ".venv").mkdir()
    (root / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for i in range(1500):
        path = root / ".venv" / "lib" / f"mod{i % 30}" / f"f{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_text(rng, lines, 3000))
    (root / "results").mkdir()
    (root / "results" / "big.out").write_bytes(rng.randbytes(10_000_000))
    (root / "pkg0" / "__pycache__").mkdir(parents=True, exist_ok=True)
    (root / "pkg0" / "__pycache__" / "m.cpython-311.pyc").write_bytes(rng.randbytes(5000))
    (root / "run.log").write_text("log\n" * 1000)
    (root / ".snakemake" / "log").mkdir(parents=True)
    (root / ".snakemake" / "log" / "x.snakemake.log").write_text("log\n" * 1000)
    return root


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children so far."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed_cpu(fn) -> tuple[float, float, object]:
    """Wall seconds, CPU seconds (``_cpu_seconds``) and the result of ``fn()``."""
    cpu = _cpu_seconds()
    seconds, result = _timed(fn)
    return seconds, _cpu_seconds() - cpu, result


def _tar_zstd(root: Path, paths: list[str], out: Path) -> float:
    listing = out.with_suffix(".list")
    listing.write_bytes(b"\0".join(os.fsencode(p) for p in paths) + b"\0")
    start = time.perf_counter()
    tar = subprocess.Popen(
        ["tar", "-C", root, "--null", "--no-recursion", "-cf", "-", "-T", listing],
        stdout=subprocess.PIPE,
    )
    subprocess.run(["zstd", "-3", "-T0", "-q", "-f", "-o", out], stdin=tar.stdout, check=True)
    assert tar.stdout is not None
    tar.stdout.close()
    if tar.wait():
        raise RuntimeError(f"tar failed in {root}")
    return time.perf_counter() - start


def _run_timed(args: list) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _tools(root: Path, paths: list[str], result, runs: int, work: Path) -> dict:
    """The ``tar | zstd`` pipeline step by step, and extraction of our archive both ways.

    tar writes to a file, never to /dev/null: GNU tar then skips reading the contents."""
    from snakemake_executor_plugin_frozen.snapshot import extract

    listing = work / "tools.list"
    listing.write_bytes(b"\0".join(os.fsencode(p) for p in paths) + b"\0")
    tar_file, zst_file = work / "tools.tar", work / "tools.tar.zst"
    tar = ["tar", "-C", root, "--null", "--no-recursion", "-cf", tar_file, "-T", listing]
    zstd = ["zstd", "-3", "-T0", "-q", "-f", tar_file, "-o", zst_file]
    tar_only, zstd_only, ours, theirs = [], [], [], []
    for run in range(runs):
        tar_only.append(_run_timed(tar))
        zstd_only.append(_run_timed(zstd))
        dest = work / f"extract-ours-{run}"
        seconds, _ = _timed(lambda dest=dest: extract(result.archive, dest, result.archive_sha256))
        ours.append(seconds)
        dest = work / f"extract-tar-{run}"
        dest.mkdir()
        theirs.append(_run_timed(["tar", "-I", "zstd", "-xf", result.archive, "-C", dest]))
        for folder in (work / f"extract-ours-{run}", dest):
            shutil.rmtree(folder)
    row = {
        "tar_only": statistics.median(tar_only),
        "tar_only_bytes": tar_file.stat().st_size,
        "zstd_only": statistics.median(zstd_only),
        "extract": statistics.median(ours),
        "tar_extract": statistics.median(theirs),
    }
    for leftover in (listing, tar_file, zst_file):
        leftover.unlink()
    return row


def bench(name: str, root: Path, runs: int, work: Path, tools: bool = False) -> dict:
    from snakemake_executor_plugin_frozen.snapshot import SnapshotError, pack, read_manifest

    def pack_retrying(store: Path):
        # A repository others are editing may change under the pack: that is refused, so
        # try again rather than report a failure that is not the engine's.
        for attempt in range(5):
            try:
                return pack(root, store)
            except SnapshotError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    cold, second, warm, earned, tar_times = [], [], [], [], []
    cold_cpu, warm_cpu, tar_cpu = [], [], []
    result = None
    for run in range(runs):
        store = work / f"{name}-store-{run}"
        seconds, cpu, result = _timed_cpu(lambda store=store: pack_retrying(store))
        cold.append(seconds)
        cold_cpu.append(cpu)
        for again_run in range(3):
            seconds, cpu, again = _timed_cpu(lambda store=store: pack_retrying(store))
            assert not again.created, "an unchanged tree must not be stored again"
            warm.append(seconds)
            warm_cpu.append(cpu)
            if again_run == 0:
                second.append(seconds)
        # A stored entry this user has not earned yet (packed by a colleague, or its check
        # cache lost): the archive is read once and checked against the tree's files.
        for check in store.glob("statcache-*.archive.json"):
            check.unlink()
        time.sleep(0.02)  # out of the clock tick of the archive's writing
        seconds, _, again = _timed_cpu(lambda store=store: pack_retrying(store))
        assert not again.created, "an intact stored entry must be reused"
        earned.append(seconds)
        shutil.rmtree(store)
    assert result is not None
    store = work / f"{name}-store"
    result = pack_retrying(store)
    paths = [f.path for f in read_manifest(result.manifest).files]
    out = work / f"{name}.tar.zst"
    for _ in range(runs):
        cpu = _cpu_seconds()
        tar_times.append(_tar_zstd(root, paths, out))
        tar_cpu.append(_cpu_seconds() - cpu)
    row = {
        "tree": name,
        "files": result.files,
        "bytes": result.bytes,
        "archive": result.archive_bytes,
        "cold": statistics.median(cold),
        "warm": statistics.median(warm),
        "tar": statistics.median(tar_times),
        "tar_bytes": out.stat().st_size,
        "second": statistics.median(second),
        "earned": statistics.median(earned),
        "cold_cpu": statistics.median(cold_cpu),
        "warm_cpu": statistics.median(warm_cpu),
        "tar_cpu": statistics.median(tar_cpu),
    }
    if tools:
        row.update(_tools(root, paths, result, runs, work))
    return row


def _table(rows: list[dict]) -> str:
    head = (
        "| tree | files | MB selected | archive MB | cold pack s | 2nd pack s | warm pack s | "
        "reuse, not yet earned s | tar\\|zstd -3 -T0 s | tar\\|zstd MB | cold / tar\\|zstd | "
        "warm / tar\\|zstd | CPU s cold / warm / tar\\|zstd |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    body = [
        f"| {r['tree']} | {r['files']} | {r['bytes'] / 1e6:.1f} | {r['archive'] / 1e6:.2f} | "
        f"{r['cold']:.3f} | {r['second']:.4f} | {r['warm']:.4f} | {r['earned']:.3f} | "
        f"{r['tar']:.3f} | "
        f"{r['tar_bytes'] / 1e6:.2f} | {r['cold'] / r['tar']:.2f} | {r['warm'] / r['tar']:.3f} | "
        f"{r['cold_cpu']:.3f} / {r['warm_cpu']:.4f} / {r['tar_cpu']:.3f} |"
        for r in rows
    ]
    return "\n".join([head, *body])


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}" if theirs > 0 else "n/a"


def tools_tables(rows: list[dict]) -> str:
    """Packing against each step of ``tar | zstd``, and extraction, for ``bench(tools=True)``
    rows: seconds, and ratios ours / theirs (below 1: ours is faster)."""
    pack_head = (
        "| tree | files | MB | cold pack s | warm pack s | tar -c s | zstd -3 -T0 s | "
        "tar -c \\| zstd -3 -T0 s | cold / tar | cold / zstd | cold / tar\\|zstd | "
        "warm / tar | warm / zstd | warm / tar\\|zstd |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    pack_body = [
        f"| {r['tree']} | {r['files']} | {r['bytes'] / 1e6:.1f} | {r['cold']:.3f} | "
        f"{r['warm']:.4f} | {r['tar_only']:.3f} | {r['zstd_only']:.3f} | {r['tar']:.3f} | "
        + " | ".join(
            _ratio(r[ours], r[theirs])
            for ours in ("cold", "warm")
            for theirs in ("tar_only", "zstd_only", "tar")
        )
        + " |"
        for r in rows
    ]
    extract_head = (
        "| tree | archive MB | tar\\|zstd MB | snapshot.extract s | tar -I zstd -xf s | "
        "extract / tar |\n"
        "|---|---:|---:|---:|---:|---:|"
    )
    extract_body = [
        f"| {r['tree']} | {r['archive'] / 1e6:.2f} | {r['tar_bytes'] / 1e6:.2f} | "
        f"{r['extract']:.3f} | {r['tar_extract']:.3f} | "
        f"{_ratio(r['extract'], r['tar_extract'])} |"
        for r in rows
    ]
    return "\n".join([pack_head, *pack_body, "", extract_head, *extract_body])


# The pack's phases, as (label, file, function) of snakemake_executor_plugin_frozen/snapshot;
# indented labels are parts of the one above.
_PHASES = [
    ("select (rules, git walk, the files' lstat meanwhile)", "select.py", "select"),
    ("  discover: git ls-files, waited for", "discover.py", "discover"),
    ("    meanwhile: hard-excluded filter, lstat of tracked files", "select.py", "tracked_known"),
    ("  tagged folders (CACHEDIR.TAG, pyvenv.cfg, conda-meta per folder)", "select.py",
     "_tagged_dirs"),
    ("  symbolic links (one scandir per folder)", "select.py", "_links"),
    ("  credential names", "select.py", "_secrets"),
    ("inspect (entries from the lstat results)", "entries.py", "inspect"),
    ("stat cache and archive check (load, split, save)", "hashing.py", "split"),
    ("write the archive: read, sha256, tar headers, zstd", "pack.py", "_archive"),
    ("  read_verified (open, read, sha256, fstat check)", "hashing.py", "read_verified"),
    ("manifest and commit into the store", "pack.py", "_commit"),
    ("  manifest encode (JSON)", "manifest.py", "encode"),
    ("  git record (waited for)", "provenance.py", "git_record"),
]  # fmt: skip


def _profile_one(root: Path, store: Path):
    import cProfile
    import pstats

    from snakemake_executor_plugin_frozen.snapshot import pack

    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    pack(root, store)
    profile.disable()
    wall = time.perf_counter() - start
    return wall, pstats.Stats(profile)


def _phase_seconds(stats, file: str, function: str) -> float:
    total = 0.0
    for (path, _, name), (_, _, _, cumulative, _) in stats.stats.items():
        if name == function and path.endswith(f"/snapshot/{file}"):
            total += cumulative
    return total


def profile_pack(root: Path, work: Path, top: int = 12) -> str:
    """Where a cold and a warm pack of ``root`` spend their time (cProfile), as markdown."""
    store = work / "profile-store"
    cold_wall, cold = _profile_one(root, store)
    _profile_one(root, store)  # the second pack: warm from here on, as in ``bench``
    warm_wall, warm = _profile_one(root, store)
    shutil.rmtree(store)
    out = [
        f"Under cProfile (which slows Python code down, not system calls or the git and zstd "
        f"work): cold {cold_wall:.2f} s, warm {warm_wall:.2f} s wall. Seconds are "
        "cumulative (a part's are in its whole's).",
        "",
        "| phase | cold s | cold % | warm s | warm % |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, file, function in _PHASES:
        c, w = (_phase_seconds(s, file, function) for s in (cold, warm))
        if c == 0 and w == 0:
            continue
        out.append(
            f"| {label.replace('  ', '&nbsp;&nbsp;')} | {c:.3f} | {100 * c / cold_wall:.0f} "
            f"| {w:.3f} | {100 * w / warm_wall:.0f} |"
        )
    for name, stats, wall in (("cold", cold, cold_wall), ("warm", warm, warm_wall)):
        rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:top]
        out += [
            "",
            f"Top {top} functions of the {name} pack by own time:",
            "",
            "| function | calls | own s | % of wall |",
            "|---|---:|---:|---:|",
        ]
        for (path, line, name_), (_, calls, own, _, _) in rows:
            where = f"{Path(path).name}:{line} {name_}" if line else name_
            out.append(f"| `{where}` | {calls} | {own:.3f} | {100 * own / wall:.0f} |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--tree", type=Path, help="build the synthetic tree here (reused)")
    parser.add_argument(
        "--tools", action="store_true", help="also time tar, zstd and extraction on their own"
    )
    parser.add_argument("--large", action="store_true", help="also the 50,000-file tree")
    parser.add_argument("--large-tree", type=Path, help="build the large tree here (reused)")
    parser.add_argument(
        "--profile", action="store_true", help="profile a cold and a warm pack of the large tree"
    )
    parser.add_argument("--only-large", action="store_true", help="the large tree only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="snapshot-bench-") as tmp:
        work = Path(tmp)
        tree = args.tree or work / "tree"
        if not tree.exists():
            seconds, _ = _timed(lambda: build_tree(tree))
            print(f"built {tree} in {seconds:.1f} s", file=sys.stderr)
        rows = []
        if not args.only_large:
            rows.append(bench("synthetic 5k", tree, args.runs, work, args.tools))
        large = args.large_tree or work / "tree-50k"
        if (args.large or args.only_large or args.profile) and not large.exists():
            seconds, _ = _timed(lambda: build_tree(large, **LARGE))
            print(f"built {large} in {seconds:.1f} s", file=sys.stderr)
        if args.large or args.only_large:
            rows.append(bench("synthetic 50k", large, args.runs, work, args.tools))
        if not args.only_large:
            rows.append(bench(args.repo.name, args.repo, args.runs, work, args.tools))
    print(f"{os.cpu_count()} CPUs, medians of {args.runs} runs (warm: of {3 * args.runs})")
    print(_table(rows))
    if args.tools:
        print()
        print(tools_tables(rows))
    if args.profile:
        print()
        print(profile_pack(large, work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
