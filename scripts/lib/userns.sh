# scripts/lib/userns.sh: a node without user namespaces, for scripts/slurm-cluster.
#
# `scripts/slurm-cluster restart-node NODE --no-user-namespaces` starts that node's slurmd in
# a user namespace of its own, created by root, whose uid and gid maps are the identity over
# the whole range (0 0 4294967295: every user, slurm, munge, the test user, nobody, is
# itself there), with its own mount (and UTS) namespace, and sets user.max_user_namespaces
# to 0 inside it. Root there has CAP_SYS_RESOURCE over that namespace, which is all the
# setting needs (root of this machine may lack it in the initial one, so the machine-wide
# setting cannot be changed). The limit counts namespaces created below the one it is set
# in, so every job that slurmd starts gets ENOSPC from unshare(CLONE_NEWUSER), as on a node
# whose administrator set the sysctl to 0, while root's jobs can still make mount
# namespaces (root there owns the node's mount namespace).
#
# The maps are written from outside: util-linux's unshare --map-users needs newuidmap (the
# uidmap package) and /etc/subuid entries, while root writes /proc/PID/uid_map itself. The
# process inside must not use its capabilities before the maps exist (an exec while its uid
# is unmapped drops them), so the node's start-up script waits for them, and then runs every
# privileged step (sysctl, hostname, mount) as a program of its own.
# shellcheck shell=bash disable=SC2034 # USERNS_SETUP, USERNS_ERROR: used by scripts/slurm-cluster

# The maps of such a node: the identity over every uid and gid a map may hold.
USERNS_MAP='0 0 4294967295'

# The start-up steps of a node without user namespaces, for the node's `sh -c` (before the
# other steps): wait for the maps, then switch user namespaces off below this one.
# shellcheck disable=SC2016 # expanded by that sh
USERNS_SETUP='while ! { read -r m _ </proc/self/uid_map && [ -n "$m" ]; }; do sleep 0.02; done && sysctl -q -w user.max_user_namespaces=0 && '

# userns_id PID: print the user namespace of PID (e.g. user:[4026531837]).
userns_id() { readlink -- "/proc/$1/ns/user" 2>/dev/null; }

# in_own_userns PID: true when PID runs in a user namespace other than this script's.
in_own_userns() {
	local ns
	ns=$(userns_id "$1") || return 1
	[[ -n $ns && $ns != "$(userns_id $$)" ]]
}

# userns_limit PID: print user.max_user_namespaces as PID's user namespace sees it.
userns_limit() {
	nsenter --target "$1" --user -- cat /proc/sys/user/max_user_namespaces 2>/dev/null
}

# userns_map PID TIMEOUT: wait (up to TIMEOUT s) until PID has left this script's user
# namespace, then give its new one the identity maps (setgroups allowed: slurmstepd sets
# the job user's groups). Returns 1, with USERNS_ERROR set, when that fails.
userns_map() {
	local pid=$1 end=$((SECONDS + $2)) own
	own=$(userns_id $$)
	USERNS_ERROR=
	while [[ $(userns_id "$pid") == "$own" ]]; do
		if ! alive "$pid"; then
			USERNS_ERROR="it exited before it made its user namespace"
			return 1
		fi
		if ((SECONDS >= end)); then
			USERNS_ERROR="it made no user namespace within $2 s"
			return 1
		fi
		sleep 0.02
	done
	{
		printf 'allow\n' >"/proc/$pid/setgroups" &&
			printf '%s\n' "$USERNS_MAP" >"/proc/$pid/uid_map" &&
			printf '%s\n' "$USERNS_MAP" >"/proc/$pid/gid_map"
	} 2>/dev/null || {
		USERNS_ERROR="writing /proc/$pid/{setgroups,uid_map,gid_map} failed"
		return 1
	}
}
