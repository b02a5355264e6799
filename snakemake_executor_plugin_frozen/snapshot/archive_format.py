"""What the archive's writer (``archive_write``) and its reader (``archive``) share: the
manifest member's name, the deepest tree, the member types, the zstd module.
"""

from __future__ import annotations

MANIFEST_NAME = ".frozen/manifest.json"
# Members deeper than this, or whose path in the destination would reach PATH_MAX (or with a
# name beyond NAME_MAX), are refused: the writer packs no such tree, and the kernel could not
# name it in one path.
MAX_DEPTH = 256
PATH_MAX = 4096
NAME_MAX = 255
REGTYPE, SYMTYPE = b"0", b"2"
FILE_TYPES = (REGTYPE, b"\0")  # a regular file: REGTYPE, and AREGTYPE of old archives


def _zstd():
    try:
        from compression import zstd  # Python >= 3.14
    except ImportError:
        from backports import zstd
    return zstd


def shortened(name: str) -> str:
    """A member's name for a message: a very long one is cut in its middle."""
    return name if len(name) <= 200 else f"{name[:100]}...{name[-100:]}"
