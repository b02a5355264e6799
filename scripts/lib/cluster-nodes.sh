# scripts/lib/cluster-nodes.sh: the nodes: one slurmd each, and waiting until they are usable.
#
# Each node's slurmd runs in namespaces of its own: a UTS namespace (its hostname is the node
# name, with --nodes > 1), a mount namespace in which <base>/nodes/<node>/local is bound on
# <base>/local (a node-local folder), and with restart-node --no-user-namespaces a user
# namespace without user namespaces below it (userns.sh). wait_nodes_idle waits until
# slurmctld sees every node usable, and fails fast with the logs when a daemon died.
# shellcheck shell=bash

# Sets NODE_MOUNT=1 when this machine can give each slurmd its own mount namespace (so
# that $LOCAL_MNT is node-private), else 0 with a warning: then all nodes share it.
probe_node_mount() {
	local err
	if err=$(unshare --mount --propagation private -- true 2>&1); then
		NODE_MOUNT=1
	else
		NODE_MOUNT=0
		warn "cannot create a mount namespace ('unshare --mount' failed: ${err:-no message}); slurmd runs without one, so $LOCAL_MNT (SLURM_CI_NODE_LOCAL) is one folder shared by all nodes"
	fi
}

# has_node_mount PID NODE: true when process PID has $NODESD/NODE/local bind-mounted on
# $LOCAL_MNT (read from /proc/PID/mountinfo: field 4 is the mounted directory relative
# to its filesystem's root, field 5 the mount point).
has_node_mount() {
	local f=/proc/$1/mountinfo node=$2 mnt root point
	mnt=$(realpath -m -- "$LOCAL_MNT")
	[[ -r $f ]] || return 1
	while read -r _ _ _ root point _; do
		[[ $point == "$mnt" && $root == */nodes/"$node"/local ]] && return 0
	done 2>/dev/null <"$f"
	return 1
}

node_pidfiles() { # print the node names of all slurmd pid files
	local f
	for f in "$RUN"/slurmd-*.pid; do
		[[ -e $f ]] || continue
		f=${f##*/slurmd-}
		printf '%s\n' "${f%.pid}"
	done
}

# start_slurmd NODE PORT [no-userns]: start NODE's slurmd (in its own UTS namespace with
# USE_UTS=1, its own mount namespace with NODE_MOUNT=1), and add it to SLURMD_PIDS,
# NEW_SLURMD_PORTS and REGISTERED_SINCE (for wait_nodes_idle). With "no-userns" it also runs
# in a user namespace of its own in which user.max_user_namespaces is 0 (lib/userns.sh);
# returns 1 (slurmd stopped again) when that namespace cannot be made.
start_slurmd() {
	local node=$1 port=$2 nouserns=${3:-} ns=() setup='' since=$EPOCHSECONDS pid what=''
	require_port_free "$port" "slurmd for node $node"
	mkdir -p -- "$SPOOL/$node" "$NODESD/$node/scratch" "$NODESD/$node/local" "$LOCAL_MNT"
	chmod 1777 "$NODESD/$node/scratch" "$NODESD/$node/local" "$LOCAL_MNT"
	# (created first, so that the UTS and mount namespaces belong to it)
	if [[ -n $nouserns ]]; then ns+=(--user) setup+=$USERNS_SETUP what=", without user namespaces"; fi
	# shellcheck disable=SC2016 # $1, $2, $3 are expanded by the inner sh
	if [[ $USE_UTS == 1 ]]; then ns+=(--uts) setup+='hostname "$1" && '; fi
	# Own mount namespace, private propagation: the bind mount of the node's folder on
	# $LOCAL_MNT is seen by this slurmd and its jobs only, never by the host.
	# shellcheck disable=SC2016 # $2, $3: expanded by the inner sh too
	if ((NODE_MOUNT)); then ns+=(--mount --propagation private) setup+='mount --bind "$2" "$3" && '; fi
	if ((${#ns[@]})); then
		# unshare (no --fork) and sh both exec, so the pid stays slurmd's.
		launch "slurmd-$node" "$LOGD/slurmd-$node.out" unshare "${ns[@]}" -- \
			sh -c "${setup}exec slurmd -D -N \"\$1\"" sh "$node" "$NODESD/$node/local" "$LOCAL_MNT"
	else
		launch "slurmd-$node" "$LOGD/slurmd-$node.out" slurmd -D -N "$node"
	fi
	pid=$LAUNCHED_PID
	if [[ -n $nouserns ]] && ! userns_map "$pid" 10; then
		stop_pids 5 "$pid"
		rm -f -- "$RUN/slurmd-$node.pid"
		tail_logs "$LOGD/slurmd-$node.out"
		warn "slurmd for node $node (pid $pid) could not get its user namespace: $USERNS_ERROR"
		return 1
	fi
	SLURMD_PIDS+=("$pid")
	NEW_SLURMD_PORTS+=("$node:$port")
	REGISTERED_SINCE+=("$node:$since")
	say "started slurmd for node $node (pid $pid$what)"
}

# registered_since NODE EPOCH: true when slurmctld knows a slurmd of NODE that started at
# EPOCH (seconds) or later, i.e. that slurmd has registered.
registered_since() {
	local out t
	out=$(timeout 10 scontrol -o show node "$1" 2>/dev/null) || return 1
	[[ $out =~ SlurmdStartTime=([0-9T:-]+) ]] || return 1
	t=$(date -d "${BASH_REMATCH[1]}" +%s 2>/dev/null) || return 1
	((t >= $2))
}

# Wait until every configured node is usable; fail fast when slurmctld or a slurmd died.
wait_nodes_idle() {
	local end=$((SECONDS + WAIT_IDLE)) t0=$SECONDS resumed=0 out n s i bad pid logs
	local -A st
	while :; do
		out=$(sinfo -h -N -o '%N %T' 2>/dev/null) || out=
		st=()
		while read -r n s; do [[ -n ${n:-} ]] && st[$n]=$s; done <<<"$out"
		bad=()
		for n in "${NODE_NAMES[@]}"; do
			case ${st[$n]:-unknown} in
			idle | mixed | allocated | completing) ;;
			*) bad+=("$n=${st[$n]:-unknown}") ;;
			esac
		done
		# A restarted slurmd's node may still look idle from before; wait for its port, and
		# until slurmctld has its registration (SlurmdStartTime not older than its launch).
		for i in "${NEW_SLURMD_PORTS[@]}"; do
			port_listening "${i##*:}" || bad+=("${i%%:*}=slurmd-starting")
		done
		for i in "${REGISTERED_SINCE[@]}"; do
			registered_since "${i%%:*}" "${i##*:}" || bad+=("${i%%:*}=slurmd-registering")
		done
		((${#bad[@]})) || return 0

		if ! alive "$CTLD_PID"; then
			tail_logs "$LOGD/slurmctld.out"
			die "slurmctld (pid $CTLD_PID) died; see $LOGD/slurmctld.log"
		fi
		for i in "${!NODE_NAMES[@]}"; do
			pid=${SLURMD_PIDS[i]}
			if ! alive "$pid"; then
				n=${NODE_NAMES[i]}
				tail_logs "$LOGD/slurmd-$n.out"
				die "slurmd for node $n (pid $pid) died; see $LOGD/slurmd-$n.log"
			fi
		done
		if ((!resumed && SECONDS - t0 >= 10)); then
			resumed=1
			for n in "${NODE_NAMES[@]}"; do
				case ${st[$n]:-} in
				down* | drain* | fail*)
					say "node $n is ${st[$n]}; trying 'scontrol update NodeName=$n State=RESUME'"
					scontrol update NodeName="$n" State=RESUME >/dev/null 2>&1 || true
					;;
				esac
			done
		fi
		if ((SECONDS >= end)); then
			logs=("$LOGD/slurmctld.log")
			for n in "${NODE_NAMES[@]}"; do logs+=("$LOGD/slurmd-$n.log"); done
			tail_logs "${logs[@]}"
			die "nodes not idle after ${WAIT_IDLE}s (${bad[*]}); see ${logs[*]}"
		fi
		sleep 0.1
	done
}
