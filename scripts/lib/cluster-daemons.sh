# scripts/lib/cluster-daemons.sh: the daemons the nodes depend on.
#
# munged (authentication; one that already works is reused), a private MariaDB on its own
# port and socket (the accounting database) and slurmdbd (accounting): each started by its
# ensure_* when it is not running, and waited for until it answers. start_slurmctld starts
# the controller (`start` and restart-controller decide when). The slurmd of the nodes are in
# cluster-nodes.sh. Each daemon but munged is started by launch (cluster-common.sh), which
# records its pid file in <base>/run.
# shellcheck shell=bash

ensure_munge() {
	local key=/etc/munge/munge.key pid
	if munge_ok; then
		# Ours (pid file) or someone else's: either way reuse it. A stale pid file goes.
		daemon_pid munged munged >/dev/null || true
		return 0
	fi
	if [[ ! -s $key ]]; then
		mkdir -p /etc/munge
		if command -v mungekey >/dev/null 2>&1; then
			mungekey --create --keyfile="$key" >/dev/null
		else
			dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
		fi
		chown munge:munge "$key"
		chmod 400 "$key"
	fi
	mkdir -p /run/munge /var/log/munge /var/lib/munge
	chown munge:munge /run/munge /var/log/munge /var/lib/munge "$key"
	chmod 755 /run/munge
	chmod 700 /var/log/munge /var/lib/munge
	say "starting munged"
	# shellcheck disable=SC2034 # CHANGED is read by cluster_start (cluster-lifecycle.sh)
	CHANGED=1
	printf '==== %(%F %T)T munged\n' -1 >>"$LOGD/munged.out"
	# munged daemonizes and reports its start-up status through its exit code.
	if ! (
		for fd in /proc/self/fd/*; do
			fd=${fd##*/}
			if ((fd > 2)); then exec {fd}>&- 2>/dev/null || true; fi
		done
		exec env -i "${DAEMON_ENV[@]}" runuser -u munge -- munged --force \
			--pid-file=/run/munge/munged.pid --log-file=/var/log/munge/munged.log
	) </dev/null >>"$LOGD/munged.out" 2>&1; then
		tail_logs "$LOGD/munged.out" /var/log/munge/munged.log
		die "munged failed to start; see /var/log/munge/munged.log"
	fi
	local end=$((SECONDS + 15))
	until munge_ok; do
		if ((SECONDS >= end)); then
			tail_logs "$LOGD/munged.out" /var/log/munge/munged.log
			die "munged started but 'munge -n | unmunge' still fails; see /var/log/munge/munged.log"
		fi
		sleep 0.1
	done
	{ read -r pid </run/munge/munged.pid; } 2>/dev/null || pid=
	if is_uint "${pid:-}"; then printf '%s\n' "$pid" >"$RUN/munged.pid"; fi
}

# Before anything is written: the fixed ports of daemons that this script will have to
# start must be free (else another cluster runs that this base does not know about, P15).
preflight_ports() {
	daemon_pid mariadbd mariadbd >/dev/null || require_port_free "$DB_PORT" "MariaDB"
	daemon_pid slurmdbd slurmdbd >/dev/null || require_port_free "$DBD_PORT" "slurmdbd"
	daemon_pid slurmctld slurmctld >/dev/null || require_port_free "$CTLD_PORT" "slurmctld"
}

ensure_mariadb() {
	local pid
	DB_STARTED=0
	daemon_pid mariadbd mariadbd >/dev/null && return 0
	require_port_free "$DB_PORT" "MariaDB"
	mkdir -p -- "$MYSQL" "$MYSQLRUN"
	chown mysql:mysql "$MYSQL" "$MYSQLRUN"
	chmod 750 "$MYSQL"
	chmod 755 "$MYSQLRUN"
	if [[ ! -f $BASE/.mysql-initialized ]]; then
		find "$MYSQL" -mindepth 1 -delete
		say "initialising the accounting database in $MYSQL"
		if ! mariadb-install-db --no-defaults --user=mysql --datadir="$MYSQL" \
			--auth-root-authentication-method=socket --skip-test-db \
			</dev/null >"$LOGD/mariadb-install.log" 2>&1; then
			tail_logs "$LOGD/mariadb-install.log"
			die "mariadb-install-db failed; see $LOGD/mariadb-install.log"
		fi
		touch "$BASE/.mysql-initialized"
	fi
	# mariadbd runs as mysql and must be able to write its error log.
	touch "$LOGD/mariadb.err"
	chown mysql:mysql "$LOGD/mariadb.err"
	launch mariadbd "$LOGD/mariadb.out" mariadbd --no-defaults --user=mysql --datadir="$MYSQL" \
		--socket="$DBSOCK" --pid-file="$MYSQLRUN/mariadbd.pid" --port="$DB_PORT" \
		--bind-address=127.0.0.1 --skip-name-resolve --log-error="$LOGD/mariadb.err" \
		--innodb-buffer-pool-size=512M --innodb-lock-wait-timeout=900
	pid=$LAUNCHED_PID
	say "started mariadbd (pid $pid)"
	wait_for "mariadbd" "$pid" 60 db_ok "$LOGD/mariadb.err" "$LOGD/mariadb.out" "$LOGD/mariadb.err"
	DB_STARTED=1
}

ensure_db_user() {
	local q=${DB_PASS//\'/\'\'}
	db_sql -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$q';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$q';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" >/dev/null 2>>"$LOGD/mariadb.out" || {
		tail_logs "$LOGD/mariadb.out" "$LOGD/mariadb.err"
		die "could not create the MariaDB user 'slurm'; see $LOGD/mariadb.err"
	}
}

ensure_slurmdbd() {
	local pid
	if pid=$(daemon_pid slurmdbd slurmdbd); then
		((DBD_CHANGED || DB_STARTED)) || return 0
		say "restarting slurmdbd ($([[ $DBD_CHANGED == 1 ]] && echo 'config changed' || echo 'database restarted'))"
		stop_daemons slurmdbd:slurmdbd
	fi
	require_port_free "$DBD_PORT" "slurmdbd"
	ensure_db_user
	launch slurmdbd "$LOGD/slurmdbd.out" slurmdbd -D
	pid=$LAUNCHED_PID
	say "started slurmdbd (pid $pid)"
	wait_for "slurmdbd" "$pid" 60 dbd_ok "$LOGD/slurmdbd.log" "$LOGD/slurmdbd.out"
}

# Start slurmctld and wait until it answers; sets CTLD_PID and CTLD_READY_US. Without -c
# it recovers the jobs, nodes and reservations saved in StateSaveLocation.
start_slurmctld() {
	require_port_free "$CTLD_PORT" "slurmctld"
	mkdir -p -- "$STATE"
	launch slurmctld "$LOGD/slurmctld.out" slurmctld -D
	CTLD_PID=$LAUNCHED_PID
	say "started slurmctld (pid $CTLD_PID)"
	wait_for "slurmctld" "$CTLD_PID" 30 ctld_ok "$LOGD/slurmctld.log" "$LOGD/slurmctld.out"
	# shellcheck disable=SC2034 # read by cluster_start (cluster-lifecycle.sh)
	CTLD_READY_US=${EPOCHREALTIME/./}
}
