# scripts/lib/cluster-common.sh: the helpers every part of scripts/slurm-cluster uses.
#
# Messages (say, warn, die), the EXIT trap, log tails, process checks (alive; daemon_pid: a
# pid file in <base>/run checked against /proc/PID/comm), ports, launching a daemon and
# waiting until it answers, stopping daemons, the "does it answer" probes of each daemon,
# root and the lock that keeps two commands from working on the cluster at once.
# shellcheck shell=bash

say() { printf '%s: %s\n' "${PROG##*/}" "$*"; }
warn() { printf '%s: warning: %s\n' "${PROG##*/}" "$*" >&2; }
die() {
	DIED=1
	printf '%s: error: %s\n' "${PROG##*/}" "$*" >&2
	exit 1
}

# EXIT trap of start/stop: remove a temporary policy-rc.d, and name the command when the
# script stops on an unexpected error (set -e) rather than through die.
DIED=0 POLICY_CREATED=0
on_exit() {
	local rc=$? cmd=$BASH_COMMAND
	((POLICY_CREATED)) && rm -f /usr/sbin/policy-rc.d
	if ((rc != 0 && !DIED)); then
		printf '%s: error: unexpected failure (exit %s) of: %s\n' "${PROG##*/}" "$rc" "$cmd" >&2
		printf '%s: logs are in %s\n' "${PROG##*/}" "$LOGD" >&2
	fi
}

# Print to stderr the last lines of each existing, non-empty file; for a daemon's .out
# file only what its latest start wrote (after the last "==== " marker line of launch).
tail_logs() {
	local f
	for f in "$@"; do
		[[ -s $f ]] || continue
		printf -- '---- last lines of %s ----\n' "$f" >&2
		awk '/^==== / { n = 0; next } { buf[n++ % 25] = $0 }
			END { for (i = (n > 25 ? n - 25 : 0); i < n; i++) print buf[i % 25] }' "$f" >&2 || true
	done
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# True when PID exists and is not a zombie.
alive() {
	local stat
	[[ -n $1 ]] || return 1
	{ read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
	stat=${stat##*) }
	[[ ${stat%% *} != Z ]]
}

# daemon_pid NAME COMM [keep]: print the PID recorded in $RUN/NAME.pid when that process
# is alive and its /proc/PID/comm is COMM. A stale pid file is removed (unless "keep").
daemon_pid() {
	local f=$RUN/$1.pid want=$2 keep=${3:-} pid comm
	[[ -f $f ]] || return 1
	{ read -r pid <"$f"; } 2>/dev/null || pid=
	if is_uint "${pid:-}" && alive "$pid" && { read -r comm <"/proc/$pid/comm"; } 2>/dev/null &&
		[[ $comm == "$want" ]]; then
		printf '%s\n' "$pid"
		return 0
	fi
	[[ -n $keep ]] || rm -f -- "$f"
	return 1
}

# True when something listens on 127.0.0.1:PORT or *:PORT (TCP, v4 or v6).
port_listening() {
	local hex f laddr st
	hex=$(printf ':%04X' "$1")
	for f in /proc/net/tcp /proc/net/tcp6; do
		[[ -r $f ]] || continue
		# fields: sl local_address rem_address st ...; st 0A = LISTEN
		while read -r _ laddr _ st _; do
			[[ $st == 0A && $laddr == *"$hex" ]] && return 0
		done <"$f"
	done
	return 1
}

require_port_free() { # PORT WHAT
	if port_listening "$1"; then
		die "port $1 is already in use, so $2 cannot start; is a cluster running that this script (base $BASE) does not know about? Stop that process (or run '$PROG stop' with the SLURM_CLUSTER_DIR it was started with) and retry"
	fi
}

# launch NAME OUTFILE CMD...: start CMD as a daemon in its own session, with a clean
# environment, stdin from /dev/null, stdout+stderr appended to OUTFILE, and no other
# inherited file descriptors (so a caller's pipe never stays open). $RUN/NAME.pid gets
# its PID (the subshell execs setsid, which execs CMD without forking).
launch() {
	local name=$1 out=$2
	shift 2
	printf '==== %(%F %T)T %s\n' -1 "$*" >>"$out"
	(
		for fd in /proc/self/fd/*; do
			fd=${fd##*/}
			if ((fd > 2)); then exec {fd}>&- 2>/dev/null || true; fi
		done
		# Not in the caller's folder: a test's or a clone's folder may be removed while the
		# daemon lives, and its jobs' steps inherit the daemon's working directory.
		cd /
		exec setsid env -i "${DAEMON_ENV[@]}" "$@" </dev/null >>"$out" 2>&1
	) &
	LAUNCHED_PID=$!
	CHANGED=1
	printf '%s\n' "$LAUNCHED_PID" >"$RUN/$name.pid"
}

# wait_for DESC PID TIMEOUT CHECK LOG TAIL...: poll CHECK every 0.1 s until it succeeds;
# fail fast when PID died, or after TIMEOUT seconds, printing the tails of the TAIL files
# and naming LOG (the daemon's main log).
wait_for() {
	local desc=$1 pid=$2 timeout=$3 check=$4 log=$5 end
	shift 5
	end=$((SECONDS + timeout))
	while :; do
		if "$check"; then return 0; fi
		if ! alive "$pid"; then
			tail_logs "$@"
			die "$desc (pid $pid) exited during startup; see $log"
		fi
		if ((SECONDS >= end)); then
			tail_logs "$@"
			die "$desc did not become ready within ${timeout}s; see $log"
		fi
		sleep 0.1
	done
}

# stop_pids TIMEOUT PID...: SIGTERM, wait up to TIMEOUT s, then SIGKILL what is left.
stop_pids() {
	local timeout=$1 pid left end
	shift
	(($#)) || return 0
	kill -TERM "$@" 2>/dev/null || true
	end=$((SECONDS + timeout))
	while :; do
		left=()
		for pid in "$@"; do alive "$pid" && left+=("$pid"); done
		((${#left[@]})) || return 0
		if ((SECONDS >= end)); then
			warn "still running after ${timeout}s, sending SIGKILL to: ${left[*]}"
			kill -KILL "${left[@]}" 2>/dev/null || true
			sleep 0.2
			return 0
		fi
		sleep 0.1
		set -- "${left[@]}"
	done
}

# stop_daemons NAME:COMM...: stop the given daemons (those with a valid pid file) together.
stop_daemons() {
	local spec name comm pid pids=() names=()
	for spec in "$@"; do
		name=${spec%%:*} comm=${spec#*:}
		if pid=$(daemon_pid "$name" "$comm"); then
			pids+=("$pid")
			names+=("$name($pid)")
		fi
	done
	((${#pids[@]})) || return 0
	say "stopping ${names[*]}"
	# shellcheck disable=SC2034 # CHANGED is read by cluster_start (cluster-lifecycle.sh)
	CHANGED=1
	stop_pids 15 "${pids[@]}"
	for spec in "$@"; do rm -f -- "$RUN/${spec%%:*}.pid"; done
}

ctld_ok() { timeout 10 scontrol ping >/dev/null 2>&1; }
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
db_sql() { mariadb --no-defaults --protocol=socket --socket="$DBSOCK" -uroot -N -B "$@"; }
db_ok() { db_sql -e 'SELECT 1' >/dev/null 2>&1; }
dbd_ok() { timeout 10 sacctmgr -n list cluster >/dev/null 2>&1; }

need_root() {
	((EUID == 0)) || die "must run as root (it installs packages and starts system daemons); try: sudo $PROG $*"
}

take_lock() {
	mkdir -p -- "$BASE" || die "cannot create $BASE"
	exec 9>>"$BASE/.lock"
	flock -w 900 9 || die "another $PROG is running (lock $BASE/.lock held for 15 min)"
}

# seconds_since EPOCHREALTIME: the seconds from then until now, to 0.1 s.
seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
