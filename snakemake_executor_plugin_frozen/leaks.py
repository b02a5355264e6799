"""Find code a `shell:` command reaches by a workdir-relative path: it runs from the live tree,
whatever the snapshot holds. Pure: no I/O beyond path arithmetic."""

import os
import re
from collections.abc import Iterable
from pathlib import Path

# Words that can be file paths; `{...}` placeholders and `$VARS` are not candidates because
# they are exactly the fix ({workflow.basedir}, $FROZEN_DIR).
_WORD = re.compile(r"(?<![\w{$/.-])([\w.-]+(?:/[\w.-]+)*)")


def shell_leaks(
    shellcmd: str, workdir: Path, code_root: Path, snapshot_files: Iterable[str]
) -> list[str]:
    """The words of `shellcmd` that name, relative to `workdir`, a file in the snapshot."""
    files = set(snapshot_files)
    leaks = []
    for word in dict.fromkeys(_WORD.findall(shellcmd)):
        candidate = Path(os.path.normpath(workdir / word))
        try:
            relative = candidate.relative_to(code_root).as_posix()
        except ValueError:
            continue
        if relative in files:
            leaks.append(word)
    return leaks


def leak_warnings(
    rule: str, shellcmd: str, workdir: Path, code_root: Path, snapshot_files: Iterable[str]
) -> list[str]:
    """What to tell the user of each leak of rule ``rule``'s ``shell:`` command."""
    return [
        f"rule {rule}: its shell command names {path} relative to the working directory, so "
        "the job would use the LIVE file, not the snapshot's (only reads made by Python are "
        'served from the snapshot). Write "{workflow.basedir}/..." or "$FROZEN_DIR/..." '
        "instead."
        for path in shell_leaks(shellcmd, workdir, code_root, snapshot_files)
    ]
