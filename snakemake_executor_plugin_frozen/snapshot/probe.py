"""What the engine asks the filesystem of one file or folder, below every other layer: the
stat key of a file's content version (the entries, the caches and the store use it) and
the cache directory tag (the store writes one, the selection skips every folder that holds
one). It imports nothing of the package, so each of those may import it.
"""

from __future__ import annotations

import os

StatKey = tuple[int, int, int, int]


def stat_key(st: os.stat_result) -> StatKey:
    """What identifies one version of a file's content without reading it."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


# The cache directory tag convention (tar --exclude-caches, borg, restic): the store writes
# one and the selection skips every folder that holds one.
CACHEDIR_TAG = "CACHEDIR.TAG"
CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"


def holds_cache_tag(folder: str) -> bool:
    """``folder`` holds a CACHEDIR.TAG that starts with the signature (else it is no tag)."""
    tag = os.path.join(folder, CACHEDIR_TAG)
    # access() first: most folders hold none, and isfile() raises and catches for them.
    # isfile(): a pipe of that name would block the open.
    if not os.access(tag, os.F_OK) or not os.path.isfile(tag):
        return False
    with open(tag, "rb") as f:
        return f.read(len(CACHEDIR_SIGNATURE)) == CACHEDIR_SIGNATURE
