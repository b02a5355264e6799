# Sourced by scripts/demo and scripts/test: the virtual environment with the plugin installed
# (editable, hatchling: Snakemake's plugin discovery sees it) and the local SLURM cluster.
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
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$repo[test]"
    export PATH="$venv/bin:$PATH"
}

setup_cluster() {
    # Two nodes, so that tests and the demo show jobs on a node other than the submit host.
    "$repo/scripts/slurm-cluster" start --nodes 2 --cpus 4
}
