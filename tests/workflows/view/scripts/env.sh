# shellcheck shell=bash disable=SC2034 # ENV_VERSION: read by the Snakefile rule that sources this file
ENV_VERSION=v1
