# scripts/lib/cluster-settings.sh: the settings of scripts/slurm-cluster, in one place.
#
# Where everything lives (<base> and its folders, the config files in /etc/slurm), the
# cluster's names and fixed ports, the SLURM_CLUSTER_* variables that are not options of
# `start` (those are read in scripts/slurm-cluster), the clean environment the daemons get,
# and the state that the steps of a command share (CHANGED, the new slurmd). Sourced first:
# besides the assignments it sets PATH, unsets the SLURM client variables and sets the umask.
# Every variable here is read by scripts/slurm-cluster or the other cluster-*.sh; checking
# each file on its own, the linter cannot see that: hence SC2034 (unused) is off here.
# shellcheck shell=bash disable=SC2034

BASE=${SLURM_CLUSTER_DIR:-/var/tmp/snakemake-frozen-slurm}
RUN=$BASE/run
LOGD=$BASE/log
ETC=$BASE/etc
STATE=$BASE/state
SPOOL=$BASE/spool
NODESD=$BASE/nodes
LOCAL_MNT=$BASE/local # each node's $NODESD/<node>/local is bind-mounted here (own mount ns)
MYSQL=$BASE/mysql
MYSQLRUN=$BASE/mysqlrun
DBSOCK=$MYSQLRUN/mysqld.sock

SLURM_CONF_FILE=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf

CLUSTER_NAME=ci
PARTITION=debug
CTLD_PORT=6817
DBD_PORT=6819
SLURMD_PORT_BASE=6830
DB_PORT=13306

MIN_JOB_AGE=${SLURM_CLUSTER_MIN_JOB_AGE:-300}
JOB_TMPDIR=${SLURM_CLUSTER_JOB_TMPDIR:-1}
NODE_UTS=${SLURM_CLUSTER_NODE_UTS:-1}
WAIT_IDLE=${SLURM_CLUSTER_WAIT:-90}
GRACE=${SLURM_CLUSTER_GRACE:-3.5}

# The daemons get a clean environment: nothing from the caller (CI variables, SLURM_CONF,
# TMPDIR, ...) leaks into them.
SYS_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
DAEMON_ENV=(PATH="$SYS_PATH" LANG=C.UTF-8 HOME=/root)

export PATH="$PATH:$SYS_PATH"
# Our own client calls must use the config this script writes.
unset SLURM_CONF SINFO_FORMAT SQUEUE_FORMAT SQUEUE_STATES SLURM_CLUSTERS
umask 022

CHANGED=0 # set to 1 when start changed anything (config written, a daemon started/stopped)
# Filled by start_slurmd for wait_nodes_idle.
SLURMD_PIDS=() NEW_SLURMD_PORTS=() REGISTERED_SINCE=()
