"""The snapshot engine: select a workflow's code, pack it into one content-addressed
``tar.zst`` with a provenance manifest, and extract it safely on the node.

It never imports Snakemake, and importing it stays cheap (``pathspec``, ``tarfile``, zstd
and ``importlib.metadata`` are imported when first needed).
"""

from .archive import read_manifest
from .extraction import extract
from .manifest import Manifest
from .model import PackResult, SelectionSettings, SnapshotError
from .pack import pack

__all__ = [
    "Manifest",
    "PackResult",
    "SelectionSettings",
    "SnapshotError",
    "extract",
    "pack",
    "read_manifest",
]
