# scripts/lib/cluster-restart.sh: one daemon restarted while the cluster and its jobs go on.
#
# restart-controller stops slurmctld as `systemctl restart` would (SIGTERM: it saves its
# state first), optionally stays down a while, starts it from that state and waits until
# every node has registered again; tests use it to check that running and pending jobs
# survive a controller restart. restart-node does the same for the slurmd of named nodes,
# optionally in a user namespace without user namespaces (userns.sh).
# The options were read and checked by scripts/slurm-cluster.
# shellcheck shell=bash

# cluster_restart_controller DOWN: restart slurmctld, staying down DOWN seconds between.
cluster_restart_controller() {
	local down=$1 t_stop t_start stopped_in answered_in node pid
	need_root restart-controller
	[[ -d $BASE ]] || die "no cluster to restart ($BASE does not exist); run '$PROG start' first"
	trap on_exit EXIT
	take_lock
	daemon_pid slurmctld slurmctld >/dev/null ||
		die "slurmctld is not running (no live pid in $RUN/slurmctld.pid); '$PROG start' starts the whole cluster"
	# From here on an interrupt must not leave the cluster without its controller.
	trap 'DIED=1; echo "${PROG##*/}: interrupted" >&2; daemon_pid slurmctld slurmctld >/dev/null || start_slurmctld; exit 130' INT TERM
	t_stop=$EPOCHREALTIME
	# SIGTERM, as for stop: slurmctld saves its state (jobs, nodes) before it exits; jobs
	# keep running on the nodes, whose slurmd hold their results until it is back.
	stop_daemons slurmctld:slurmctld
	stopped_in=$(seconds_since "$t_stop")
	if [[ $down != 0 ]]; then
		say "slurmctld stopped in ${stopped_in}s; staying down ${down}s"
		sleep "$down"
	fi
	t_start=$EPOCHREALTIME
	start_slurmctld
	answered_in=$(seconds_since "$t_start")
	# The nodes are "unknown" until their slurmd registers again (about a second).
	mapfile -t NODE_NAMES < <(configured_nodes)
	# shellcheck disable=SC2034 # the new slurmd: none; wait_nodes_idle reads them (cluster-nodes.sh)
	SLURMD_PIDS=() NEW_SLURMD_PORTS=() REGISTERED_SINCE=()
	for node in "${NODE_NAMES[@]}"; do
		pid=$(daemon_pid "slurmd-$node" slurmd) ||
			die "slurmd for node $node is not running; '$PROG start' starts it"
		SLURMD_PIDS+=("$pid")
	done
	wait_nodes_idle
	say "slurmctld restarted with its saved state in $(seconds_since "$t_stop")s (stop ${stopped_in}s, down ${down}s, answering ${answered_in}s after its start, nodes usable $(seconds_since "$t_start")s after it)"
}

# cluster_restart_node NOUSERNS NODE...: restart the slurmd of each NODE; NOUSERNS is
# "no-userns" (without user namespaces) or empty (as `start` runs it).
cluster_restart_node() {
	local nouserns=$1 nodes=("${@:2}") node pid t0 specs=() failed=() what
	need_root restart-node
	[[ -d $BASE ]] || die "no cluster ($BASE does not exist); run '$PROG start' first"
	trap on_exit EXIT
	take_lock
	# shellcheck disable=SC2034 # read by wait_nodes_idle (cluster-nodes.sh)
	CTLD_PID=$(daemon_pid slurmctld slurmctld) ||
		die "slurmctld is not running (no live pid in $RUN/slurmctld.pid); '$PROG start' starts the whole cluster"
	local -A PORT_OF
	conf_nodes
	for node in "${nodes[@]}"; do
		[[ -n ${PORT_OF[$node]:-} ]] ||
			die "restart-node: no node '$node' in $SLURM_CONF_FILE (its nodes: ${NODE_NAMES[*]:-none})"
	done
	probe_node_mount
	t0=$EPOCHREALTIME
	# From here on an interrupt must not leave a node without its slurmd: start it again,
	# as usual.
	trap 'DIED=1; echo "${PROG##*/}: interrupted" >&2
		for node in "${nodes[@]}"; do
			daemon_pid "slurmd-$node" slurmd >/dev/null || start_slurmd "$node" "${PORT_OF[$node]}" || true
		done; exit 130' INT TERM
	for node in "${nodes[@]}"; do specs+=("slurmd-$node:slurmd"); done
	# SIGTERM: slurmd exits; the jobs running on the node go on (their slurmstepd are not
	# its children) and the new slurmd takes them over.
	stop_daemons "${specs[@]}"
	local -A started
	for node in "${nodes[@]}"; do
		if ! start_slurmd "$node" "${PORT_OF[$node]}" "$nouserns"; then
			failed+=("$node")
			start_slurmd "$node" "${PORT_OF[$node]}"
		fi
		started[$node]=$LAUNCHED_PID # (its comm is not slurmd yet, so daemon_pid would fail)
	done
	SLURMD_PIDS=()
	for node in "${NODE_NAMES[@]}"; do
		pid=${started[$node]:-}
		[[ -n $pid ]] || pid=$(daemon_pid "slurmd-$node" slurmd) ||
			die "slurmd for node $node is not running; '$PROG start' starts it"
		SLURMD_PIDS+=("$pid")
	done
	wait_nodes_idle
	((${#failed[@]} == 0)) ||
		die "node(s) ${failed[*]} could not be started without user namespaces, so they run as usual (see the warnings above)"
	for node in "${nodes[@]}"; do
		pid=$(daemon_pid "slurmd-$node" slurmd) || die "slurmd for node $node died"
		if [[ -n $nouserns ]]; then
			what=$(userns_limit "$pid") || what=
			if ! in_own_userns "$pid" || [[ $what != 0 ]]; then
				die "slurmd for node $node (pid $pid) runs, but not where user namespaces are off (user.max_user_namespaces=${what:-?} in its user namespace $(userns_id "$pid"))"
			fi
		elif in_own_userns "$pid"; then
			die "slurmd for node $node (pid $pid) still runs in a user namespace of its own"
		fi
	done
	what=
	[[ -z $nouserns ]] || what=" without user namespaces (user.max_user_namespaces=0 for their jobs)"
	say "restarted slurmd of ${nodes[*]}$what; usable again after $(seconds_since "$t0")s"
}
