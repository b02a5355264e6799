# scripts/lib/cluster-lifecycle.sh: the whole cluster up (`start`) and down (`stop`).
#
# cluster_start runs the steps in their order: the machine (cluster-install.sh), the
# configuration (cluster-config.sh), munged, MariaDB and slurmdbd (cluster-daemons.sh), the
# test user (user.sh), then slurmctld and the nodes (cluster-nodes.sh), and waits until every
# node is usable. Each step does nothing when its part already runs as configured, so a
# second `start` is a no-op; a changed slurm.conf restarts slurmctld and every slurmd.
# cluster_stop cancels the jobs and stops the daemons this script started, top down.
# The options were read and checked by scripts/slurm-cluster.
# shellcheck shell=bash

# cluster_start NODES CPUS MEM: start (or keep) the cluster with NODES nodes of CPUS CPUs
# (empty: as detected) and MEM MB (empty: the detected memory shared by the nodes) each.
cluster_start() {
	local t_start=$EPOCHREALTIME nodes=$1 cpus=$2 mem=$3 i
	need_root start
	trap on_exit EXIT
	trap 'DIED=1; echo "${PROG##*/}: interrupted" >&2; exit 130' INT TERM
	take_lock

	# shellcheck disable=SC2153 # NODESD is a setting (cluster-settings.sh), not a misspelt NODES
	mkdir -p -- "$RUN" "$LOGD" "$ETC" "$STATE" "$SPOOL" "$NODESD" "$LOCAL_MNT"
	chmod 755 "$BASE" "$ETC" "$NODESD"
	chmod 1777 "$LOCAL_MNT"
	ensure_packages
	SHORT=$(hostname -s 2>/dev/null || uname -n)
	SHORT=${SHORT%%.*}
	[[ -n $SHORT ]] || die "cannot determine the short hostname ('hostname -s' printed nothing)"
	detect_hw

	NODES=$nodes
	CPUS=${cpus:-$HW_CPUS}
	MEM=${mem:-$((HW_MEM / NODES))}
	NODE_NAMES=()
	if ((NODES == 1)); then
		NODE_NAMES=("$SHORT")
		USE_UTS=0
	else
		for ((i = 1; i <= NODES; i++)); do NODE_NAMES+=("node$i"); done
		USE_UTS=$([[ $NODE_UTS == 1 ]] && echo 1 || echo 0)
	fi
	if [[ $USE_UTS == 1 ]]; then ensure_hosts "${NODE_NAMES[@]}"; else ensure_hosts; fi

	preflight_ports
	probe_node_mount
	ensure_db_pass
	write_configs
	ensure_munge
	ensure_mariadb
	ensure_slurmdbd
	ensure_test_user
	ensure_test_user_assoc
	ensure_slurmctld_and_nodes
	wait_nodes_idle
	if [[ -n ${CTLD_READY_US:-} ]]; then
		# slurmctld's first scheduling pass comes ~3.3 s after it is up; a job submitted
		# before waits for it. Sleep until ready + GRACE, so the first test job does not.
		local left
		left=$(awk -v r="$CTLD_READY_US" -v n="${EPOCHREALTIME/./}" -v g="$GRACE" \
			'BEGIN { l = (r + g * 1e6 - n) / 1e6; printf "%.2f", (l > 0 ? l : 0) }')
		[[ $left == 0.00 ]] || sleep "$left"
	fi
	local took
	took=$(awk -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	if ((CHANGED)); then
		say "cluster ready in ${took}s: ${NODES} idle node(s) (${NODE_NAMES[*]}), $CPUS CPUs and $MEM MB each; logs in $LOGD"
	else
		say "cluster already running (${NODES} node(s): ${NODE_NAMES[*]}, $CPUS CPUs each); nothing to do"
	fi
}

ensure_slurmctld_and_nodes() {
	local pid node i port specs=()
	# slurmd of nodes that are no longer configured
	while read -r node; do
		[[ -n $node ]] || continue
		[[ " ${NODE_NAMES[*]} " == *" $node "* ]] || specs+=("slurmd-$node:slurmd")
	done < <(node_pidfiles)
	if ((SLURM_CHANGED)); then
		# A changed slurm.conf needs a full restart (scontrol reconfigure cannot change the
		# node set: "MaxNodeCount has changed ... slurmctld must be restarted").
		specs+=(slurmctld:slurmctld)
		for node in "${NODE_NAMES[@]}"; do specs+=("slurmd-$node:slurmd"); done
	elif ((NODE_MOUNT)); then
		# A slurmd without the node-local mount (e.g. started by an older version of this
		# script) is restarted, so that the layout takes effect; slurmctld keeps running.
		for node in "${NODE_NAMES[@]}"; do
			if pid=$(daemon_pid "slurmd-$node" slurmd) && ! has_node_mount "$pid" "$node"; then
				say "restarting slurmd for node $node (pid $pid): it lacks the node-local mount $NODESD/$node/local on $LOCAL_MNT (started by an older version of this script?)"
				specs+=("slurmd-$node:slurmd")
			fi
		done
	fi
	((${#specs[@]} == 0)) || stop_daemons "${specs[@]}"

	# shellcheck disable=SC2034 # read by wait_nodes_idle (cluster-nodes.sh)
	CTLD_PID=$(daemon_pid slurmctld slurmctld) || start_slurmctld

	# shellcheck disable=SC2034 # the new slurmd: start_slurmd adds, wait_nodes_idle reads (cluster-nodes.sh)
	SLURMD_PIDS=() NEW_SLURMD_PORTS=() REGISTERED_SINCE=()
	for ((i = 1; i <= NODES; i++)); do
		node=${NODE_NAMES[i - 1]}
		port=$((SLURMD_PORT_BASE + i))
		if pid=$(daemon_pid "slurmd-$node" slurmd); then
			SLURMD_PIDS+=("$pid")
			if in_own_userns "$pid"; then
				warn "node $node runs without user namespaces ('$PROG restart-node $node --no-user-namespaces'); '$PROG restart-node $node' gives them back"
			fi
			continue
		fi
		start_slurmd "$node" "$port"
	done
}

# cluster_stop PURGE: stop the cluster; with PURGE=1 also delete <base>.
cluster_stop() {
	local purge=$1 ids end specs=() node
	need_root stop
	trap on_exit EXIT
	if [[ ! -d $BASE ]]; then
		say "nothing to stop ($BASE does not exist)"
		return 0
	fi
	take_lock
	if [[ -f $RUN/slurmctld.pid ]] && daemon_pid slurmctld slurmctld >/dev/null && ctld_ok; then
		ids=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ') || ids=
		if [[ -n ${ids// /} ]]; then
			say "cancelling jobs: $ids"
			# shellcheck disable=SC2086 # $ids: the job ids, split into one argument each on purpose
			scancel $ids 2>/dev/null || true
			end=$((SECONDS + 10))
			while [[ -n $(squeue -h -o %A 2>/dev/null) ]] && ((SECONDS < end)); do sleep 0.2; done
		fi
	fi
	specs=(slurmctld:slurmctld)
	while read -r node; do [[ -n $node ]] && specs+=("slurmd-$node:slurmd"); done < <(node_pidfiles)
	stop_daemons "${specs[@]}"
	stop_daemons slurmdbd:slurmdbd
	stop_daemons mariadbd:mariadbd munged:munged
	if ((purge)); then
		rm -rf -- "$BASE"
		say "stopped; removed $BASE"
	else
		say "stopped (state kept in $BASE; '$PROG stop --purge' removes it)"
	fi
}
