"""Every benchmark in one go, as markdown tables: what ``benchmarks/run`` prints.

    .venv/bin/python benchmarks/report.py [--pack-runs 3] [--slurm-runs 3] [--n 20]
        [--scale-jobs 50] [--scale-variants frozen frozen-arrays stock stock-arrays]
        [--view-reps 30] [--skip-view]

1. Packing (``snapshot_bench.py``): the synthetic ~5k-file / 40 MB tree, the same generator
   at 50k files / 100 MB (a monorepo's count of files) and this repository;
   our cold and warm pack against ``tar -c -T list``, ``zstd -3 -T0`` on that tar file and
   ``tar -c | zstd -3 -T0``; then extraction, ``snapshot.extract`` against
   ``tar -I zstd -xf`` of the same archive; then where a cold and a warm pack of the 50k
   tree spend their time (cProfile).
2. The same workflow on the local SLURM cluster with the stock plugin and with ours
   (``slurm_bench.py``, whose docstring says how the comparison is kept fair).
3. N trivial jobs submitted at once (``slurm_bench.py --scale N``), with and without job
   arrays, ours and the stock plugin: wall time, sbatch calls, status queries, peak memory
   of the Snakemake process and the time the cluster was busy. Each job starts a Snakemake
   on its node (about a second of CPU on this 2-core machine; the stock plugin two), so
   the default N is small enough for the whole report to take about 15 minutes.
4. The executor's per-job bookkeeping at 10,000 and 100,000 simulated jobs, no SLURM
   (``scale_bench.py``): parsing sacct's answer, rendering batch scripts and sbatch
   command lines, tracking jobs missing from sacct.
5. What the job's view of its code costs per job (``view_bench.py``): ``node run`` with and
   without the view on a 5k-file, a 50k-file and a one-folder 5k-file tree, as root and as
   the ordinary user, where the time goes, and the login node's ``whole_folders``.

Ratios are ours / theirs: below 1 ours is faster. Progress goes to stderr, the tables to
stdout. ``benchmarks/run`` sets up what this needs (the stock plugin's venv, the cluster).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import scale_bench
import slurm_bench
import snapshot_bench
import view_bench

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _first_line(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except OSError as e:
        return f"unavailable ({e.strerror})"
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def _tool_version(command: list[str], name: str) -> str:
    match = re.search(r"\bv?(\d+\.\d+(?:\.\d+)?)\b", _first_line(command))
    return f"{name} {match.group(1) if match else 'unknown'}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.0f} GiB"
    except OSError:
        pass
    return "unknown memory"


def _stock_versions(python: Path) -> str:
    if not python.exists():
        return "not installed"
    names = ("snakemake-executor-plugin-slurm", "snakemake-executor-plugin-slurm-jobstep")
    code = (
        "import importlib.metadata as m, sys\nprint(' '.join(m.version(n) for n in sys.argv[1:]))"
    )
    result = subprocess.run(
        [python, "-c", code, "snakemake", *names], capture_output=True, text=True
    )
    if result.returncode:
        return "not importable"
    snakemake, slurm, jobstep = result.stdout.split()
    return f"snakemake-executor-plugin-slurm {slurm} (jobstep {jobstep}, snakemake {snakemake})"


def header() -> str:
    nodes = _first_line(["sinfo", "-h", "-o", "%D nodes x %c CPUs, partition %P"])
    return "\n".join(
        [
            "# snakemake-executor-plugin-frozen benchmarks",
            "",
            f"- date: {datetime.now().astimezone().isoformat(timespec='seconds')}",
            f"- machine: {os.cpu_count()} CPUs ({_cpu_model()}), {_memory_gib()}, "
            f"{platform.system()} {platform.release()}",
            f"- SLURM: {_first_line(['sinfo', '-V'])}, {nodes}",
            f"- versions: Python {platform.python_version()}, "
            f"snakemake {importlib.metadata.version('snakemake')}, "
            f"snakemake-executor-plugin-frozen "
            f"{importlib.metadata.version('snakemake-executor-plugin-frozen')}; stock: "
            f"{_stock_versions(slurm_bench.Settings.stock_python)}; "
            f"{_tool_version(['tar', '--version'], 'GNU tar')}, "
            f"{_tool_version(['zstd', '--version'], 'zstd')}",
        ]
    )


def packing(runs: int) -> str:
    with tempfile.TemporaryDirectory(prefix="bench-pack-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        tree = snapshot_bench.build_tree(work / "tree")
        _progress(f"packing: built the synthetic tree in {time.perf_counter() - start:.1f} s")
        rows = [snapshot_bench.bench("synthetic 5k", tree, runs, work, tools=True)]
        _progress("packing: synthetic tree done")
        start = time.perf_counter()
        large = snapshot_bench.build_tree(work / "tree-50k", **snapshot_bench.LARGE)
        _progress(f"packing: built the 50k tree in {time.perf_counter() - start:.1f} s")
        rows.append(snapshot_bench.bench("synthetic 50k", large, runs, work, tools=True))
        _progress("packing: 50k tree done")
        profile = snapshot_bench.profile_pack(large, work)
        _progress("packing: 50k tree profiled")
        rows.append(snapshot_bench.bench("this repository", REPO, runs, work, tools=True))
        _progress("packing: this repository done")
    return "\n".join(
        [
            "## 1. Packing and extraction",
            "",
            f"Seconds are medians of {runs} runs (warm pack: of {3 * runs}); ratios are "
            "ours / theirs, below 1 ours is faster. Cold pack: empty store (select, hash, "
            "archive); warm pack: unchanged tree, same store (no content read). tar gets "
            "the same file list as the snapshot; files are in the page cache for all.",
            "",
            snapshot_bench.tools_tables(rows),
            "",
            "Targets for the 50k tree (issue 18): cold ≤ 1.2 x tar\\|zstd, warm ≤ 0.5 s, "
            "extract ≤ 1.0 x tar -I zstd -xf.",
            "",
            "### Where the 50k pack's time goes",
            "",
            profile,
        ]
    )


def workflow(settings: slurm_bench.Settings) -> str:
    runs = slurm_bench.run_all(settings, progress=_progress)
    return "\n".join(
        [
            "## 2. Workflow on SLURM: frozen against the stock plugin",
            "",
            f"benchmarks/workflow, {settings.n} independent short jobs, a fresh copy (its own "
            f"git repository) per run, stock and frozen runs alternating; medians of "
            f"{settings.runs} runs each. Ratio frozen / stock: below 1 frozen is faster. "
            "Fairness: see benchmarks/slurm_bench.py.",
            "",
            slurm_bench.table(runs, settings),
        ]
    )


def scale(settings: slurm_bench.Settings, variants: list[slurm_bench.Variant]) -> str:
    runs = slurm_bench.run_scale(settings, variants, progress=_progress)
    return "\n".join(
        [
            f"## 3. {settings.n} trivial jobs at once: job arrays and status queries",
            "",
            "One run per variant. sbatch calls and the busy span (first job start to last job "
            "end) come from `sacct -X --name <run id>`, an array counting as one call; status "
            "queries from each plugin's own count at the end of its log (blank when it logs "
            "none), per minute of wall time; peak RSS is the Snakemake process's own VmHWM "
            "(sampled every 0.5 s). sacct/squeue/scontrol calls: every call of the Snakemake "
            "process and its children, counted by a PATH wrapper (calls from inside jobs "
            "apart), per minute of wall time, and the shortest gap between two; end-noticed: "
            "when Snakemake learned of a job's end (ours: the run journal's `ended` record; "
            "stock: its `Finished jobid` line) minus sacct's End, over the run's jobs.",
            "",
            slurm_bench.scale_table(runs, settings),
        ]
    )


def bookkeeping() -> str:
    return "\n".join(
        [
            "## 4. Per-job bookkeeping at 10k and 100k simulated jobs (no SLURM)",
            "",
            "Each step and size in a subprocess of its own; see benchmarks/scale_bench.py.",
            "",
            scale_bench.run_all([10_000, 100_000], repeats=3, progress=_progress),
        ]
    )


def view(reps: int) -> str:
    return "\n".join(
        [
            "## 5. The job's view of its code, per job (no SLURM)",
            "",
            view_bench.run_all(["5k", "50k", "flat"], reps),
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack-runs", type=int, default=3)
    parser.add_argument("--slurm-runs", type=int, default=3)
    parser.add_argument("--n", type=int, default=20, help="jobs in the SLURM workflow")
    parser.add_argument("--jobs", type=int, default=20, help="snakemake --jobs")
    parser.add_argument("--skip-slurm", action="store_true", help="packing only")
    parser.add_argument(
        "--scale-jobs",
        type=int,
        default=50,
        metavar="N",
        help="jobs of the scale table, submitted at once (0: no scale table)",
    )
    names = [v.name for v in slurm_bench.SCALE_VARIANTS]
    parser.add_argument(
        "--scale-variants", nargs="+", choices=names, default=names, help="default: all"
    )
    parser.add_argument("--view-reps", type=int, default=30, help="runs of each view variant")
    parser.add_argument("--skip-view", action="store_true", help="no view table")
    args = parser.parse_args()
    if args.scale_jobs < 0:
        parser.error(f"--scale-jobs must be 0 or a positive number of jobs, not {args.scale_jobs}")
    start = time.perf_counter()
    print(header(), flush=True)
    print(flush=True)
    print(packing(args.pack_runs), flush=True)
    if not args.skip_slurm:
        settings = slurm_bench.Settings(runs=args.slurm_runs, n=args.n, jobs=args.jobs)
        print(flush=True)
        print(workflow(settings), flush=True)
    if not args.skip_slurm and args.scale_jobs:
        settings = slurm_bench.Settings(n=args.scale_jobs, jobs=args.scale_jobs)
        variants = [v for v in slurm_bench.SCALE_VARIANTS if v.name in args.scale_variants]
        print(flush=True)
        print(scale(settings, variants), flush=True)
    print(flush=True)
    print(bookkeeping(), flush=True)
    print(flush=True)
    if not args.skip_view:
        print(view(args.view_reps), flush=True)
        print(flush=True)
    print(f"(all benchmarks: {time.perf_counter() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
