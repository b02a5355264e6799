"""Loaded by every Python process of a frozen job: its folder comes first on the job's
PYTHONPATH, and Python imports `sitecustomize` from there at start-up.

It closes the two ways a Python process of the job could still see the live tree:

- Imports. `python -m pkg.tool`, `python -c ...` and a script run from the working
  directory put that directory (the live tree) at sys.path[0], ahead of the frozen copy on
  PYTHONPATH. A finder placed first on sys.meta_path resolves the top-level modules that the
  snapshot holds from the frozen entries, whatever sys.path[0] says.
- Reads. A file of the code root that the snapshot holds (a sample sheet read while the
  Snakefile is parsed, a config read by `yaml.safe_load(open(...))` in a `run:` block or a
  script) is opened from the copy when opened for reading through `open`/`io.open` (and so
  through `pathlib`, `csv`, `json`, `pandas`...). Files opened for writing are never
  redirected, and a path this process wrote is read live afterwards. Outputs, logs and
  benchmarks of the workflow are not in the snapshot, so they are never redirected.

Environment (exported by the node helper): FROZEN_DIR (the copy of the code root),
FROZEN_COPY (the extracted folder: FROZEN_DIR or above it when the snapshot holds files from
outside the code root), FROZEN_CODE_ROOT (the live code root), FROZEN_PYTHONPATH (the frozen
import folders). FROZEN_REPORT_READS=1 makes this process print, at exit, which reads it
served from the snapshot; it is removed from the environment so children do not inherit it.

In the job's mount view (FROZEN_VIEW=mount, see node/view.py) every program already reads the
snapshot at the live paths, so nothing is redirected. Any other `sitecustomize` on the path
is run afterwards. Kept free of imports beyond the
standard library and cheap: it runs in every Python process of every job.
"""

import builtins
import io
import os
import sys


def _within(path, folder):
    return path == folder or path.startswith(folder.rstrip("/") + "/")


class _FrozenFirst:
    """Top-level modules the snapshot holds come from the frozen folders."""

    def __init__(self, entries):
        self.entries = entries
        self.names = None

    def _top_level_names(self):
        names = set()
        for entry in self.entries:
            try:
                listing = os.listdir(entry)
            except OSError:
                continue
            for name in listing:
                stem = name.partition(".")[0]
                if stem.isidentifier():
                    names.add(stem)
        return names

    def find_spec(self, name, path=None, target=None):
        if path is not None:  # a submodule: its package's __path__ is already frozen
            return None
        if self.names is None:
            self.names = self._top_level_names()
        if name not in self.names:
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, self.entries)
        # A bare folder (namespace portion) must not beat a regular package further down
        # sys.path, as it would not in a plain search.
        return spec if spec is not None and spec.origin is not None else None

    def invalidate_caches(self):
        self.names = None


class _SnapshotReads:
    """Maps reads of live code-root files to their frozen copies."""

    def __init__(self, frozen_dir, copy, code_root):
        self.frozen_dir = frozen_dir
        self.copy = copy
        self.code_root = code_root
        self.outside = frozen_dir != copy  # the snapshot holds files above the code root
        self.written = set()
        self.served = {}  # live path -> frozen path

    def target(self, file, mode):
        if isinstance(file, int):
            return None
        try:
            path = os.fsdecode(os.fspath(file))
        except TypeError:
            return None
        live = os.path.abspath(path)
        if any(flag in mode for flag in "wax+"):
            self.written.add(live)
            return None
        if _within(live, self.code_root):
            relative = live[len(self.code_root) :].lstrip("/")
        elif self.outside:
            relative = os.path.relpath(live, self.code_root)
        else:
            return None
        if not relative or relative == ".frozen" or relative.startswith(".frozen/"):
            return None
        frozen = os.path.normpath(os.path.join(self.frozen_dir, relative))
        if live in self.written or not _within(frozen, self.copy) or frozen == self.copy:
            return None
        if not os.path.isfile(frozen):
            return None
        self.served[live] = frozen
        return frozen

    def report(self):
        lines = []
        for live, frozen in sorted(self.served.items()):
            try:
                same = _same_content(live, frozen)
            except OSError:
                same = False
            note = "" if same else "  (the live file differs: edited since submission)"
            lines.append(f"frozen:   {live}{note}")
        if lines:
            print(
                f"frozen: {len(lines)} file(s) of the code root were read from the snapshot:",
                *lines,
                sep="\n",
                file=sys.stderr,
            )


_original_open = io.open  # the live file, never the snapshot's


def _same_content(first, second):
    if os.stat(first).st_size != os.stat(second).st_size:
        return False
    with _original_open(first, "rb") as a, _original_open(second, "rb") as b:
        while True:
            chunk = a.read(1 << 20)
            if chunk != b.read(1 << 20):
                return False
            if not chunk:
                return True


def _patch_open(reads):
    original = _original_open

    def open(file, mode="r", *args, **kwargs):
        try:
            frozen = reads.target(file, mode)
        except Exception:  # never let the redirect break a read
            frozen = None
        return original(file if frozen is None else frozen, mode, *args, **kwargs)

    open.__doc__ = original.__doc__
    builtins.open = io.open = open


def _run_next_sitecustomize():
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    from importlib.machinery import PathFinder
    from importlib.util import module_from_spec

    spec = PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(module_from_spec(spec))


def _install():
    frozen_dir = os.environ.get("FROZEN_DIR")
    code_root = os.environ.get("FROZEN_CODE_ROOT")
    if not frozen_dir or not code_root or os.environ.get("FROZEN_VIEW") == "mount":
        return  # not frozen, or in the mount view, where the live paths are the snapshot's
    copy = os.environ.get("FROZEN_COPY") or frozen_dir
    entries = [e for e in os.environ.get("FROZEN_PYTHONPATH", "").split(os.pathsep) if e]
    if entries:
        sys.meta_path.insert(0, _FrozenFirst(entries))
    reads = _SnapshotReads(
        os.path.normpath(frozen_dir), os.path.normpath(copy), os.path.normpath(code_root)
    )
    _patch_open(reads)
    if os.environ.pop("FROZEN_REPORT_READS", None) == "1":
        import atexit

        atexit.register(reads.report)


_install()
_run_next_sitecustomize()
