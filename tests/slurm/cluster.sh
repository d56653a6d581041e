#!/bin/bash
# cluster.sh -- a private, real single-node Slurm cluster (munged, slurmctld,
# slurmd from Debian's packages) for mrflow's Slurm tests.
#
#   tests/slurm/cluster.sh start DIR   config, state and logs in DIR; prints
#                                      the SLURM_CONF to export; exit 77 when
#                                      the Slurm packages are missing
#   tests/slurm/cluster.sh stop DIR    cancels its jobs, stops its daemons by
#                                      their PIDs, removes DIR
#
# What this machine needs and why each setting is there:
# ../shared/notes/slurm-single-node.md.  Only processes that carry this
# cluster's SLURM_CONF or PIDs are ever signalled.  Knobs: SLURM_LAB_CPUS
# (CPUs the node claims, default 8: more than the cores is allowed),
# SLURM_LAB_PROCTRACK=cgroup|linuxproc (default: cgroup if the v1 freezer
# hierarchy is writable), SLURM_LAB_PORT (slurmctld's; slurmd's is +1).
set -u
cmd=${1:-}
L=${2:-}
[ -n "$cmd" ] && [ -n "$L" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
L=$(realpath -m "$L")
conf=$L/etc/slurm.conf
port=${SLURM_LAB_PORT:-6817}
# shellcheck source=tests/slurm/conf.sh
. "$(dirname "$0")/conf.sh"

alive() { # alive PID NAME: running (not a zombie) and named NAME
    local st
    [ -r "/proc/$1/stat" ] || return 1
    st=$(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1)
    [ "$st" != Z ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}

stop_pid() { # stop_pid PIDFILE NAME
    local pid i
    pid=$(cat "$1" 2>/dev/null) || return 0
    alive "$pid" "$2" || return 0
    kill "$pid" 2>/dev/null
    for i in $(seq 50); do alive "$pid" "$2" || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
}

# every process whose environment names this cluster's config
ours() {
    local e p
    for e in /proc/[0-9]*/environ; do
        p=${e#/proc/}
        p=${p%/environ}
        [ "$p" = $$ ] && continue
        { tr '\0' '\n' < "$e"; } 2> /dev/null | grep -qx "SLURM_CONF=$conf" && echo "$p"
    done
}

case $cmd in
start)
    for c in munged slurmctld slurmd sinfo sbatch scontrol; do
        command -v "$c" > /dev/null || {
            echo "SKIP: $c not found (apt-get install slurmctld slurmd slurm-client munge)" >&2
            exit 77
        }
    done
    if ss -ltn 2>/dev/null | awk '{ print $4 }' | grep -qE ":($port|$((port + 1)))\$"; then
        echo "cluster.sh: port $port or $((port + 1)) is in use (another Slurm?); set SLURM_LAB_PORT" >&2
        exit 1
    fi
    mkdir -p "$L"/etc "$L"/state/ctld "$L"/state/slurmd-localhost "$L"/run "$L"/log || exit 1
    proctrack=${SLURM_LAB_PROCTRACK:-}
    if [ -z "$proctrack" ]; then
        proctrack=linuxproc
        [ -w /sys/fs/cgroup/freezer ] && proctrack=cgroup
    fi
    mem=$(awk '/^MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
    {
        echo "# Private single-node Slurm for mrflow's tests (tests/slurm/cluster.sh)."
        echo "ClusterName=mrflowlab"
        echo "SlurmctldHost=localhost"
        slurm_conf_body "$L" "$port" "$proctrack"
        echo "NodeName=localhost NodeAddr=127.0.0.1 CPUs=${SLURM_LAB_CPUS:-8} RealMemory=$mem State=UNKNOWN"
        echo "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP"
    } > "$conf" || exit 1
    if [ "$proctrack" = cgroup ]; then
        printf 'CgroupPlugin=cgroup/v1\nCgroupAutomount=no\nConstrainCores=no\nConstrainRAMSpace=no\n' \
            > "$L/etc/cgroup.conf"
    fi
    export SLURM_CONF=$conf
    start_munged "$L" || exit 1
    slurmctld -c -i < /dev/null > /dev/null 2>&1 ||
        { echo "cluster.sh: slurmctld failed: see $L/log/slurmctld.log" >&2; exit 1; }
    slurmd -N localhost < /dev/null > /dev/null 2>&1 ||
        { echo "cluster.sh: slurmd failed: see $L/log/slurmd-localhost.log" >&2; exit 1; }
    for i in $(seq 100); do
        state=$(sinfo -h -N -o %t 2>/dev/null | head -n 1)
        [ "$state" = idle ] && { echo "$conf"; exit 0; }
        sleep 0.1
    done
    echo "cluster.sh: the node did not become idle (state '$state'): see $L/log/" >&2
    exit 1
    ;;
stop)
    export SLURM_CONF=$conf
    if [ -f "$conf" ] && alive "$(cat "$L/run/slurmctld.pid" 2>/dev/null)" slurmctld; then
        scancel --full --signal=KILL -u "$(id -un)" 2> /dev/null
        scancel -u "$(id -un)" 2> /dev/null
    fi
    stop_pid "$L/run/slurmd-localhost.pid" slurmd
    stop_pid "$L/run/slurmctld.pid" slurmctld
    # job processes and slurmstepd are daemons of their own: find them by config
    for p in $(ours); do kill -9 "$p" 2> /dev/null; done
    stop_pid "$L/munge/munged.pid" munged
    # proctrack/cgroup's folders (the name is fixed: one such cluster per host)
    for d in /sys/fs/cgroup/*/slurm_localhost; do
        [ -d "$d" ] || continue
        find "$d" -name cgroup.procs -exec cat {} + 2> /dev/null | while read -r p; do
            kill -9 "$p" 2> /dev/null
        done
        find "$d" -depth -type d -exec rmdir {} + 2> /dev/null
    done
    [ -n "${SLURM_LAB_KEEP:-}" ] || rm -rf "$L"
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
