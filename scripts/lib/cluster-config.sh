# scripts/lib/cluster-config.sh: the configuration files, written and read back.
#
# Renders /etc/slurm/slurm.conf, /etc/slurm/slurmdbd.conf and the jobs' TaskProlog and
# Epilog from the settings (cluster-settings.sh) and the nodes `start` chose, and writes each
# only when it changed (write_configs sets SLURM_CHANGED and DBD_CHANGED, which decide what
# `start` restarts); keeps the accounting database's password; and reads the nodes back
# from the written slurm.conf, for the commands that have no --nodes option (status and the
# restart commands).
# shellcheck shell=bash

# write_managed PATH MODE CONTENT: write CONTENT (plus a newline) to PATH when it differs.
# A file without the managed-by mark is first copied to PATH.bak.<epoch>. Returns 0 when
# the file was (re)written, 1 when it was already up to date.
write_managed() {
	local path=$1 mode=$2 content=$3 cur
	if [[ -f $path ]]; then
		cur=$(<"$path")
		[[ $cur == "$content" ]] && return 1
		if [[ $'\n'$cur$'\n' != *$'\n'"$MARK"$'\n'* ]]; then
			cp -p -- "$path" "$path.bak.${EPOCHSECONDS}" || die "cannot back up $path"
			say "backed up unmanaged $path to $path.bak.*"
		fi
	fi
	# shellcheck disable=SC2034 # CHANGED is read by cluster_start (cluster-lifecycle.sh)
	CHANGED=1
	# (called in an if: set -e is off here, hence the explicit checks)
	{ mkdir -p -- "${path%/*}" && printf '%s\n' "$content" >"$path.tmp.$$" &&
		chmod "$mode" "$path.tmp.$$" && mv -f -- "$path.tmp.$$" "$path"; } ||
		die "cannot write $path"
	return 0
}

render_slurm_conf() {
	local i node port
	cat <<EOF
$MARK
# options: nodes=$NODES cpus=$CPUS mem=$MEM uts=$USE_UTS job_tmpdir=$JOB_TMPDIR base=$BASE
ClusterName=$CLUSTER_NAME
SlurmctldHost=$SHORT(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
MailProg=/bin/true
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL/%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOGD/slurmctld.log
SlurmdLogFile=$LOGD/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
DependencyParameters=kill_invalid_depend
ReturnToService=2
MinJobAge=$MIN_JOB_AGE
KillWait=5
InactiveLimit=0
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=60
TmpFS=/tmp
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=10
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
EOF
	if [[ $BIND_LOOPBACK == 1 ]]; then
		printf 'CommunicationParameters=NoCtldInAddrAny,NoInAddrAny\n'
	fi
	if [[ $JOB_TMPDIR == 1 ]]; then
		printf 'TaskProlog=%s\nEpilog=%s\n' "$ETC/task_prolog.sh" "$ETC/epilog.sh"
	fi
	for ((i = 1; i <= NODES; i++)); do
		node=${NODE_NAMES[i - 1]}
		port=$((SLURMD_PORT_BASE + i))
		printf 'NodeName=%s NodeAddr=127.0.0.1 NodeHostname=%s Port=%s CPUs=%s RealMemory=%s State=UNKNOWN\n' \
			"$node" "$SHORT" "$port" "$CPUS" "$MEM"
	done
	printf 'PartitionName=%s Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n' "$PARTITION"
}

render_dbd_conf() {
	cat <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
DebugLevel=info
LogFile=$LOGD/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
	if [[ $BIND_LOOPBACK == 1 ]]; then
		printf 'CommunicationParameters=NoInAddrAny\n'
	fi
}

render_task_prolog() {
	cat <<EOF
#!/bin/sh
$MARK
# Slurm TaskProlog: runs as the job user before every task; "export NAME=VALUE" lines
# printed on stdout are added to the task's environment.
node=\${SLURMD_NODENAME:-\$(hostname -s)}
root=$NODESD/\$node/scratch
dir=\$root/job_\${SLURM_JOB_ID:-0}
if mkdir -p -m 700 "\$dir" 2>/dev/null && [ -w "\$dir" ]; then
	echo "export TMPDIR=\$dir"
fi
echo "export SLURM_CI_NODE_SCRATCH=\$root"
echo "export SLURM_CI_NODE_LOCAL=$LOCAL_MNT"
exit 0
EOF
}

render_epilog() {
	cat <<EOF
#!/bin/sh
$MARK
# Slurm Epilog: runs as root on every node of a job after it ended; removes the job's
# scratch directory. Always exits 0 (a failing Epilog would drain the node).
case "\${SLURM_JOB_ID:-}" in '' | *[!0-9]*) exit 0 ;; esac
case "\${SLURMD_NODENAME:-}" in '' | */* | .*) exit 0 ;; esac
rm -rf -- "$NODESD/\$SLURMD_NODENAME/scratch/job_\$SLURM_JOB_ID" 2>/dev/null
exit 0
EOF
}

# Sets SLURM_CHANGED / DBD_CHANGED.
write_configs() {
	local name
	if [[ $JOB_TMPDIR == 1 ]]; then
		write_managed "$ETC/task_prolog.sh" 755 "$(render_task_prolog)" || true
		write_managed "$ETC/epilog.sh" 755 "$(render_epilog)" || true
	fi
	SLURM_CHANGED=0 DBD_CHANGED=0
	if write_managed "$SLURM_CONF_FILE" 644 "$(render_slurm_conf)"; then
		# shellcheck disable=SC2034 # read by ensure_slurmctld_and_nodes (cluster-lifecycle.sh)
		SLURM_CHANGED=1
		say "wrote $SLURM_CONF_FILE ($NODES node(s): ${NODE_NAMES[*]}, $CPUS CPUs, $MEM MB each)"
	fi
	if write_managed "$DBD_CONF" 600 "$(render_dbd_conf)"; then
		# shellcheck disable=SC2034 # read by ensure_slurmdbd (cluster-daemons.sh)
		DBD_CHANGED=1
		chown root:root "$DBD_CONF"
		say "wrote $DBD_CONF"
	fi
	for name in "${NODE_NAMES[@]}"; do
		if [[ ! -d $NODESD/$name/scratch || ! -d $NODESD/$name/local || ! -d $SPOOL/$name ]]; then
			mkdir -p -- "$SPOOL/$name" "$NODESD/$name/scratch" "$NODESD/$name/local"
			chmod 1777 "$NODESD/$name/scratch" "$NODESD/$name/local"
		fi
	done
}

ensure_db_pass() {
	local f=$ETC/dbpass
	if [[ ! -s $f ]]; then
		# A throwaway password for a loopback-only test database.
		(umask 077 && od -An -N12 -tx1 /dev/urandom | tr -d ' \n' >"$f")
	fi
	DB_PASS=$(<"$f")
}

# ----------------------------------------------------------------------------- reading it back

# Print the node names of the written slurm.conf, one a line.
configured_nodes() {
	local line
	[[ -f $SLURM_CONF_FILE ]] || return 0
	while read -r line; do
		[[ $line == NodeName=* ]] || continue
		line=${line#NodeName=}
		printf '%s\n' "${line%% *}"
	done <"$SLURM_CONF_FILE"
}

# conf_nodes: sets PORT_OF[node] (and NODE_NAMES, in order) and USE_UTS from the written
# slurm.conf (its NodeName lines and its "# options:" line).
conf_nodes() {
	local line word
	NODE_NAMES=() USE_UTS=0
	PORT_OF=()
	[[ -f $SLURM_CONF_FILE ]] || return 0
	while read -r line; do
		if [[ $line == "# options: "* ]]; then
			for word in $line; do [[ $word == uts=1 ]] && USE_UTS=1; done
		fi
		[[ $line == NodeName=* ]] || continue
		word=${line#NodeName=}
		word=${word%% *}
		NODE_NAMES+=("$word")
		# PORT_OF is the caller's associative array (local -A in cluster_restart_node); checked
		# on its own, this file shows neither that declaration nor a read.
		# shellcheck disable=SC2004,SC2034
		[[ $line =~ \ Port=([0-9]+) ]] && PORT_OF[$word]=${BASH_REMATCH[1]}
	done <"$SLURM_CONF_FILE"
}
