"""Names Snakemake jobs get in SLURM and in the log folder: the ``--comment`` and the
folder for a job's wildcards, as ``snakemake-executor-plugin-slurm`` 2.x writes them.
"""

import hashlib
from collections.abc import Mapping

# Long wildcard values would exceed the 255-byte file name limit of the log directory.
_MAX_WILDCARDS_DIR = 200


def _joined_values(wildcards: Mapping[str, str]) -> str:
    return "_".join(str(v) for v in wildcards.values()).replace("/", "_")


def wildcards_dir(wildcards: Mapping[str, str]) -> str:
    """Log directory part for a job's wildcards: values joined by ``_``, ``/`` -> ``_``.

    ``%`` and ``\\`` also become ``_`` (SLURM patterns), and overlong results are shortened
    with a hash suffix so the directory name stays valid and unique.
    """
    joined = _joined_values(wildcards).replace("%", "_").replace("\\", "_")
    raw = joined.encode(errors="surrogateescape")  # file names need not be UTF-8
    if len(raw) <= _MAX_WILDCARDS_DIR:
        return joined
    digest = hashlib.sha256(raw).hexdigest()[:16]
    head = raw[: _MAX_WILDCARDS_DIR - 17].decode(errors="ignore")
    return f"{head}_{digest}"


def wildcards_comment(rule: str, wildcards: Mapping[str, str]) -> str:
    """``--comment`` as the slurm plugin writes it: ``rule_<rule>[_wildcards_<values>]``."""
    values = _joined_values(wildcards)
    return f"rule_{rule}_wildcards_{values}" if values else f"rule_{rule}"
