"""Which view each job ran in, as its log says, and the run's one summary of the nodes that
could not give the mount view (`--frozen-view auto` then freezes only Python's reads there).

The node helper's `run` writes one line near the top of the job's log:
`frozen: view: mount (...)` or `frozen: view: python (the mount view is unavailable on
NODE: REASON; ...)`. The log lies on the shared file system; its head is read once, when
the job has ended.
"""

import re
from collections import defaultdict
from pathlib import Path

_HEAD_BYTES = 64 * 1024
_LINE = re.compile(rb"^frozen: view: (mount|python)\b(.*)$", re.MULTILINE)
_UNAVAILABLE = re.compile(r"the mount view is unavailable on (\S+): (.*?); only Python")


def job_view(log: Path) -> tuple[str, str]:
    """("mount" | "python" | "", the rest of the line) from the head of a job's log; ("",
    "") when the log says nothing of a view (another mode, or a job that never started)."""
    try:
        with open(log, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError:
        return "", ""
    found = _LINE.search(head)
    if found is None:
        return "", ""
    return found[1].decode(), found[2].decode("utf-8", "replace").strip()


class ViewReport:
    """The nodes where jobs fell back to the Python-level freeze, by reason."""

    def __init__(self) -> None:
        self.fallbacks: dict[str, set[str]] = defaultdict(set)
        self.jobs = 0

    def add(self, view: str, detail: str) -> None:
        if view != "python":
            return
        found = _UNAVAILABLE.search(detail)
        if found is None:  # --frozen-view python: asked for, nothing to report
            return
        self.jobs += 1
        self.fallbacks[found[2]].add(found[1])

    def summary(self) -> list[str]:
        return [
            f"frozen: {self.jobs} job(s) ran without the mount view, on "
            f"{', '.join(sorted(nodes))}: {reason}. There only Python's open() and imports "
            "read the snapshot; other programs (bash, awk, R, ...) read the LIVE files. "
            "--frozen-view mount makes this a job error instead."
            for reason, nodes in sorted(self.fallbacks.items())
        ]
