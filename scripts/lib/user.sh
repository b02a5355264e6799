# scripts/lib/user.sh: an ordinary (non-root) Unix user for tests, and the Python it runs.
#
# Sourced by scripts/slurm-cluster: `start` creates the user and adds it to the cluster's
# accounting, `status` shows it. Run on its own (as root) for the user's Python:
#
#   bash scripts/lib/user.sh setup    builds or refreshes the user's venv from this checkout,
#                                     then prints user=, uid=, gid=, home=, venv= lines
#
# The user's Python is a venv of Debian's /usr/bin/python3 in $USER_VENV (root-owned, readable
# by everybody, writable by root only), with this checkout's plugin installed NOT editable:
# root's python3 may be a pyenv one under /root (mode 0700) and a CI clone may sit where other
# users cannot read, so neither can be what the user runs. It is rebuilt when pyproject.toml or
# the Python changes, and the plugin alone is reinstalled when its sources change.
# shellcheck shell=bash disable=SC2034 # CHANGED belongs to scripts/slurm-cluster

TEST_USER=${SLURM_CLUSTER_TEST_USER:-frozentest}
TEST_UID=${SLURM_CLUSTER_TEST_UID:-2001} # also its group's gid, when free
TEST_HOME=/home/$TEST_USER
# Not under /var/tmp: anyone can create a name there first, and root runs this venv's pip.
USER_VENV=${FROZEN_USER_VENV:-/opt/snakemake-frozen-user-venv}
USER_VENV_PYTHON=/usr/bin/python3
USER_VENV_RECIPE=1 # bump when the way the venv is built changes: the next setup rebuilds it

# ----------------------------------------------------------------------------- the user

# Create (idempotently) the group and user $TEST_USER with uid (and gid) $TEST_UID, no
# password (runuser/setpriv from root need none), and its home $TEST_HOME, mode 0700 as
# Debian makes them. A user of that name that exists already is kept with whatever uid it has.
ensure_test_user() {
	local other mode
	if ! getent group "$TEST_USER" >/dev/null; then
		if other=$(getent group "$TEST_UID"); then
			groupadd "$TEST_USER" || die "groupadd $TEST_USER failed"
			say "gid $TEST_UID is taken (${other%%:*}); group $TEST_USER got $(getent group "$TEST_USER" | cut -d: -f3)"
		else
			groupadd -g "$TEST_UID" "$TEST_USER" || die "groupadd -g $TEST_UID $TEST_USER failed"
		fi
		CHANGED=1
	fi
	if ! getent passwd "$TEST_USER" >/dev/null; then
		if other=$(getent passwd "$TEST_UID"); then
			die "uid $TEST_UID is taken by '${other%%:*}', so the test user $TEST_USER cannot have it; set SLURM_CLUSTER_TEST_UID to a free uid"
		fi
		useradd -u "$TEST_UID" -g "$TEST_USER" -d "$TEST_HOME" -M -s /bin/bash \
			-c "snakemake-frozen tests" "$TEST_USER" || die "useradd $TEST_USER failed"
		say "created the test user $TEST_USER (uid $TEST_UID, home $TEST_HOME)"
		CHANGED=1
	fi
	mode=$(stat -c '%U:%G %a' -- "$TEST_HOME" 2>/dev/null) || mode=
	if [[ $mode != "$TEST_USER:$TEST_USER 700" ]]; then
		if [[ -L $TEST_HOME ]] || { [[ -e $TEST_HOME ]] && [[ ! -d $TEST_HOME ]]; }; then
			die "$TEST_HOME exists but is not a folder; remove it and start again"
		fi
		mkdir -p -- "$TEST_HOME"
		chown "$TEST_USER:$TEST_USER" "$TEST_HOME"
		chmod 700 "$TEST_HOME"
		CHANGED=1
	fi
}

# Sets ASSOC to the accounts the test user has in the accounting database (empty if none).
test_user_assoc() {
	ASSOC=$(timeout 10 sacctmgr -n -P show assoc where user="$TEST_USER" cluster="$CLUSTER_NAME" \
		format=account 2>/dev/null | sort -u | paste -sd, -) || ASSOC=
}

# Give the test user an association (account root, like root's own) so that it can submit
# also where accounting is enforced (AccountingStorageEnforce=associations), and sacct shows
# its account. Needs slurmdbd. A marker in <base> (which holds the database) saves the
# sacctmgr call (0.2 s) on later starts.
ensure_test_user_assoc() {
	local marker=$ETC/test-user-assoc
	[[ $(read_key "$marker") != "$TEST_USER" ]] || return 0
	test_user_assoc
	if [[ -n $ASSOC ]]; then
		printf '%s\n' "$TEST_USER" >"$marker"
		return 0
	fi
	# On a fresh database the cluster exists only once slurmctld has registered it, which
	# comes later in 'start': add it first, as slurmctld itself would.
	if ! timeout 10 sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
		timeout 30 sacctmgr -i add cluster "$CLUSTER_NAME" >>"$LOGD/sacctmgr.log" 2>&1 || true
	fi
	timeout 30 sacctmgr -i add user "$TEST_USER" account=root cluster="$CLUSTER_NAME" \
		>>"$LOGD/sacctmgr.log" 2>&1 || {
		tail_logs "$LOGD/sacctmgr.log"
		die "could not add $TEST_USER to the accounting database; see $LOGD/sacctmgr.log"
	}
	say "added the test user $TEST_USER to account root in the accounting database"
	printf '%s\n' "$TEST_USER" >"$marker"
	CHANGED=1
}

# One line for `status`.
test_user_status() {
	local ent uid gid home
	if ! ent=$(getent passwd "$TEST_USER"); then
		printf 'test user:\n  %-22s %s\n' "$TEST_USER" "missing ('start' creates it)"
		return 0
	fi
	test_user_assoc
	IFS=: read -r _ _ uid gid _ home _ <<<"$ent"
	printf 'test user:\n  %-22s uid %s gid %s, home %s, account %s\n' "$TEST_USER" "$uid" "$gid" \
		"$home" "${ASSOC:-none (not in the accounting database)}"
	if [[ -x $USER_VENV/bin/python ]]; then
		printf '  %-22s %s\n' "its Python" "$USER_VENV (scripts/lib/user.sh setup refreshes it)"
	else
		printf '  %-22s %s\n' "its Python" "none yet (scripts/lib/user.sh setup builds $USER_VENV)"
	fi
}

# ----------------------------------------------------------------------------- its Python

# /usr/bin/python3 (>= 3.11) with venv and ensurepip: Debian keeps ensurepip in python3-venv.
ensure_debian_python() {
	local log=$USER_VENV-apt.log
	if [[ ! -x $USER_VENV_PYTHON ]] || ! "$USER_VENV_PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
		command -v apt-get >/dev/null 2>&1 ||
			die "$USER_VENV_PYTHON with venv is missing and there is no apt-get; this needs Debian 12"
		say "installing Debian packages: python3 python3-venv (log: $log)"
		if ! {
			DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 update &&
				DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
					-o DPkg::Lock::Timeout=600 python3 python3-venv
		} </dev/null >"$log" 2>&1; then
			tail_logs "$log"
			die "apt-get could not install python3 python3-venv; see $log"
		fi
	fi
	"$USER_VENV_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
		die "$USER_VENV_PYTHON is older than 3.11 ($("$USER_VENV_PYTHON" --version 2>&1))"
}

# Sets DEPS_KEY (recipe, Python, pyproject.toml: a change rebuilds the venv) and SRC_KEY (the
# package's files: a change reinstalls the plugin alone).
user_venv_keys() {
	local repo=$1 key
	key=$({
		printf 'recipe %s\n' "$USER_VENV_RECIPE"
		# (major.minor only: a venv survives Debian's patch updates of its Python)
		"$USER_VENV_PYTHON" -c 'import sys; print(sys.implementation.name, *sys.version_info[:2])'
		cat -- "$repo/pyproject.toml"
	} | sha256sum) || die "cannot read $repo/pyproject.toml"
	DEPS_KEY=${key%% *}
	key=$(cd -- "$repo" && find snakemake_executor_plugin_frozen -name __pycache__ -prune -o \
		-type f ! -name '*.py[co]' -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum) ||
		die "cannot hash the package sources in $repo"
	SRC_KEY=${key%% *}
}

read_key() { { cat -- "$1" 2>/dev/null || true; } | head -n1; }

# ensure_user_venv REPO: build or refresh $USER_VENV from the checkout REPO. pip's output goes
# to $USER_VENV.log.
ensure_user_venv() {
	local repo=$1 t0=$EPOCHREALTIME log=$USER_VENV.log pip what
	local pipopts=(--disable-pip-version-check --no-input)
	((EUID == 0)) || die "must run as root (it builds $USER_VENV for the test user)"
	[[ -f $repo/pyproject.toml ]] || die "$repo is not the plugin's checkout (no pyproject.toml)"
	umask 022
	mkdir -p -- "${USER_VENV%/*}"
	ensure_debian_python
	exec 8>>"$USER_VENV.lock"
	flock -w 900 8 || die "another setup holds $USER_VENV.lock"
	user_venv_keys "$repo"
	pip=("$USER_VENV/bin/python" -m pip)
	# Reused only when root made it and nobody else can write it.
	if [[ -x $USER_VENV/bin/python && $(stat -c '%u %a' -- "$USER_VENV") == "0 755" &&
		$(read_key "$USER_VENV/.deps-key") == "$DEPS_KEY" ]]; then
		if [[ $(read_key "$USER_VENV/.src-key") == "$SRC_KEY" ]]; then
			say "the test user's Python $USER_VENV is up to date"
			return 0
		fi
		what="reinstalled the plugin into"
		rm -f -- "$USER_VENV/.src-key"
		"${pip[@]}" install "${pipopts[@]}" --no-deps --no-build-isolation --force-reinstall \
			"$repo" </dev/null >"$log" 2>&1 || {
			tail_logs "$log"
			die "pip could not reinstall the plugin into $USER_VENV; see $log"
		}
	else
		what="built"
		say "building the test user's Python: a venv of $USER_VENV_PYTHON in $USER_VENV (log: $log)"
		rm -rf -- "$USER_VENV"
		# hatchling (the build backend) goes into the venv itself: later reinstalls then need
		# no build environment of their own.
		if ! {
			"$USER_VENV_PYTHON" -m venv "$USER_VENV" &&
				"${pip[@]}" install "${pipopts[@]}" "hatchling>=1.21" &&
				"${pip[@]}" install "${pipopts[@]}" --no-build-isolation "$repo"
		} </dev/null >"$log" 2>&1; then
			tail_logs "$log"
			die "could not build $USER_VENV with the plugin and its dependencies; see $log"
		fi
		printf '%s\n' "$DEPS_KEY" >"$USER_VENV/.deps-key"
	fi
	chmod -R go-w,a+rX -- "$USER_VENV"
	# The user imports the installed copy (-P and cwd /: not one in the current folder).
	if getent passwd "$TEST_USER" >/dev/null; then
		(cd / && setpriv --reuid="$TEST_USER" --regid="$TEST_USER" --init-groups -- env -i \
			PATH=/usr/bin:/bin HOME=/ "$USER_VENV/bin/python" -P -c \
			'import snakemake_executor_plugin_frozen as p, sys; sys.exit(not p.__file__.startswith(sys.prefix + "/"))') ||
			die "the test user $TEST_USER cannot import the plugin installed in $USER_VENV"
	fi
	printf '%s\n' "$SRC_KEY" >"$USER_VENV/.src-key"
	say "$what the test user's Python $USER_VENV in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')s"
}

# ----------------------------------------------------------------------------- on its own

user_sh_main() {
	local cmd=${1:-} repo ent uid gid home
	repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
	case $cmd in
	setup)
		ensure_user_venv "$repo"
		ent=$(getent passwd "$TEST_USER") ||
			die "no user $TEST_USER; 'scripts/slurm-cluster start' creates it"
		IFS=: read -r _ _ uid gid _ home _ <<<"$ent"
		printf 'user=%s\nuid=%s\ngid=%s\nhome=%s\nvenv=%s\n' "$TEST_USER" "$uid" "$gid" "$home" "$USER_VENV"
		;;
	*)
		printf 'usage: bash scripts/lib/user.sh setup\n' >&2
		return 2
		;;
	esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	set -euo pipefail
	say() { printf 'user.sh: %s\n' "$*" >&2; }
	tail_logs() {
		local f
		for f in "$@"; do
			[[ -s $f ]] && { printf -- '---- last lines of %s ----\n' "$f" && tail -n 25 -- "$f"; } >&2
		done
		return 0
	}
	die() {
		printf 'user.sh: error: %s\n' "$*" >&2
		exit 1
	}
	user_sh_main "$@"
fi
