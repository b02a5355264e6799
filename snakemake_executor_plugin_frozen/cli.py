"""``snakemake-frozen``: the snapshot engine and the record on the command line.

``snakemake-frozen pack`` is the archive-only documentation mode: it snapshots any folder
into the content-addressed store exactly as the executor does, without running anything.
``list``, ``show``, ``which``, ``diff``, ``restore``, ``reproduce``, ``verify`` and ``gc`` read
a working directory's store and journal back (their logic is in ``record/``; this is only
argparse).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import TextIO

from snakemake_executor_plugin_frozen.record import (
    diffing,
    gc,
    listing,
    reproduce,
    restore,
    show,
    verify,
    which,
)
from snakemake_executor_plugin_frozen.record.errors import RecordError
from snakemake_executor_plugin_frozen.record.layout import Layout
from snakemake_executor_plugin_frozen.record.snapshots import (
    SnapshotStore,
    open_snapshot,
)
from snakemake_executor_plugin_frozen.record.table import size
from snakemake_executor_plugin_frozen.record.which import Finder
from snakemake_executor_plugin_frozen.shellwords import visible
from snakemake_executor_plugin_frozen.snapshot import SelectionSettings, SnapshotError, pack
from snakemake_executor_plugin_frozen.snapshot.git import try_git

PROG = "snakemake-frozen"
DEFAULTS = SelectionSettings()


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Content-addressed snapshots of a workflow's code (snakemake-executor-"
        "plugin-frozen).",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    pack = commands.add_parser(
        "pack",
        help="snapshot a folder into the store (archive-only documentation mode)",
        description="Select ROOT's code (git-aware, see the plugin's docs), pack it into "
        "<store>/<id>.tar.zst with a manifest <store>/<id>.json, and print what was stored. "
        "An id already stored is not written again. Options taking several values swallow "
        "the words after them: give ROOT first, or end the options with --.",
    )
    pack.add_argument(
        "root",
        nargs="?",
        type=Path,
        metavar="ROOT",
        help="the code root (default: the git top level of the current folder, else the "
        "current folder)",
    )
    pack.add_argument(
        "--store",
        type=Path,
        metavar="DIR",
        help="the snapshot store (default: ROOT/.snakemake/frozen/snapshots)",
    )
    pack.add_argument(
        "--exclude",
        nargs="+",
        action="extend",
        default=[],
        metavar="PATTERN",
        help="gitignore-style patterns to leave out, like lines of a .frozenignore file",
    )
    pack.add_argument(
        "--exclude-folders",
        nargs="*",
        action="extend",
        metavar="NAME",
        help="folder names never packed, at any depth; replaces the default "
        f"({' '.join(DEFAULTS.exclude_folders)})",
    )
    pack.add_argument(
        "--code-suffixes",
        nargs="*",
        action="extend",
        metavar="SUFFIX",
        help="suffixes of code files added back although gitignored; replaces the default "
        f"({' '.join(DEFAULTS.code_suffixes)}); files named Snakefile always count",
    )
    pack.add_argument(
        "--allow-secrets",
        nargs="+",
        action="extend",
        default=[],
        metavar="PATTERN",
        help="gitignore-style patterns of files that look like credentials (.env, *.pem, "
        "id_rsa, *token*, .ssh/, ...) to pack anyway; by default they are left out",
    )
    size = pack.add_mutually_exclusive_group()
    size.add_argument(
        "--max-size-mb",
        type=float,
        metavar="N",
        help=f"refuse when the selected files exceed N MB (default {DEFAULTS.max_size_mb:g})",
    )
    size.add_argument(
        "--skip-size-check", action="store_true", help="pack whatever the selected size"
    )
    pack.add_argument(
        "--level", type=int, default=3, metavar="N", help="zstd compression level (default 3)"
    )
    pack.add_argument("--json", action="store_true", help="print one JSON object")
    _record_commands(commands, _common_options(parser))
    return parser


def _common_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``-C DIR`` on ``parser``, and a parent parser giving every record command the same
    option (defaulting to what was given before the command: ``-C DIR list`` holds too)
    and ``--json``."""
    help_text = (
        "the working directory whose record is read (default: the current folder); the "
        "command runs as if started there, as with git -C"
    )
    parser.add_argument("-C", "--workdir", type=Path, metavar="DIR", help=help_text)
    parent = _Parser(add_help=False)
    parent.add_argument(
        "-C", "--workdir", type=Path, metavar="DIR", default=argparse.SUPPRESS, help=help_text
    )
    parent.add_argument("--json", action="store_true", help="print one JSON object")
    return parent


def _logdir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--logdir",
        type=Path,
        metavar="DIR",
        help="the executor's --frozen-logdir, relative to the working directory (default "
        ".snakemake/frozen_logs)",
    )


def _record_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    def add(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=description, parents=[common])

    add(
        "list",
        "the snapshots of this working directory, newest first",
        "The store's snapshots, newest first: id, creation, git commit and dirty flag, "
        "files, archive size, the runs and jobs of the journal that used it, and whether "
        "any of its jobs are pending or running (SLURM is asked; 'unknown' when it cannot be).",
    )
    show = add(
        "show",
        "a snapshot's manifest, file list or one file's content",
        "The manifest of a snapshot (an id, any unique prefix, or an archive/.json file) in "
        "readable form; --files lists its files; FILE prints one file's content from the "
        "archive, once the archive's sha256 and the file's are the recorded ones.",
    )
    show.add_argument("snapshot", metavar="ID|ARCHIVE")
    show.add_argument("file", nargs="?", metavar="FILE", help="a path as the manifest names it")
    show.add_argument("--files", action="store_true", help="list the files with their sizes")
    which = add(
        "which",
        "the job and code that last produced an output",
        "For each output: the job that last produced it (the journal's latest successful job "
        "naming it): rule, wildcards, snapshot, git commit, SLURM job id, node, log. Exit 1 "
        "when any output is not in the journal.",
    )
    which.add_argument("paths", nargs="+", metavar="PATH")
    diff = add(
        "diff",
        "what differs between two snapshots, or a snapshot and the live code",
        "A and B: snapshot ids (any unique prefix), archive or .json paths, or 'live' (the "
        "code root now, selected with A's recorded settings). B defaults to live. Lists "
        "added (A), removed (D) and changed (M, T: type) files and environment changes (E). "
        "Exit 0 identical, 1 different, 2 trouble, as diff.",
    )
    diff.add_argument("a", metavar="A")
    diff.add_argument("b", nargs="?", default=diffing.LIVE, metavar="B")
    diff.add_argument("-p", "--patch", action="store_true", help="unified diff of text files")
    restore = add(
        "restore",
        "a snapshot's files into a new folder, to read",
        "Extract the snapshot (its archive's sha256 checked) into DEST, which must be new or "
        "empty. With --output, first check that the journal's job that made PATH ran this "
        "snapshot. To run that job again, use reproduce: nothing here runs anything.",
    )
    restore.add_argument("snapshot", metavar="ID|ARCHIVE")
    restore.add_argument("dest", type=Path, metavar="DEST")
    restore.add_argument("--output", metavar="PATH", help="an output the snapshot made")
    again = add(
        "reproduce",
        "run the job that made an output again from its snapshot, into a new folder; compare",
        "Run the job that last made OUTPUT (as which finds it) again on this machine: its own "
        "command line from its batch script, its snapshot's code and config where its view "
        "showed them, its inputs read from the working directory (never written: read-only "
        "where a mount namespace can be had), its outputs written into DIR. Then compare each "
        "output with what the journal recorded when the job ended, and each input with its "
        "size and mtime at submission. Exit 0 identical, 1 different, 2 trouble or not "
        "comparable (an output above the journal's hashing limit).",
    )
    again.add_argument("output", metavar="OUTPUT")
    again.add_argument(
        "--into",
        type=Path,
        metavar="DIR",
        help="a new or empty folder outside the working directory (default: a new folder "
        "below .snakemake/frozen/reproduced)",
    )
    _logdir_option(again)
    verify = add(
        "verify",
        "check archives, manifests and rule-log copies",
        "Check each stored archive (all without ID) against its recorded sha256 and size, "
        "every file in it against the manifest, and the rule-log copies against the store. "
        "Exit 1 naming what is damaged.",
    )
    verify.add_argument("snapshots", nargs="*", metavar="ID")
    verify.add_argument(
        "--repair",
        action="store_true",
        help="put each damaged archive or manifest (store or rule-log copy) back from an "
        "intact one of the same snapshot",
    )
    _logdir_option(verify)
    gc = add(
        "gc",
        "remove old snapshots, rule-log copies, batch scripts and logs",
        "Remove snapshots and finished runs' files beyond the policy, never anything a "
        "pending (also held) or running job needs: SLURM is asked. --keep-last N keeps the N "
        "most recently used snapshots and all used since; --older-than D removes what was "
        "last used more than D days ago; with both only what is beyond both goes.",
    )
    gc.add_argument(
        "--keep-last",
        type=int,
        metavar="N",
        help="keep the N (1 or more) most recently used snapshots; --older-than 0 removes "
        "everything no run needs",
    )
    gc.add_argument(
        "--older-than", type=float, metavar="DAYS", help="remove what was last used before"
    )
    gc.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    _logdir_option(gc)


def _default_root() -> Path:
    top = try_git(["rev-parse", "--show-toplevel"], os.getcwd())
    return Path(os.fsdecode(top.strip())) if top else Path.cwd()


def _pack(args: argparse.Namespace) -> int:
    root = args.root if args.root is not None else _default_root()
    store = args.store if args.store is not None else Layout.of(root).store
    settings = SelectionSettings(
        exclude_folders=DEFAULTS.exclude_folders
        if args.exclude_folders is None
        else tuple(args.exclude_folders),
        code_suffixes=DEFAULTS.code_suffixes
        if args.code_suffixes is None
        else tuple(args.code_suffixes),
        exclude=tuple(args.exclude),
        allow_secrets=tuple(args.allow_secrets),
        max_size_mb=DEFAULTS.max_size_mb if args.max_size_mb is None else args.max_size_mb,
        skip_size_check=args.skip_size_check,
    )
    result = pack(root, store, settings, level=args.level)
    for warning in result.warnings:
        _say(f"{PROG}: warning: {warning}", file=sys.stderr)
    state = "stored" if result.created else "already stored, nothing written"
    text = (
        f"snapshot {result.id} ({state})\n  {result.files} files, {size(result.bytes)} selected\n"
        f"  archive  {result.archive} ({size(result.archive_bytes)})\n"
        f"  manifest {result.manifest}"
    )
    fields = {
        "id": result.id,
        "archive": str(result.archive),
        "manifest": str(result.manifest),
        "archive_sha256": result.archive_sha256,
        "files": result.files,
        "bytes": result.bytes,
        "archive_bytes": result.archive_bytes,
        "created": result.created,
        "root": str(Path(root).resolve()),
        "warnings": list(result.warnings),
    }
    _answer(args, fields, text)
    return 0


def _say(*values: object, file: TextIO | None = None, end: str = "\n") -> None:
    """``print`` for people: a line holding a character a terminal would act on (an escape
    sequence from a wildcard value or a file name, a carriage return) is shown escaped
    (``shellwords.visible``). The commands escape their values themselves, so a line break in
    a value cannot start a line; this is the net under everything else (messages too)."""
    text = " ".join(map(str, values))
    lines = text.split("\n")
    print(
        "\n".join(line if line.isprintable() else visible(line) for line in lines),
        file=file,
        end=end,
    )


def _answer(args: argparse.Namespace, as_json: object, as_text: str) -> None:
    """A command's answer: exact JSON with --json, else text for people."""
    if args.json:
        _print_json(as_json)
    else:
        _say(as_text)


def _print_json(value: object) -> None:
    print(json.dumps(value))  # exact: JSON escapes what a terminal would act on


def _layout(args: argparse.Namespace) -> Layout:
    """``-C DIR``'s layout; without it, that of the workflow folder the current folder lies
    in (found upwards, as git does)."""
    logdir = getattr(args, "logdir", None)
    if getattr(args, "workdir", None) is not None:
        return Layout.of(Path.cwd(), logdir)
    return Layout.find(Path.cwd(), logdir)


def _list(args: argparse.Namespace) -> int:
    found = listing.snapshots(_layout(args))
    if args.json:
        _print_json(listing.as_json(found))
        return 0
    _say(listing.as_table(found.snapshots))
    if found.activity.slurm not in ("asked", "not needed"):
        _warn(f"whether jobs are pending or running is unknown: {found.activity.slurm}")
    if found.history.skipped:
        _warn(f"{found.history.skipped} unreadable line(s) in the journal were skipped")
    for snapshot_id in found.unreadable:
        _warn(f"the record of snapshot {snapshot_id} is unreadable (verify {snapshot_id[:12]})")
    return 0


def _show(args: argparse.Namespace) -> int:
    snapshot = open_snapshot(args.snapshot, SnapshotStore(_layout(args).store))
    if args.file is not None:
        data = show.content(snapshot, args.file)
        if args.json:
            _print_json(show.content_json(snapshot, args.file, data))
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
    elif args.json:
        archive = None if snapshot.archive is None else str(snapshot.archive)
        manifest = snapshot.manifest.as_json()
        _print_json({"id": snapshot.id, "archive": archive, "manifest": manifest})
    else:
        _say(show.files_table(snapshot) if args.files else show.describe(snapshot))
    return 0


def _which(args: argparse.Namespace) -> int:
    layout = _layout(args)
    paths = args.paths
    if layout.workdir != Path.cwd():  # found upwards: paths as typed here, from here
        paths = [os.path.abspath(p) for p in paths]
    answers = which.which(layout, paths)
    _answer(args, which.as_json(answers), which.as_text(answers))
    return 0 if all(a.found for a in answers) else 1


def _diff(args: argparse.Namespace) -> int:
    found = diffing.diff(_layout(args), args.a, args.b, args.patch)
    if args.json:
        _print_json(diffing.as_json(found))
        return 0 if found.difference.identical else 1
    if text := diffing.as_text(found):
        _say(text)
    if found.patch:
        print(found.patch, end="")  # the files' own lines (their names escaped), as git shows
    return 0 if found.difference.identical else 1


def _restore(args: argparse.Namespace) -> int:
    layout = _layout(args)
    snapshot = open_snapshot(args.snapshot, SnapshotStore(layout.store))
    done = restore.restore(snapshot, args.dest, Finder(layout), args.output, layout.workdir)
    _answer(args, restore.as_json(done), restore.as_text(done, snapshot))
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    layout = _layout(args)
    output = args.output if layout.workdir == Path.cwd() else os.path.abspath(args.output)
    done = reproduce.reproduce(layout, output, args.into, progress=_warn)
    _answer(args, reproduce.as_json(done), reproduce.as_text(done))
    return done.exit_code


def _verify(args: argparse.Namespace) -> int:
    report = verify.verify(_layout(args), args.snapshots, repair=args.repair)
    _answer(args, verify.as_json(report), verify.as_text(report))
    return 0 if report.ok else 1


def _gc(args: argparse.Namespace) -> int:
    if args.keep_last is None and args.older_than is None:
        raise RecordError("say what to keep: --keep-last N, --older-than DAYS, or both")
    layout = _layout(args)
    report = gc.collect(
        layout.workdir, layout.logdir, args.keep_last, args.older_than, args.dry_run
    )
    _answer(args, gc.as_json(report), gc.as_text(report))
    return 0


def _warn(message: str) -> None:
    _say(f"{PROG}: {message}", file=sys.stderr)


COMMANDS = {
    "pack": _pack,
    "list": _list,
    "show": _show,
    "which": _which,
    "diff": _diff,
    "restore": _restore,
    "reproduce": _reproduce,
    "verify": _verify,
    "gc": _gc,
}


def _run(args: argparse.Namespace) -> int:
    """The command, as if started in ``-C DIR``; its refusals as exit statuses."""
    start = os.getcwd()
    try:
        if getattr(args, "workdir", None) is not None:
            os.chdir(args.workdir)
        return COMMANDS[args.command](args)
    except FileNotFoundError as e:  # -C DIR, or a folder vanishing under us
        _say(f"{PROG}: error: {e.filename or e}: {e.strerror}", file=sys.stderr)
        return 2
    except RecordError as e:
        _say(f"{PROG}: error: {e}", file=sys.stderr)
        return 2 if args.command in ("diff", "reproduce") else e.exit_code
    except SnapshotError as e:
        reason, _, detail = str(e).partition("\n")
        _say(f"{PROG}: error: {reason}", file=sys.stderr)
        if detail:
            _say(detail, file=sys.stderr)
        return 2 if args.command in ("diff", "reproduce") else 1
    finally:
        os.chdir(start)


def main(argv: list[str] | None = None) -> int:
    """Run ``snakemake-frozen``; returns the exit status (2 usage error, 1 refusal; diff and
    reproduce: 0 identical, 1 different, 2 trouble)."""
    try:
        args = _parser().parse_args(argv)
    except _UsageError as e:
        _say(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    try:
        code = _run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left (`| head`): end quietly, as git does, and keep Python from
        # complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    return code


if __name__ == "__main__":
    sys.exit(main())
