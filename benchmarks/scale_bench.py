"""The executor's per-job bookkeeping at 10,000 and 100,000 jobs, without SLURM.

    .venv/bin/python benchmarks/scale_bench.py [--sizes 10000 100000] [--repeats 3]

Three steps whose cost grows with the number of jobs in a run:

- ``parse sacct``: ``slurm.status.parse_sacct`` on an n-line answer of
  ``sacct -X --parsable2 --noheader --format=JobIdRaw,State,ExitCode``, as for a run of n
  jobs: a third of them array tasks (``123_7``), the states a long run shows (mostly
  COMPLETED and RUNNING, some PENDING, FAILED, ``CANCELLED by 0``, TIMEOUT).
- ``render + sbatch argv``: per job the batch script (``jobscript.render``, with the node
  helper's lines and a Snakemake command line as long as a real one) and the ``sbatch``
  command (``slurm.submit.build_sbatch_argv``); nothing is written to disk and no text
  is kept, as the executor keeps none.
- ``MissingJobs.update``: five status polls over n active jobs, a tenth of which sacct
  does not know yet (they are tracked as missing); per item is per job and poll.

Each (step, n) runs in a subprocess of its own, so that one size's allocations do not
inflate the next one's. Seconds are the fastest of ``--repeats`` runs without tracing;
"peak MB" is the step's own allocation peak above what its input holds (``tracemalloc``,
in one more, traced run); "max RSS MB" is the subprocess's peak resident size (VmHWM)
before tracing, interpreter, imports and input included. The growth
column is the 100k value / the 10k value: 10 means linear.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from snakemake_executor_plugin_frozen import jobscript
from snakemake_executor_plugin_frozen.slurm import status, submit

HERE = Path(__file__).resolve().parent
STEPS = ("parse sacct", "render + sbatch argv", "MissingJobs.update")
POLLS = 5  # status queries per MissingJobs measurement
RUN_ID = "0b5e7f9c-3f6e-4c51-9d43-0a7d6c1f2e88"
SNAPSHOT = "0fa21659f4c4d98ea7d49658ea5db6f4266d107f60a9acbf545331c339cf075f"
WORKDIR = Path("/scratch/project/workflow")
# sacct rows of a long run: state and exit code, with their share out of 20.
_STATES = (
    [("COMPLETED", "0:0")] * 12
    + [("RUNNING", "0:0")] * 4
    + [("PENDING", "0:0"), ("FAILED", "1:0"), ("CANCELLED by 0", "0:15"), ("TIMEOUT", "0:0")]
)


# -- inputs: the only places that know the interfaces' shapes -------------------------------


def job_ids(n: int) -> list[str]:
    """n SLURM job ids: two thirds plain jobs, one third tasks of arrays of 1000."""
    plain = [str(1_000_000 + i) for i in range(n - n // 3)]
    tasks = [f"{5_000_000 + i // 1000}_{i % 1000}" for i in range(n // 3)]
    return plain + tasks


def sacct_answer(ids: list[str]) -> str:
    """What ``sacct -X --parsable2 --noheader --format=JobIdRaw,State,ExitCode`` prints."""
    rows = []
    for i, job_id in enumerate(ids):
        state, exit_code = _STATES[i % len(_STATES)]
        rows.append(f"{job_id}|{state}|{exit_code}")
    return "\n".join(rows) + "\n"


def frozen_entry() -> jobscript.FrozenEntry:
    return jobscript.FrozenEntry(
        python="/opt/venvs/snakemake/bin/python",
        archive=WORKDIR / ".snakemake/frozen_logs/rule_work/code-0fa21659f4c4.tar.zst",
        archive_sha256="fda22cd27db4df94f8a226e15da431cf496e11aa0ffbdad92413877ca473c9d6",
        snapshot_id=SNAPSHOT,
        code_root=WORKDIR,
        prefix="",
        scratch="{LOCAL_SCRATCH}/frozen",
        keep_extracted=False,
    )


def job_command(i: int) -> str:
    """A Snakemake job command as long as the executor's (about 1.3 kB)."""
    return (
        "FROZEN_REPORT_READS=1 /opt/venvs/snakemake/bin/python -P -m snakemake "
        f'--snakefile "$FROZEN_DIR/Snakefile" --target-jobs work:sample=s{i} '
        "--allowed-rules work --cores all --attempt 1 --force-use-threads --wait-for-files "
        f"{WORKDIR}/.snakemake/tmp.cvl7xqoa --force --target-files-omit-workdir-adjustment "
        "--max-inventory-time 0 --retries 0 --nocolor --no-hooks --nolock --ignore-incomplete "
        "--rerun-triggers code software-env input params mtime --conda-frontend conda "
        "--shared-fs-usage storage-local-copies sources source-cache software-deployment "
        "persistence input-output software-deployment-cache --latency-wait 5 --scheduler ilp "
        "--local-storage-prefix base64//LnNuYWtlbWFrZS9zdG9yYWdl --scheduler-solver-path "
        "/opt/venvs/snakemake/bin --default-resources base64//dG1wZGlyPXN5c3RlbV90bXBkaXI= "
        '--runtime-source-cache-path "$FROZEN_JOB_DIR/source-cache" --mode remote'
    )


def render_and_build(i: int, entry: jobscript.FrozenEntry) -> int:
    """One job's batch script and sbatch argv, as the executor makes them; their size."""
    job_dir = WORKDIR / ".snakemake/frozen_logs/rule_work" / f"s{i}"
    label = f"rule work (rule_work_wildcards_s{i})"
    text = jobscript.render(f"{label}, run {RUN_ID}, snapshot {SNAPSHOT}", job_command(i), entry)
    spec = submit.JobSpec(
        job_label=label,
        job_name=RUN_ID,
        comment=f"rule_work_wildcards_s{i}",
        log_path=job_dir / "%j.log",
        workdir=WORKDIR,
        script=job_dir / f"job-{RUN_ID[:8]}-{i}.sh",
        resources={"mem_mb": 100, "runtime": 5, "slurm_partition": "debug", "tmpdir": "/tmp"},
        threads=1,
    )
    argv, _ = submit.build_sbatch_argv(spec, submit.SubmitSettings())
    return len(text) + len(argv)


def missing_polls(ids: list[str], states: dict[str, status.JobState]) -> None:
    tracker = status.MissingJobs()
    for _ in range(POLLS):
        tracker.update(ids, states)


# -- one step in this process ---------------------------------------------------------------


def prepare(step: str, n: int) -> tuple[Callable[[], object], int]:
    """The step as a call without arguments, and the items it handles."""
    ids = job_ids(n)
    if step == "parse sacct":
        answer = sacct_answer(ids)
        return lambda: status.parse_sacct(answer), n
    if step == "render + sbatch argv":
        entry = frozen_entry()
        return lambda: sum(render_and_build(i, entry) for i in range(n)), n
    # A tenth of the jobs is not in sacct's answer yet.
    known = status.parse_sacct(sacct_answer([j for k, j in enumerate(ids) if k % 10]))
    return lambda: missing_polls(ids, known), n * POLLS


def peak_resident_mb() -> float:
    """This process's VmHWM. Not ru_maxrss: Linux carries the parent's peak into it."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (this benchmark needs Linux)")


def measure(step: str, n: int, repeats: int) -> dict[str, float]:
    call, items = prepare(step, n)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    rss_mb = peak_resident_mb()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    call()
    peak = tracemalloc.get_traced_memory()[1] - baseline
    tracemalloc.stop()
    return {"seconds": best, "items": items, "peak_mb": peak / 1e6, "rss_mb": rss_mb}


# -- the table ------------------------------------------------------------------------------


def run_child(step: str, n: int, repeats: int) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", step, str(n), "--repeats", str(repeats)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{step} with n={n} failed:\n{done.stderr}")
    return json.loads(done.stdout)


def growth(rows: dict[int, dict[str, float]], sizes: list[int], key: str) -> str:
    small, large = rows[sizes[0]][key], rows[sizes[-1]][key]
    return f"{large / small:.1f}" if small > 0 else "—"


def table(results: dict[str, dict[int, dict[str, float]]], sizes: list[int]) -> str:
    ratio = f" {sizes[-1]:,}/{sizes[0]:,}" if len(sizes) > 1 else ""
    out = [
        f"| step | n | seconds | per item µs | peak MB | max RSS MB | growth{ratio}: time, peak |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for step, rows in results.items():
        for n in sizes:
            r = rows[n]
            grown = ""
            if n == sizes[-1] and len(sizes) > 1:
                grown = f"{growth(rows, sizes, 'seconds')}, {growth(rows, sizes, 'peak_mb')}"
            out.append(
                f"| {step} | {n:,} | {r['seconds']:.3f} | {1e6 * r['seconds'] / r['items']:.1f} "
                f"| {r['peak_mb']:.1f} | {r['rss_mb']:.0f} | {grown} |"
            )
    note = "Items: jobs (MissingJobs: jobs x polls)."
    if len(sizes) > 1:
        note = f"Linear growth is {sizes[-1] / sizes[0]:g}. {note}"
    return "\n".join([*out, "", note])


def run_all(sizes: list[int], repeats: int, progress: Callable[[str], None]) -> str:
    results: dict[str, dict[int, dict[str, float]]] = {step: {} for step in STEPS}
    for step in STEPS:
        for n in sizes:
            results[step][n] = run_child(step, n, repeats)
            progress(f"scale bench: {step}, n={n:,}: {results[step][n]['seconds']:.2f} s")
    return table(results, sizes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per step, best kept")
    parser.add_argument("--child", nargs=2, metavar=("STEP", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        step, n = args.child
        if step not in STEPS:
            parser.error(f"unknown step {step!r}; one of {', '.join(STEPS)}")
        print(json.dumps(measure(step, int(n), args.repeats)))
        return 0
    if any(n < 1 for n in args.sizes) or args.repeats < 1:
        parser.error("--sizes and --repeats must be positive integers")
    sizes = sorted(args.sizes)
    print(run_all(sizes, args.repeats, lambda text: print(text, file=sys.stderr, flush=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
