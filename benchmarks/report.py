"""Every benchmark in one go, as markdown tables: what ``benchmarks/run`` prints.

    .venv/bin/python benchmarks/report.py [--pack-runs 3] [--slurm-runs 3] [--n 20]

1. Packing (``snapshot_bench.py``): the synthetic ~5k-file / 40 MB tree and this repository;
   our cold and warm pack against ``tar -c -T list``, ``zstd -3 -T0`` on that tar file and
   ``tar -c | zstd -3 -T0``; then extraction, ``snapshot.extract`` against
   ``tar -I zstd -xf`` of the same archive.
2. The same workflow on the local SLURM cluster with the stock plugin and with ours
   (``slurm_bench.py``, whose docstring says how the comparison is kept fair).

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

import slurm_bench
import snapshot_bench

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack-runs", type=int, default=3)
    parser.add_argument("--slurm-runs", type=int, default=3)
    parser.add_argument("--n", type=int, default=20, help="jobs in the SLURM workflow")
    parser.add_argument("--jobs", type=int, default=20, help="snakemake --jobs")
    parser.add_argument("--skip-slurm", action="store_true", help="packing only")
    args = parser.parse_args()
    start = time.perf_counter()
    print(header(), flush=True)
    print(flush=True)
    print(packing(args.pack_runs), flush=True)
    if not args.skip_slurm:
        settings = slurm_bench.Settings(runs=args.slurm_runs, n=args.n, jobs=args.jobs)
        print(flush=True)
        print(workflow(settings), flush=True)
    print(flush=True)
    print(f"(all benchmarks: {time.perf_counter() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
