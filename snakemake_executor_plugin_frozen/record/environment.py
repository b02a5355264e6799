"""The environment record of a manifest, beyond the Python packages every manifest holds.

Expected shape (best effort, written by the executor at submission; absent in older
manifests and in ``snakemake-frozen pack``'s):

- ``"programs"``: ``[{"name": "bwa", "path": "/usr/bin/bwa", "size": 123, "sha256": "..."}]``,
  one per distinct program at the head of a ``shell:`` command, ``path`` its real path
  (``path``, ``size`` and ``sha256`` null when it was not found; ``sha256`` alone null for a
  file too large to hash or unreadable);
- ``"conda_envs"``: ``[{"path": "envs/align.yaml", "sha256": "...", "rules": ["align"]}]``,
  ``path`` relative to the code root when inside it (``sha256`` null when unreadable).

``ProgramRecord`` and ``CondaEnvRecord`` (``snapshot/manifest.py``) read them;
``programs.environment_record`` makes them; a snapshot already stored keeps the record of
the run that first stored it.

``show`` prints them and ``diff`` compares them, with the Python and Snakemake versions and
the installed distributions, whenever both sides record them.
"""

from __future__ import annotations

from dataclasses import dataclass

from snakemake_executor_plugin_frozen.snapshot.manifest import EnvironmentRecord, ProgramRecord


@dataclass(frozen=True)
class Change:
    what: str  # "python", "snakemake", "distribution", "program", "conda env"
    name: str
    a: str | None  # None: absent on that side
    b: str | None


def _program_text(program: ProgramRecord) -> str:
    if not program.path:
        return "not found"
    if program.sha256:
        return f"{program.path} {program.sha256[:12]}"
    if program.size is not None:
        return f"{program.path} ({program.size} bytes, not hashed)"
    return f"{program.path} (unreadable)"


def programs(env: EnvironmentRecord) -> dict[str, str]:
    """name -> "path sha256[:12]" (or "not found", or the size of a file not hashed)."""
    return {program.name: _program_text(program) for program in env.programs or ()}


def conda_envs(env: EnvironmentRecord) -> dict[str, str]:
    """path -> sha256[:12] (or "unreadable")."""
    return {e.path: (e.sha256 or "unreadable")[:12] for e in env.conda_envs or ()}


def _compare(what: str, a: dict[str, str], b: dict[str, str]) -> list[Change]:
    return [
        Change(what, name, a.get(name), b.get(name))
        for name in sorted(a.keys() | b.keys())
        if a.get(name) != b.get(name)
    ]


def _versions(env: EnvironmentRecord) -> dict[str, dict[str, str]]:
    """Each comparable section of ``env``, as name -> version; a section the manifest
    does not record is missing (so it is not compared)."""
    sections: dict[str, dict[str, str]] = {}
    if env.python is not None:
        sections["python"] = {"python": str(env.python.version)}
    if env.snakemake is not None:
        sections["snakemake"] = {"snakemake": env.snakemake}
    if env.distributions is not None:
        sections["distribution"] = dict(env.distributions)
    if env.programs is not None:
        sections["program"] = programs(env)
    if env.conda_envs is not None:
        sections["conda env"] = conda_envs(env)
    return sections


def compare(a: EnvironmentRecord, b: EnvironmentRecord) -> list[Change]:
    """What differs between the environments two manifests record, section by section."""
    left, right = _versions(a), _versions(b)
    changes: list[Change] = []
    for what in left.keys() & right.keys():
        changes += _compare(what, left[what], right[what])
    order = ["python", "snakemake", "program", "conda env", "distribution"]
    return sorted(changes, key=lambda c: (order.index(c.what), c.name))
