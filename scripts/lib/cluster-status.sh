# scripts/lib/cluster-status.sh: `status`: every daemon, `sinfo -N` and the test user.
#
# Read only: it starts, stops and writes nothing, and takes no lock. Its exit status says
# whether the cluster is usable (0) or not (1), for scripts and tests that ask.
# shellcheck shell=bash

cluster_status() {
	local rc=0 pid name node nodes=() out n s
	status_line() { printf '  %-22s %s\n' "$1" "$2"; }
	echo "base: $BASE"
	echo "daemons:"
	if pid=$(daemon_pid munged munged keep); then
		status_line munged "running (pid $pid)"
	elif command -v munge >/dev/null 2>&1 && munge_ok; then
		status_line munged "running (not started by this script)"
	else
		status_line munged "stopped"
		rc=1
	fi
	for name in mariadbd slurmdbd slurmctld; do
		if pid=$(daemon_pid "$name" "$name" keep); then
			status_line "$name" "running (pid $pid)"
		else
			status_line "$name" "stopped"
			rc=1
		fi
	done
	mapfile -t nodes < <(configured_nodes)
	((${#nodes[@]})) || rc=1
	for node in "${nodes[@]}"; do
		if pid=$(daemon_pid "slurmd-$node" slurmd keep); then
			if in_own_userns "$pid"; then
				status_line "slurmd $node" "running (pid $pid), WITHOUT user namespaces (user.max_user_namespaces=$(userns_limit "$pid" || echo '?') for its jobs; '$PROG restart-node $node' gives them back)"
			elif has_node_mount "$pid" "$node"; then
				status_line "slurmd $node" "running (pid $pid)"
			else
				status_line "slurmd $node" "running (pid $pid), without the node-local mount on $LOCAL_MNT ('start' restarts it when it can)"
			fi
		else
			status_line "slurmd $node" "stopped"
			rc=1
		fi
	done
	while read -r node; do
		[[ -n $node && " ${nodes[*]} " != *" $node "* ]] || continue
		if pid=$(daemon_pid "slurmd-$node" slurmd keep); then
			status_line "slurmd $node" "running (pid $pid) but not configured"
		fi
	done < <(node_pidfiles)
	echo "nodes (sinfo -N):"
	if command -v sinfo >/dev/null 2>&1 && out=$(timeout 10 sinfo -N 2>&1); then
		printf '%s\n' "$out" | sed 's/^/  /'
		local -A st=()
		while read -r n s; do [[ -n ${n:-} ]] && st[$n]=$s; done < <(timeout 10 sinfo -h -N -o '%N %T' 2>/dev/null)
		for node in "${nodes[@]}"; do
			case ${st[$node]:-missing} in
			idle | mixed | allocated | completing) ;;
			*) echo "  node $node is not usable (${st[$node]:-missing})"; rc=1 ;;
			esac
		done
	else
		printf '  %s\n' "${out:-sinfo is not installed}"
		rc=1
	fi
	test_user_status
	if ((rc == 0)); then echo "cluster: up"; else echo "cluster: NOT usable (logs: $LOGD)"; fi
	return "$rc"
}
