#!/bin/bash
# lab.sh -- pretend cluster nodes on one machine, for mrflow's multi-node
# tests.  A node is a network namespace (its own eth0 and IP on a private
# bridge, real TCP between nodes), its own hostname (UTS namespace) and its
# own mount namespace in which /tmp and /dev/shm are the node's own tmpfs
# (its "local disk", a device of its own) and /etc/hosts and root's ~/.ssh
# are the lab's: spill files, MPI session folders and sockets of one node are
# invisible to the others, exactly as on a cluster.  Everything else (the
# build tree, /var/tmp) is the "shared file system" every node sees.
#
#   lab.sh start DIR N [slurm]  N nodes node1..nodeN, with sshd on each (for
#                               mpirun --host and mpiexec -launcher ssh) and,
#                               with "slurm", slurmctld on the host and one
#                               slurmd per node.  State, logs, keys in DIR
#                               (which must not be under /tmp).  Exit 77 with
#                               the reason when this machine cannot do it
#                               (not root, no namespaces, no sshd).
#   lab.sh on DIR K CMD...      runs CMD inside node K (as a launcher on a
#                               cluster's first node would run); CMD takes
#                               this process's PID, so it can be signalled
#   lab.sh pid DIR K            prints the PID anchoring node K: its
#                               namespaces are /proc/PID/ns/*, its /tmp as
#                               the host sees it /proc/PID/root/tmp
#   lab.sh env DIR              prints the lab's variables (LAB_NET, ...)
#   lab.sh stop DIR             stops every process of the lab by its PID,
#                               removes the namespaces, the bridge and DIR
#
# Facts and pitfalls behind each step: ../shared/notes/multinode-lab.md
# (nsenter, not "ip netns exec", so /sys/fs/cgroup stays visible to slurmd; a
# default route via the bridge so MPICH's proxies reach mpiexec).  Several
# labs may run at once: each takes a free id I (1..200) and uses the subnet
# 10.77.I.0/24, the bridge mrfbrI and namespaces mrfI-nodeK.
set -u
cmd=${1:-}
D=${2:-}
[ -n "$cmd" ] && [ -n "$D" ] || { echo "usage: $0 start|on|env|stop DIR ..." >&2; exit 2; }
D=$(realpath -m "$D")
ENVF=$D/lab.env
# shellcheck source=tests/slurm/conf.sh
. "$(dirname "$0")/../slurm/conf.sh"

die() { echo "lab.sh: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }

alive() { # alive PID: running and not a zombie
    local st
    [ -r "/proc/$1/stat" ] || return 1
    st=$(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1)
    [ "$st" != Z ]
}
stop_pid() { # stop_pid PID: TERM, then KILL after 5 s
    local i
    [ -n "$1" ] && alive "$1" || return 0
    kill "$1" 2> /dev/null
    for i in $(seq 50); do alive "$1" || return 0; sleep 0.1; done
    kill -9 "$1" 2> /dev/null
}
holder() { sed -n "s/^NODE$1_PID=//p" "$ENVF"; } # the PID anchoring node $1
on_node() { # on_node K CMD...: execs CMD in node K (use in a subshell)
    local h
    h=$(holder "$1")
    [ -n "$h" ] && alive "$h" || die "node $1 of $D is not running"
    shift
    exec nsenter -t "$h" --net --uts --mount -- "$@"
}

start() {
    local n=$1 want_slurm=$2 id= net k ip ns h
    [ "$(id -u)" -eq 0 ] || skip "pretend nodes need root (network and mount namespaces)"
    for c in ip nsenter unshare ssh ssh-keygen; do
        command -v "$c" > /dev/null || skip "$c not found (apt-get install iproute2 util-linux openssh-client)"
    done
    [ -x /usr/sbin/sshd ] || skip "sshd not found (apt-get install openssh-server)"
    case $D in /tmp/*) die "DIR must not be under /tmp: every node has its own /tmp" ;; esac
    mkdir -p "$D" || die "cannot create $D"
    # a free lab id: a lock folder, and a subnet no route uses
    for i in $(seq 1 200); do
        ip route | grep -q "^10\.77\.$i\." && continue
        mkdir "/run/mrflow-lab.$i" 2> /dev/null || continue
        id=$i
        break
    done
    [ -n "$id" ] || die "no free lab id (see /run/mrflow-lab.*)"
    echo "$D" > "/run/mrflow-lab.$id/dir"
    net=10.77.$id
    {
        echo "LAB_ID=$id"
        echo "LAB_NET=$net.0/24"
        echo "LAB_HOST_IP=$net.1"
        echo "LAB_BRIDGE=mrfbr$id"
        echo "LAB_NODES=$n"
    } > "$ENVF"
    if ! ip link add "mrfbr$id" type bridge 2> "$D/ip.err"; then
        rm -rf "/run/mrflow-lab.$id"
        skip "cannot create a network bridge here: $(cat "$D/ip.err")"
    fi
    ip addr add "$net.1/24" dev "mrfbr$id" && ip link set "mrfbr$id" up || die "bridge setup failed"

    # what every node shares: ssh keys and client config, /etc/hosts
    mkdir -p "$D/ssh" "$D/dotssh" || die "cannot write $D"
    chmod 700 "$D/dotssh"
    ssh-keygen -q -t ed25519 -N '' -f "$D/ssh/host_ed25519" < /dev/null || die "ssh-keygen failed"
    ssh-keygen -q -t ed25519 -N '' -f "$D/dotssh/id_ed25519" < /dev/null || die "ssh-keygen failed"
    cp "$D/dotssh/id_ed25519.pub" "$D/ssh/authorized_keys"
    printf 'Host *\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  BatchMode yes\n' \
        > "$D/dotssh/config"
    {
        echo "127.0.0.1 localhost"
        echo "$net.1 labhost $(hostname -s)"
        for k in $(seq "$n"); do echo "$net.$((10 + k)) node$k"; done
    } > "$D/hosts"
    home=$(getent passwd root | cut -d: -f6)
    mkdir -p "$home/.ssh" /run/sshd

    for k in $(seq "$n"); do
        ns=mrf$id-node$k
        ip=$net.$((10 + k))
        mkdir -p "$D/node$k/log"
        ip netns add "$ns" || die "ip netns add $ns failed"
        ip link add "mrf${id}v$k" type veth peer name "mrf${id}p$k" &&
            ip link set "mrf${id}v$k" master "mrfbr$id" && ip link set "mrf${id}v$k" up &&
            ip link set "mrf${id}p$k" netns "$ns" &&
            ip -n "$ns" link set "mrf${id}p$k" name eth0 &&
            ip -n "$ns" addr add "$ip/24" dev eth0 && ip -n "$ns" link set eth0 up &&
            ip -n "$ns" link set lo up && ip -n "$ns" route add default via "$net.1" ||
            die "network setup of node$k failed"
        # the node's anchor: holds its UTS and mount namespaces; every
        # process of the node enters them (lab.sh on)
        setsid nsenter --net="/var/run/netns/$ns" unshare --uts --mount --propagation private \
            sh -c "hostname node$k && mount -t tmpfs -o size=${LAB_TMP_SIZE:-2g},mode=1777 tmpfs /tmp &&
                   mount -t tmpfs -o mode=1777 tmpfs /dev/shm &&
                   mount --bind '$D/hosts' /etc/hosts && mount --bind '$D/dotssh' '$home/.ssh' &&
                   exec sleep infinity" < /dev/null > "$D/node$k/log/anchor.log" 2>&1 &
        h=$!
        echo "NODE${k}_PID=$h" >> "$ENVF"
        echo "NODE${k}_IP=$ip" >> "$ENVF"
    done
    # anchors up (hostname set): the sleep has replaced the shell
    for k in $(seq "$n"); do
        h=$(holder "$k")
        for i in $(seq 100); do
            [ "$(cat "/proc/$h/comm" 2> /dev/null)" = sleep ] && break
            alive "$h" || die "node$k did not start: $(cat "$D/node$k/log/anchor.log")"
            sleep 0.05
        done
        [ "$(on_node "$k" hostname)" = "node$k" ] || die "node$k has the wrong hostname"
    done
    for k in $(seq "$n"); do
        cat > "$D/node$k/sshd_config" << CONF
ListenAddress $net.$((10 + k))
HostKey $D/ssh/host_ed25519
PidFile $D/node$k/sshd.pid
AuthorizedKeysFile $D/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AcceptEnv LANG LC_*
CONF
        on_node "$k" /usr/sbin/sshd -D -e -f "$D/node$k/sshd_config" < /dev/null \
            > "$D/node$k/log/sshd.log" 2>&1 &
        echo "NODE${k}_SSHD=$!" >> "$ENVF"
    done
    for k in $(seq "$n"); do
        for i in $(seq 100); do
            (on_node 1 ssh -o ConnectTimeout=2 "node$k" true) 2> /dev/null && break
            [ "$i" -eq 100 ] && die "ssh node1 -> node$k does not work: $(cat "$D/node$k/log/sshd.log")"
            sleep 0.1
        done
    done
    [ -n "$want_slurm" ] && start_slurm "$n" "$net"
    return 0
}

start_slurm() {
    local n=$1 net=$2 L=$D/slurm port k state
    for c in munged slurmctld slurmd sinfo sbatch scontrol; do
        command -v "$c" > /dev/null || {
            echo "SLURM=none (no $c: apt-get install slurmctld slurmd slurm-client munge)" >> "$ENVF"
            return 0
        }
    done
    port=6837
    while ss -ltn | awk '{ print $4 }' | grep -qE ":($port|$((port + 1)))\$"; do port=$((port + 2)); done
    mkdir -p "$L/etc" "$L/state/ctld" "$L/run" "$L/log" || die "cannot write $L"
    chmod 711 "$D"
    {
        echo "# A private Slurm over the pretend nodes of tests/nodes/lab.sh."
        echo "ClusterName=mrflownodes"
        echo "SlurmctldHost=$(hostname -s)($net.1)"
        slurm_conf_body "$L" "$port" linuxproc
    } > "$L/etc/slurm.conf" || die "cannot write $L/etc/slurm.conf"
    for k in $(seq "$n"); do
        mkdir -p "$L/state/slurmd-node$k"
        echo "NodeName=node$k NodeAddr=$net.$((10 + k)) CPUs=${LAB_CPUS:-4} RealMemory=1000 State=UNKNOWN"
    done >> "$L/etc/slurm.conf"
    echo "PartitionName=lab Nodes=node[1-$n] Default=YES MaxTime=INFINITE State=UP" >> "$L/etc/slurm.conf"
    export SLURM_CONF=$L/etc/slurm.conf
    start_munged "$L" || die "munged did not start (above)"
    slurmctld -c -i < /dev/null > /dev/null 2>&1 || die "slurmctld failed: see $L/log/slurmctld.log"
    for k in $(seq "$n"); do
        (on_node "$k" slurmd -N "node$k") < /dev/null > /dev/null 2>&1 ||
            die "slurmd on node$k failed: see $L/log/slurmd-node$k.log"
    done
    for i in $(seq 150); do
        state=$(sinfo -h -N -o %t 2> /dev/null | sort -u | tr '\n' ' ')
        [ "$state" = "idle " ] && break
        [ "$i" -eq 150 ] && die "the nodes did not become idle ($state): see $L/log/"
        sleep 0.1
    done
    echo "SLURM_CONF=$SLURM_CONF" >> "$ENVF"
}

stop() {
    [ -f "$ENVF" ] || { rm -rf "$D"; return 0; }
    # shellcheck disable=SC1090
    . "$ENVF"
    local L=$D/slurm k ns p
    if [ -n "${SLURM_CONF:-}" ] && [ -f "$SLURM_CONF" ]; then
        export SLURM_CONF
        scancel --full --signal=KILL -u root 2> /dev/null
        scancel -u root 2> /dev/null
        for k in $(seq "$LAB_NODES"); do stop_pid "$(cat "$L/run/slurmd-node$k.pid" 2> /dev/null)"; done
        stop_pid "$(cat "$L/run/slurmctld.pid" 2> /dev/null)"
    fi
    for k in $(seq "$LAB_NODES"); do
        stop_pid "$(sed -n "s/^NODE${k}_SSHD=//p" "$ENVF")"
        ns=mrf$LAB_ID-node$k
        # whatever still runs inside the node (ranks, slurmstepd, orted)
        for p in $(ip netns pids "$ns" 2> /dev/null); do kill -9 "$p" 2> /dev/null; done
        stop_pid "$(holder "$k")"
        ip netns del "$ns" 2> /dev/null
    done
    [ -f "$L/munge/munged.pid" ] && stop_pid "$(cat "$L/munge/munged.pid")"
    ip link del "mrfbr$LAB_ID" 2> /dev/null
    rm -rf "/run/mrflow-lab.$LAB_ID"
    [ -n "${LAB_KEEP:-}" ] || rm -rf "$D"
}

case $cmd in
start) start "${3:-2}" "${4:-}" ;;
on)
    k=${3:?node number}
    shift 3
    on_node "$k" "$@"
    ;;
env) cat "$ENVF" ;;
pid) holder "${3:?node number}" ;;
stop) stop ;;
*)
    echo "usage: $0 start|on|env|stop DIR ..." >&2
    exit 2
    ;;
esac
