# shellcheck shell=bash
echo "deleted-v1"
