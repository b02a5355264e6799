# Sourced by scripts/demo and scripts/test: the virtual environment with the plugin installed
# (editable, hatchling: Snakemake's plugin discovery sees it), a second one with the oldest
# Snakemake the plugin supports (scripts/test), the local SLURM cluster, and the linter of
# the shell scripts (scripts/test runs it on every one).
# shellcheck shell=bash

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv="$repo/.venv"
oldest_venv="$repo/.venv-oldest"

setup_python() {
    if [ ! -x "$venv/bin/python" ]; then
        python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
            echo "error: python3 >= 3.11 is needed (found $(python3 --version 2>&1))" >&2
            exit 1
        }
        python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "${repo}[test]"
    export PATH="$venv/bin:$PATH"
}

# The lower bounds of pyproject.toml's Snakemake packages as pins, one a line
# (snakemake==8.10, snakemake-interface-executor-plugins==9.4, ...).
oldest_pins() {
    python3 - "$repo/pyproject.toml" <<'PY'
import re
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    for dependency in tomllib.load(f)["project"]["dependencies"]:
        lower = re.fullmatch(r"(snakemake[a-z-]*)>=([0-9.]+),<[0-9.]+", dependency)
        if lower:
            print(f"{lower[1]}=={lower[2]}")
PY
}

# .venv-oldest: the oldest Snakemake pyproject.toml allows, with the oldest interface
# packages it allows, and the plugin as users install it: a wheel built from the checkout,
# not an editable install (reinstalled every time, so that it is the checkout's code).
setup_oldest_snakemake() {
    local pins wheels wheel pip=("$oldest_venv/bin/python" -m pip --quiet --disable-pip-version-check)
    mapfile -t pins < <(oldest_pins)
    if ((${#pins[@]} != 3)); then
        echo "error: expected 3 snakemake* lower bounds in pyproject.toml, found: ${pins[*]}" >&2
        exit 1
    fi
    [ -x "$oldest_venv/bin/python" ] || python3 -m venv "$oldest_venv"
    wheels=$(mktemp -d -t frozen-wheel.XXXXXX)
    "$venv/bin/python" -m pip wheel --quiet --disable-pip-version-check --no-deps \
        --wheel-dir "$wheels" "$repo"
    wheel=$(echo "$wheels"/snakemake_executor_plugin_frozen-*.whl)
    "${pip[@]}" install "${pins[@]}" "${wheel}[test]"
    "${pip[@]}" install --no-deps --force-reinstall "$wheel"
    rm -rf -- "$wheels"
    echo "oldest supported Snakemake in $oldest_venv: ${pins[*]}"
}

setup_cluster() {
    # Two nodes, so that tests and the demo show jobs on a node other than the submit host.
    "$repo/scripts/slurm-cluster" start --nodes 2 --cpus 4
}

setup_shellcheck() {
    # The Debian package, installed quietly when missing (as scripts/slurm-cluster installs
    # the cluster's packages; root, as for the cluster). apt-get's output goes to a log that
    # is kept only when it fails.
    command -v shellcheck >/dev/null 2>&1 && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "error: shellcheck is missing; install it (Debian: apt-get install shellcheck)" >&2
        exit 1
    fi
    local log
    log=$(mktemp -t shellcheck-apt.XXXXXX.log)
    echo "installing the Debian package shellcheck (log: $log)"
    if ! {
        DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 update &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                -o DPkg::Lock::Timeout=600 shellcheck
    } </dev/null >"$log" 2>&1 || ! command -v shellcheck >/dev/null 2>&1; then
        tail -n 25 -- "$log" >&2
        echo "error: apt-get could not install shellcheck; see $log" >&2
        exit 1
    fi
    rm -f -- "$log"
}
