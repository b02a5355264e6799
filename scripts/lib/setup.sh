# Sourced by scripts/demo and scripts/test: the virtual environment with the plugin installed
# (editable, hatchling: Snakemake's plugin discovery sees it), the local SLURM cluster, and
# the linter of the shell scripts (scripts/test runs it on every one).
# shellcheck shell=bash

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv="$repo/.venv"

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
