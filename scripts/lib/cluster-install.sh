# scripts/lib/cluster-install.sh: the machine, before any configuration is written.
#
# The Debian packages the cluster needs (installed when a command is missing, with a
# temporary policy-rc.d so that their scripts start no daemon), host names that resolve
# (an /etc/hosts line for one that does not) and the CPUs and memory slurmd reports.
# Used by `start` (scripts/lib/cluster-lifecycle.sh).
# shellcheck shell=bash

# ----------------------------------------------------------------------------- Debian packages

ensure_packages() {
	local pkgs=() log=$LOGD/apt.log
	command -v slurmctld >/dev/null 2>&1 || pkgs+=(slurmctld)
	command -v slurmd >/dev/null 2>&1 || pkgs+=(slurmd)
	command -v sbatch >/dev/null 2>&1 || pkgs+=(slurm-client)
	command -v slurmdbd >/dev/null 2>&1 || pkgs+=(slurmdbd)
	command -v munged >/dev/null 2>&1 || pkgs+=(munge)
	{ command -v mariadbd && command -v mariadb && command -v mariadb-install-db; } >/dev/null 2>&1 ||
		pkgs+=(mariadb-server)
	((${#pkgs[@]})) || return 0

	command -v apt-get >/dev/null 2>&1 ||
		die "missing ${pkgs[*]} and no apt-get here; this script needs Debian 12 (bookworm)"
	say "installing Debian packages: ${pkgs[*]} (log: $log)"
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		# Keep package scripts from starting the daemons: this script starts them itself.
		printf '#!/bin/sh\n%s\nexit 101\n' "$MARK (temporary)" >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		POLICY_CREATED=1
	fi
	local rc=0
	{
		DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 update &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
				-o DPkg::Lock::Timeout=600 "${pkgs[@]}"
	} </dev/null >"$log" 2>&1 || rc=$?
	if ((POLICY_CREATED)); then
		rm -f /usr/sbin/policy-rc.d
		POLICY_CREATED=0
	fi
	if ((rc)); then
		tail_logs "$log"
		die "apt-get failed (exit $rc) installing ${pkgs[*]}; see $log"
	fi
	local c
	for c in slurmctld slurmd sbatch slurmdbd munged mariadbd mariadb mariadb-install-db; do
		command -v "$c" >/dev/null 2>&1 || die "'$c' is still missing after installing ${pkgs[*]}; see $log"
	done
}

# ----------------------------------------------------------------------------- host, hardware

# Sets SHORT (short hostname). Makes SHORT and every node name resolve (an /etc/hosts
# line for a name that does not), and sets BIND_LOOPBACK=1 when all of them resolve to
# 127.x: then the daemons bind that address instead of 0.0.0.0 (CommunicationParameters
# NoInAddrAny/NoCtldInAddrAny bind the address of gethostname(), which inside a node's
# UTS namespace is the node name).
ensure_hosts() {
	local name addr
	BIND_LOOPBACK=1
	for name in "$SHORT" "$@"; do
		if ! getent hosts "$name" >/dev/null 2>&1; then
			# (a last line without its newline would otherwise be glued to ours)
			if [[ -s /etc/hosts && -n $(tail -c1 /etc/hosts) ]]; then echo >>/etc/hosts; fi
			printf '127.0.0.1\t%s\t%s\n' "$name" "$MARK" >>/etc/hosts
			say "added '127.0.0.1 $name' to /etc/hosts (it did not resolve)"
		fi
		addr=$(getent ahostsv4 "$name" 2>/dev/null | head -n1) || addr=
		if [[ $addr != 127.* ]]; then
			# shellcheck disable=SC2034 # read by render_slurm_conf and render_dbd_conf (cluster-config.sh)
			BIND_LOOPBACK=0
			warn "'$name' resolves to '${addr%% *}', not to 127.x; slurmd and slurmctld will listen on all addresses"
		fi
	done
}

# Sets HW_CPUS and HW_MEM (MB) from `slurmd -C` (fast, works without a config).
detect_hw() {
	local out memkb="" line
	out=$(slurmd -C 2>/dev/null) || out=
	HW_CPUS=$(sed -n 's/.*[[:space:]]CPUs=\([0-9]*\).*/\1/p' <<<"$out" | head -n1)
	HW_MEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$out" | head -n1)
	if ! is_uint "${HW_CPUS:-}" || ! is_uint "${HW_MEM:-}"; then
		warn "could not parse 'slurmd -C' output ($out); using nproc and /proc/meminfo"
		while read -r line; do
			[[ $line == MemTotal:* ]] && memkb=${line//[^0-9]/} && break
		done </proc/meminfo
		HW_CPUS=$(nproc --all)
		HW_MEM=$((memkb / 1024))
	fi
}
