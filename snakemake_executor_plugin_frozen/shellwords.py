"""Bash words for the batch script: every value quoted so that bash gives back exactly it.

Snakemake builds a spawned job's command line as text for a shell, but quotes its values for
Python: `format_cli_value` writes `repr(value)` (double quotes, in which bash expands `$(...)`
and backticks, whenever the value holds a `'`; `\\n` for a newline, which bash keeps as a
backslash and an `n`) and pastes values that merely start with a quote (`is_quoted`) without
any quoting at all (version 8 of the interface, Snakemake before 8.6, quotes no string at
all). In a batch script that is code execution on the node by a path or a wildcard value
(issue 8, item 5).

How the job's command is built instead (`bash_quoted_cli`, used by
`Executor.format_job_exec`): for the duration of our own call, Snakemake's two value
formatters (`format_cli_pos_arg`, `format_cli_value` in
`snakemake_interface_executor_plugins.utils`) are replaced by versions that give every value
as one bash word (`quote`). Every `format_cli_arg` call, wherever it is imported, looks these
two names up in that module's globals at call time, so each value of the command goes through
them: `--target-jobs`, `--wait-for-files`, `--allowed-rules`, `--config`, paths, prefixes.
What reaches the node is the value itself: the text Snakemake meant its receiving side to get
(for a value that "looks quoted" too: a file named `'x'` is data, not shell syntax). The only
text that expands on the node is what this plugin wrote as a `ShellWord` (`"$FROZEN_DIR/..."`).

Why this is safe while other threads run: the replacements are installed only while a lock is
held and restored in `finally`, so two submissions cannot interleave their save and restore
(which could leave a replacement installed for good); and the replacements act only for the
thread that installed them (a thread-local flag): any other thread that formats a command
line meanwhile (Snakemake's local executor) gets the original functions' results. A call
counter proves the replacements were used (`Formatting.calls`): if a future version of the
interface stops going through them, the executor refuses to submit instead of pasting
unquoted values.
"""

import contextlib
import io
import re
import threading
from collections import UserDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snakemake_interface_common.settings import SettingsEnumBase
from snakemake_interface_executor_plugins import utils as cli

# Never special to bash as a whole word in argument position (the only word we put in command
# position, the Python interpreter, is an absolute path or `python`, never `NAME=...`).
_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_ANSI_C = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


class ShellWord(str):
    """A bash word this plugin wrote itself (such as `"$FROZEN_DIR/Snakefile"`): put into the
    command as it is. Nothing else in the batch script expands on the node."""

    __slots__ = ()


class RefusedValue(ValueError):
    """A value that cannot reach the job's Snakemake intact."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"{reason}: {shown(value)}")
        self.value = value


def _bytes(char: str, value: str) -> bytes:
    try:
        # Bytes that are not UTF-8 (file names decoded with surrogateescape) are themselves.
        return char.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise RefusedValue(value, "a lone surrogate is neither text nor a byte") from None


def quote(value: str) -> str:
    """One bash word that expands to exactly `value`, whatever it holds.

    Printable text stays readable in single quotes; a value with a newline, another control
    character, an invisible or direction-changing character, or bytes that are not UTF-8 is
    written as `$'...'` with escapes (`\\n`, `\\xNN`), so that the script itself holds no
    control character and no byte that is not UTF-8. A NUL cannot be in a command line.
    """
    if "\0" in value:
        raise RefusedValue(value, "a NUL character cannot be passed on a command line")
    if _SAFE.fullmatch(value):
        return value
    if value.isprintable():
        return "'" + value.replace("'", "'\\''") + "'"
    escaped = []
    for char in value:
        if char in _ANSI_C:
            escaped.append(_ANSI_C[char])
        elif char.isprintable():
            escaped.append(char)
        else:
            escaped.extend(f"\\x{b:02x}" for b in _bytes(char, value))
    return "$'" + "".join(escaped) + "'"


_word = quote  # for the formatters below, whose `quote` parameter hides this function


def join(words: Sequence[str]) -> str:
    """Words quoted and joined: a command line bash splits back into exactly `words`."""
    return " ".join(quote(word) for word in words)


def visible(text: str) -> str:
    """`text` with each character that is not printable escaped as Python writes it
    (`\\n`, `\\x1b`, `\\u202e`; a byte that is not UTF-8 as `\\xNN`), and `\\` as `\\\\`: for
    the script's comment line and for messages, which must stay one line and unambiguous.
    """
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char.isprintable():
            out.append(char)
        elif "\udc80" <= char <= "\udcff":
            out.append(f"\\x{ord(char) - 0xDC00:02x}")
        else:
            out.append(ascii(char)[1:-1])
    return "".join(out)


def shown(value: str) -> str:
    """A value in a message: quoted, on one line."""
    return f"'{visible(value)}'"


# -- Snakemake's job arguments ---------------------------------------------------------------


def _refuse_option_like(text: str) -> None:
    # argparse on the node would read `-x...` as an option (`-R...` is --forcerun), not as the
    # value it follows.
    if text.startswith("-") and text != "-":
        raise RefusedValue(
            text,
            "a value starting with '-' would be read as an option by the job's Snakemake "
            "(name the file ./-... instead)",
        )


def _bash_format_cli_value(value: Any, quote: bool = False, base64_encode: bool = False) -> str:
    """`format_cli_value`'s meaning, bash-quoted: the word bash turns into the value."""
    del quote  # every value is quoted, whatever the caller asked
    _state.local.calls += 1
    if isinstance(value, ShellWord):
        return str(value)
    if isinstance(value, SettingsEnumBase):
        text = value.item_to_choice()
    elif isinstance(value, (str, Path)):
        text = str(value)
        if base64_encode:
            return _word(cli.encode_as_base64(text))
        _refuse_option_like(text)
    else:
        text = repr(value)
    return _word(text)


def _bash_format_cli_pos_arg(value: Any, quote: bool = True, base64_encode: bool = False) -> str:
    """`format_cli_pos_arg`'s meaning, bash-quoted."""
    _state.local.calls += 1
    if isinstance(value, (dict, UserDict)):
        # The original's item text (`key=value`, the value as its own format_cli_value writes
        # it) is what the receiving side parses; only the shell quoting around it changes.
        original_value = _state.saved[1]
        items = [f"{key}={original_value(item)}" for key, item in value.items()]
        if base64_encode:
            return cli.join_cli_args(cli.encode_as_base64(item) for item in items)
        return cli.join_cli_args(_word(item) for item in items)
    if cli.not_iterable(value):
        return _bash_format_cli_value(value, quote=quote, base64_encode=base64_encode)
    return cli.join_cli_args(
        _bash_format_cli_value(v, quote=quote, base64_encode=base64_encode) for v in value
    )


class _state:  # a namespace
    lock = threading.Lock()
    local = threading.local()
    saved: tuple[Any, Any] = (cli.format_cli_pos_arg, cli.format_cli_value)


def _dispatch_pos_arg(*args: Any, **kwargs: Any) -> str:
    if getattr(_state.local, "active", False):
        return _bash_format_cli_pos_arg(*args, **kwargs)
    return _state.saved[0](*args, **kwargs)


def _dispatch_value(*args: Any, **kwargs: Any) -> str:
    if getattr(_state.local, "active", False):
        return _bash_format_cli_value(*args, **kwargs)
    return _state.saved[1](*args, **kwargs)


@dataclass
class Formatting:
    calls: int = 0  # values formatted by the bash formatters within the block


@contextlib.contextmanager
def bash_quoted_cli() -> Iterator[Formatting]:
    """Within this block, in this thread, Snakemake's `format_cli_arg` quotes for bash.

    Yields a `Formatting` whose `calls`, after the block, counts the values that went through
    the bash formatters: 0 means that the interface no longer uses them (refuse the command).
    """
    result = Formatting()
    local = _state.local
    if getattr(local, "active", False):  # nested: already in effect for this thread
        start = local.calls
        try:
            yield result
        finally:
            result.calls = local.calls - start
        return
    with _state.lock:
        _state.saved = (cli.format_cli_pos_arg, cli.format_cli_value)
        local.calls = 0
        local.active = True
        cli.format_cli_pos_arg = _dispatch_pos_arg
        cli.format_cli_value = _dispatch_value
        try:
            yield result
        finally:
            cli.format_cli_pos_arg, cli.format_cli_value = _state.saved
            local.active = False
            result.calls = local.calls


# -- what the job's Snakemake makes of its arguments ------------------------------------------


def target_jobs_problem(specs: Sequence[Any]) -> str | None:
    """Why `--target-jobs` would not name these jobs on the node, or None.

    Snakemake's receiving side splits `rule:k=v,k=v` at every comma and strips quotes from
    both ends of each value, so a wildcard value with a comma or with a quote at either end
    names another job (or none): refuse those rather than run a different job.
    """
    from snakemake.target_jobs import parse_target_jobs_cli_args

    sent = [(s.rulename, {k: str(v) for k, v in s.wildcards_dict.items()}) for s in specs]
    try:
        received = parse_target_jobs_cli_args(cli.encode_target_jobs_cli_args(specs))
    except ValueError:
        received = []
    got = [(r.rulename, dict(r.wildcards_dict)) for r in received]
    if got == sent:
        return None
    for _, wildcards in sent:
        for name, value in wildcards.items():
            if "," in value or value[:1] in ("'", '"') or value[-1:] in ("'", '"'):
                return (
                    f"the wildcard value {name}={shown(value)} cannot be passed to the job "
                    "(Snakemake's --target-jobs splits values at ',' and strips quotes at their "
                    "ends, so the job would run as another one)"
                )
    return f"--target-jobs would name other jobs on the node: {visible(repr(got))}"


def wait_files_problem(files: Sequence[Any]) -> str | None:
    """Why a `--wait-for-files-file` (Snakemake writes one for more than 20 files) would not
    give back these paths, or None: the job's Snakemake reads it line by line in text mode
    (`\\r` also ends a line) and strips each line."""
    for path in map(str, files):
        if [line.strip() for line in io.StringIO(path + "\n", newline=None)] != [path]:
            return (
                f"the path {shown(path)} cannot be passed to the job in Snakemake's "
                "wait-for-files list (a line break or white space at an end: the job would "
                "wait for other files)"
            )
    return None


def describe(rule: str, wildcards: Mapping[str, str], group: bool = False) -> str:
    """`rule make (v='a b')` for messages: one line, control characters escaped."""
    if group:
        return f"group {rule}"
    values = ", ".join(f"{k}={shown(v)}" for k, v in wildcards.items())
    return f"rule {rule}" + (f" ({values})" if values else "")
