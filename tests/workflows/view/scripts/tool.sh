# shellcheck shell=bash
echo "bash v1"
