# Run by a shell: rule through a path relative to the working directory, and reading a config
# file the same way: in the job's view both are the versions of submission time.
# shellcheck shell=bash
echo "banner script demo-v1, config $(cat config/banner.txt), on $(hostname)"
