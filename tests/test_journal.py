"""The journal: records appended whole by concurrent writers, read back past a torn line."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import stat
import time
from pathlib import Path

import pytest

from snakemake_executor_plugin_frozen import journal

RUN = "6f0c1f5e-0000-4000-8000-000000000001"


def _submitted(job: int, run: str = RUN, **extra: object) -> dict:
    record = journal.submitted(
        run=run,
        rule="count",
        wildcards={"sample": f"s{job}"},
        outputs=[f"results/s{job}.tsv"],
        job=job,
        slurm_id=str(1000 + job),
        snapshot="ab" * 32,
        log=Path(f"/w/.snakemake/frozen_logs/rule_count/s{job}/{1000 + job}.log"),
        workdir=Path("/w"),
        mode="freeze",
    )
    return record | extra


def test_records_are_sorted_json_lines_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "journal.jsonl"
    records = [
        journal.run_started(
            run=RUN, snapshot=None, code_root=Path("/c"), workdir=Path("/w"), argv=["snakemake"]
        ),
        _submitted(1),
        journal.ended(run=RUN, slurm_id="1001", outcome="success", state="COMPLETED", node="n1"),
    ]
    journal.append(path, records)
    lines = path.read_bytes().splitlines()
    assert len(lines) == 3
    for line, record in zip(lines, records, strict=True):
        assert list(json.loads(line)) == sorted(record)
        assert json.loads(line) == record
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert journal.read(path).records == records
    assert records[1]["time"].endswith("Z")


def test_ended_refuses_an_unknown_outcome() -> None:
    with pytest.raises(ValueError, match="outcome"):
        journal.ended(run=RUN, slurm_id="1", outcome="COMPLETED", state="COMPLETED")


def test_a_torn_last_line_is_skipped_and_the_next_append_starts_a_new_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.jsonl"
    journal.append(path, [_submitted(1)])
    with open(path, "ab") as f:
        f.write(journal.encode(_submitted(2))[:40])  # a crash in the middle of a write
    torn = journal.read(path)
    assert [r["job"] for r in torn.records] == [1]
    assert torn.skipped == 1
    journal.append(path, [_submitted(3), _submitted(4)])
    after = journal.read(path)
    assert [r["job"] for r in after.records] == [1, 3, 4]
    assert after.skipped == 1


def test_garbage_and_foreign_json_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'[1, 2]\n{"event": "other", "run": "x"}\n\xff\xfe\n\n{"event": "run"}\n')
    journal.append(path, [_submitted(1)])
    contents = journal.read(path)
    assert [r["job"] for r in contents.records] == [1]
    assert contents.skipped == 4


def test_objects_that_are_no_records_are_skipped_in_a_well_formed_file(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal.append(path, [_submitted(1)])
    with open(path, "ab") as f:
        f.write(b'{"event": "other", "run": "x"}\n{"event": "run", "run": 7}\n')
    journal.append(path, [_submitted(2)])
    contents = journal.read(path)
    assert ([r["job"] for r in contents.records], contents.skipped) == ([1, 2], 2)


def test_a_missing_journal_reads_as_empty(tmp_path: Path) -> None:
    contents = journal.read(tmp_path / "none.jsonl")
    assert (contents.records, contents.skipped) == ([], 0)


def test_non_utf8_file_names_survive_the_round_trip(tmp_path: Path) -> None:
    name = os.fsdecode(b"results/caf\xe9.tsv")  # a Latin-1 file name: a surrogate escape
    path = tmp_path / "journal.jsonl"
    journal.append(path, [_submitted(1, outputs=[name])])
    assert journal.read(path).records[0]["outputs"] == [name]
    assert b"caf\xe9.tsv" in path.read_bytes()  # the file system's own bytes


def _writer(path: str, writer: int, count: int, barrier) -> None:
    barrier.wait()
    for start in range(0, count, 10):  # batches, as the executor writes per status round
        batch = [
            _submitted(i, run=f"writer-{writer}", padding="x" * (i % 300))
            for i in range(start, min(start + 10, count))
        ]
        journal.append(Path(path), batch)


def test_two_concurrent_writers_lose_and_garble_nothing(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    writers = [context.Process(target=_writer, args=(str(path), w, 500, barrier)) for w in (1, 2)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
        assert process.exitcode == 0
    contents = journal.read(path)
    assert contents.skipped == 0
    for w in (1, 2):
        jobs = [r["job"] for r in contents.records if r["run"] == f"writer-{w}"]
        assert jobs == list(range(500))  # every record, each writer's in its order
    runs = [r["run"] for r in contents.records]
    assert runs != sorted(runs)  # they really interleaved


def test_rewrite_keeps_what_is_asked_and_appends_after_it_land(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal.append(path, [_submitted(i, run=f"r{i % 2}") for i in range(6)])
    with open(path, "ab") as f:
        f.write(b"{torn")
    removed = journal.rewrite(path, lambda record: record["run"] == "r1")
    assert removed == 4  # three records of r0 and the torn line
    journal.append(path, [_submitted(9, run="r1")])
    assert [r["job"] for r in journal.read(path).records] == [1, 3, 5, 9]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_append_waiting_for_the_lock_of_a_replaced_file_goes_to_the_new_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.jsonl"
    journal.append(path, [_submitted(1)])
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    with open(path, "rb+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as rewrite holds it
        writer = context.Process(target=_writer, args=(str(path), 7, 10, barrier))
        writer.start()
        barrier.wait()
        time.sleep(1)  # the writer opens the old file and waits for its lock
        replacement = tmp_path / "new.jsonl"
        replacement.write_bytes(journal.encode(_submitted(2)))
        os.replace(replacement, path)
    writer.join(60)
    assert writer.exitcode == 0
    jobs = [(r["run"], r["job"]) for r in journal.read(path).records]
    assert jobs == [(RUN, 2)] + [("writer-7", i) for i in range(10)]
