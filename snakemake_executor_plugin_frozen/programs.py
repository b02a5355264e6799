"""The software a run's rules call, as the submit host sees it when the run starts.

``environment_record`` gives the manifest's ``programs`` and ``conda_envs`` (their shape:
``record/environment.py``): every distinct program at the head of a simple command of a
``shell:`` rule, resolved through ``PATH`` to its real path, with its size and sha256; and
every conda environment file a rule names, with its sha256 and the rules using it.

It is a record, not a guarantee: jobs find their programs on the node's ``PATH``, which may
differ, and a program that a shell variable or a ``{placeholder}`` names is not seen. It is
best effort: a command it cannot parse yields the programs read before the fault, an
unreadable file is recorded without its sha256, and it raises nothing. Its work is bounded:
each resolved file is hashed once, and files above ``HASH_LIMIT`` are recorded by size only.

The record is part of the manifest, written once, when a snapshot is first stored: a later
run with the same code reuses that snapshot and its manifest as they are, so the
environment shown for a snapshot is the one of the first run that stored it.

Pure logic and file reads: nothing here imports Snakemake.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

HASH_LIMIT = 200 * 1024 * 1024  # bytes

# Tokens made only of these end a simple command (";", "&&", "||", "|", "&", "(", ")", "\n").
_SEPARATORS = frozenset(";&|()\n")
_PUNCTUATION = "();<>|&\n"
_OPERATOR_CHARS = frozenset(_PUNCTUATION)
_REDIRECTS = frozenset("<>")
_WORD_START = frozenset(" \t\n;&|()")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\+?=")
# Words after which the command's program follows.
_LEADING_KEYWORDS = frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "{"})
# Prefixes that run the word after them (and their options).
_PREFIXES = frozenset({"exec", "env", "nohup", "time", "command"})
# Keywords and builtins: a simple command headed by one of them runs no program of its own.
_NOT_PROGRAMS = frozenset(
    {
        *("for", "select", "case", "esac", "in", "function", "done", "fi", "}", "[[", "]]"),
        *("cd", "export", "echo", "test", "[", "true", "false", "source", ".", ":", "set"),
        *("unset", "shift", "return", "exit", "local", "read", "printf", "eval", "trap"),
        *("wait", "alias", "declare", "typeset", "readonly", "pushd", "popd", "umask"),
        *("ulimit", "let", "break", "continue", "shopt", "type", "hash", "builtin"),
        *("getopts", "mapfile", "readarray"),
    }
)
# Characters of words the shell or Snakemake still expands: their program cannot be told.
_UNEXPANDED = frozenset("{$`")
_CONDA_SUFFIXES = (".yaml", ".yml")


def _without_comments(command: str) -> str:
    """``command`` without its comments and line continuations, as bash reads it: a ``#``
    starting a word outside quotes runs to the end of the line."""
    out: list[str] = []
    quote = ""
    i = 0
    while i < len(command):
        char = command[i]
        if char == "\\" and quote != "'" and i + 1 < len(command):
            pair = command[i : i + 2]
            out.append("" if pair == "\\\n" else pair)
            i += 2
            continue
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (not out or out[-1] in _WORD_START):
            end = command.find("\n", i)
            i = len(command) if end < 0 else end
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _tokens(command: str) -> Iterator[str]:
    lexer = shlex.shlex(_without_comments(command), posix=True, punctuation_chars=_PUNCTUATION)
    lexer.whitespace = " \t\r"  # a newline separates commands, as ";" does
    lexer.whitespace_split = True
    lexer.commenters = ""  # done by _without_comments, which knows where a word starts
    try:
        yield from lexer
    except ValueError:  # an unclosed quote: the words before it still count
        return


def _simple_commands(command: str) -> Iterator[list[str]]:
    words: list[str] = []
    for token in _tokens(command):
        if token and set(token) <= _SEPARATORS:
            if words:
                yield words
            words = []
        else:
            words.append(token)
    if words:
        yield words


def _is_redirection(word: str) -> bool:
    return bool(word) and set(word) <= _OPERATOR_CHARS and bool(set(word) & _REDIRECTS)


def _head(words: list[str]) -> str | None:
    """The program a simple command runs, if it runs one whose name is written out."""
    i = 0
    while i < len(words):
        word = words[i]
        if _is_redirection(word):
            i += 2  # the operator and its file
        elif word.isdigit() and i + 1 < len(words) and _is_redirection(words[i + 1]):
            i += 1  # the file descriptor of a redirection: "2>/dev/null cmd"
        elif _ASSIGNMENT.match(word) or word in _LEADING_KEYWORDS:
            i += 1
        elif word in _PREFIXES:
            i += 1
            while i < len(words) and words[i].startswith("-"):
                i += 1
        elif word in _NOT_PROGRAMS or set(word) & _UNEXPANDED:
            return None
        else:
            return word
    return None


def programs_in(command: str) -> list[str]:
    """The distinct programs at the head of the simple commands of a ``shell:`` command
    (Snakemake's text, placeholders not yet formatted), in order of appearance."""
    found: dict[str, None] = {}
    for words in _simple_commands(command):
        head = _head(words)
        if head:
            found.setdefault(head, None)
    return list(found)


class _Digests:
    """size and sha256 of files by real path, each read at most once."""

    def __init__(self) -> None:
        self.known: dict[str, tuple[int | None, str | None]] = {}

    def of(self, path: str) -> tuple[int | None, str | None]:
        if path not in self.known:
            self.known[path] = _size_and_sha256(path)
        return self.known[path]


def _size_and_sha256(path: str) -> tuple[int | None, str | None]:
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                return None, None
            if st.st_size > HASH_LIMIT:
                return st.st_size, None
            return st.st_size, hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None, None


def _resolve(name: str, digests: _Digests) -> dict:
    """``{name, path, size, sha256}`` of ``name`` as ``PATH`` finds it (all null if not)."""
    found = shutil.which(name)
    if found is None:
        return {"name": name, "path": None, "size": None, "sha256": None}
    path = os.path.realpath(found)
    size, sha256 = digests.of(path)
    return {"name": name, "path": path, "size": size, "sha256": sha256}


def conda_file(spec: object, basedir: str) -> Path | None:
    """The environment file of a rule's ``conda:`` directive (``rule.conda_env``), relative
    paths taken from the rule's Snakefile folder ``basedir``; None for a named environment,
    an environment folder, a function of the job, a pattern with wildcards, or a remote file."""
    if not isinstance(spec, str | os.PathLike):
        return None
    path = os.fspath(spec)
    if not isinstance(path, str) or not path.endswith(_CONDA_SUFFIXES):
        return None
    if "{" in path or "://" in path:
        return None
    if not os.path.isabs(path):
        if "://" in basedir:
            return None
        path = os.path.join(basedir, path)
    return Path(os.path.normpath(os.path.abspath(path)))


def _shown_path(path: Path, root: Path | None) -> str:
    """``path`` relative to the code root when inside it (as the manifest names files)."""
    if root is not None and path.is_relative_to(root):
        return path.relative_to(root).as_posix()
    return str(path)


def environment_record(
    shell_commands: Iterable[tuple[str, str]],
    conda_files: Iterable[tuple[str, Path]],
    *,
    root: Path | None = None,
) -> dict:
    """The manifest's ``programs`` and ``conda_envs``: from (rule name, ``shell:`` command)
    pairs and (rule name, conda environment file) pairs; conda file paths are given relative
    to ``root`` (the code root) when inside it."""
    digests = _Digests()
    names: dict[str, None] = {}
    for _, command in shell_commands:
        for name in programs_in(command):
            names.setdefault(name, None)
    programs = [_resolve(name, digests) for name in sorted(names)]
    rules_of: dict[Path, list[str]] = {}
    for rule, path in conda_files:
        users = rules_of.setdefault(Path(os.path.abspath(path)), [])
        if rule not in users:
            users.append(rule)
    conda_envs = [
        {"path": _shown_path(path, root), "sha256": digests.of(str(path))[1], "rules": rules}
        for path, rules in sorted(rules_of.items())
    ]
    return {"programs": programs, "conda_envs": conda_envs}
