# shellcheck shell=bash
# conf.sh -- what the test clusters have in common, sourced by
# tests/slurm/cluster.sh (one node) and tests/nodes/lab.sh (pretend nodes):
# the body of slurm.conf and starting munged.  Why each setting is there:
# ../shared/notes/slurm-single-node.md.

# slurm_conf_body L PORT PROCTRACK: the settings both clusters use, with
# state, PIDs and logs under L and slurmd's files named per node (%n);
# slurmctld listens on PORT, slurmd on PORT + 1.  The caller adds
# ClusterName, SlurmctldHost, its nodes and its partition.
slurm_conf_body() {
    local L=$1 port=$2 proctrack=$3
    cat << CONF
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits to start again (default 120 s)
AuthInfo=socket=$L/munge/munge.socket.2,cred_expire=10
StateSaveLocation=$L/state/ctld
SlurmdSpoolDir=$L/state/slurmd-%n
SlurmctldPidFile=$L/run/slurmctld.pid
SlurmdPidFile=$L/run/slurmd-%n.pid
SlurmctldLogFile=$L/log/slurmctld.log
SlurmdLogFile=$L/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
ProctrackType=proctrack/$proctrack
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$L/log/jobcomp.txt
MinJobAge=86400
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2,batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
ReturnToService=2
KillWait=5
InactiveLimit=0
SlurmdParameters=config_overrides
CONF
}

# start_munged L: munged with the key L/munge/munge.key (made if missing)
# and its socket, PID and log under L/munge; 1 with munged's words on
# standard error if it does not start.  Its socket folder, and every folder
# above it, must be reachable by all and writable by none of them.
start_munged() {
    local L=$1
    mkdir -p "$L/munge" "$L/log" && chmod 711 "$L" "$L/munge" || return 1
    [ -f "$L/munge/munge.key" ] || {
        head -c 1024 /dev/urandom > "$L/munge/munge.key" && chmod 400 "$L/munge/munge.key"
    } || return 1
    munged --key-file="$L/munge/munge.key" --socket="$L/munge/munge.socket.2" \
        --pid-file="$L/munge/munged.pid" --log-file="$L/munge/munged.log" \
        --seed-file="$L/munge/munged.seed" < /dev/null > "$L/log/munged.out" 2>&1 || {
        echo "munged failed to start:" >&2
        cat "$L/log/munged.out" >&2
        return 1
    }
}
