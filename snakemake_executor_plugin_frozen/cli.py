"""``snakemake-frozen``: the snapshot engine on the command line.

``snakemake-frozen pack`` is the archive-only documentation mode: it snapshots any folder
into the content-addressed store exactly as the executor does, without running anything.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

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
    return parser


def _default_root() -> Path:
    top = try_git(["rev-parse", "--show-toplevel"], os.getcwd())
    return Path(os.fsdecode(top.strip())) if top else Path.cwd()


def _size(n: int) -> str:
    if n < 1000:
        return f"{n} bytes"
    return f"{n / 1e3:.1f} kB" if n < 1e6 else f"{n / 1e6:.1f} MB"


def _pack(args: argparse.Namespace) -> int:
    root = args.root if args.root is not None else _default_root()
    store = args.store if args.store is not None else root / ".snakemake/frozen/snapshots"
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
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
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
            )
        )
    else:
        state = "stored" if result.created else "already stored, nothing written"
        print(f"snapshot {result.id} ({state})")
        print(f"  {result.files} files, {_size(result.bytes)} selected")
        print(f"  archive  {result.archive} ({_size(result.archive_bytes)})")
        print(f"  manifest {result.manifest}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``snakemake-frozen``; returns the exit status (2 usage error, 1 refusal)."""
    try:
        args = _parser().parse_args(argv)
    except _UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    try:
        return _pack(args)
    except SnapshotError as e:
        reason, _, detail = str(e).partition("\n")
        print(f"{PROG}: error: {reason}", file=sys.stderr)
        if detail:
            print(detail, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
