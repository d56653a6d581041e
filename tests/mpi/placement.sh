# placement.sh -- hwloc placement (src/topo.c).  Where the ranks really run
# is read from the kernel (/proc/PID/status Cpus_allowed_list of each rank
# process, found as mpiexec's children and named by OMPI_COMM_WORLD_RANK in
# their environment) while they are paused in the map, then compared with
# the binding asked for and with the run report.  Launcher bindings (mpiexec
# --bind-to, taskset) must be kept; oversubscription warned once; every run's
# output equals a coreutils count.  1, 2 and 4 ranks.
. "$TOP_SRCDIR/tests/mpi/lib.sh"

"$MRFLOW" gen text --size 8M --output "$WORK/in.txt" > /dev/null || exit 99
ref_wordcount "$WORK/in.txt" > "$WORK/ref" || exit 99
ncpu=$(nproc)
all_cpus=$(awk '/^Cpus_allowed_list/ { print $2 }' /proc/self/status)

# placed NP TAG MPIEXEC-ARGS... -- PROGRAM-PREFIX... -- MRFLOW-RUN-ARGS...
# Runs wordcount paused after each rank's first map task, writes
# "RANK CPUS" per rank process to $WORK/TAG.proc, lets it go on, and leaves
# its exit status in rc, its stderr in $WORK/TAG.log, its output in
# $WORK/TAG.out.
placed() {
    local np=$1 tag=$2 margs=() pre=() pid c r t0=$SECONDS t1
    shift 2
    while [ "$1" != -- ]; do margs+=("$1"); shift; done
    shift
    while [ "$1" != -- ]; do pre+=("$1"); shift; done
    shift
    rm -rf "$WORK"/pause.* "$WORK/$tag.out"
    MRFLOW_TEST_PAUSE=map MRFLOW_TEST_PAUSE_FILE=$WORK/pause \
        "$MPIEXEC" -np "$np" --mca btl self,tcp "${margs[@]}" "${pre[@]}" "$MRFLOW" run wordcount \
        --input "$WORK/in.txt" --output "$WORK/$tag.out" --task-size 512K --quiet "$@" \
        > "$WORK/$tag.log" 2>&1 &
    pid=$!
    wait_paused "$np" "$pid"
    : > "$WORK/$tag.proc"
    for c in $(pgrep -P "$pid"); do
        r=$(tr '\0' '\n' < "/proc/$c/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
        [ -n "$r" ] || continue
        echo "$r $(awk '/^Cpus_allowed_list/ { print $2 }' "/proc/$c/status")" >> "$WORK/$tag.proc"
    done
    sort -n -o "$WORK/$tag.proc" "$WORK/$tag.proc"
    t1=$SECONDS
    touch "$WORK/pause.go"
    wait_dog "$pid"
    echo "# $tag: paused after $((t1 - t0)) s, done after $((SECONDS - t0)) s"
}

# from_report TAG FIELD: "RANK VALUE" per rank of the run report's ranks_detail
from_report() {
    grep -o "{\"rank\": [0-9]*, [^}]*" "$WORK/$1.out/_REPORT.json" |
        sed -n "s/^{\"rank\": \([0-9]*\), .*\"$2\": \"\{0,1\}\([^\",]*\)\"\{0,1\}.*/\1 \2/p"
}

# checks TAG NP: the common checks of a run
checks() {
    local tag=$1 np=$2
    check "$tag: exit 0" [ "$rc" -eq 0 ]
    check "$tag: counts equal coreutils'" cmp -s <(cat "$WORK/$tag.out"/part-* | sort) "$WORK/ref"
    check "$tag: every rank process seen in /proc ($np)" [ "$(wc -l < "$WORK/$tag.proc")" -eq "$np" ]
    check "$tag: report's cpusets are the kernel's" cmp -s <(from_report "$tag" cpuset) "$WORK/$tag.proc"
}

if [ "$ncpu" -lt 2 ]; then
    echo "SKIP: placement tests need 2 or more CPUs (this machine has $ncpu)"
    exit 77
fi

# 1. two unbound ranks: mrflow binds each to a core of its own
placed 2 auto2 --bind-to none -- -- 
checks auto2 2
check "auto2: each rank on one CPU, distinct" \
    [ "$(cut -d' ' -f2 "$WORK/auto2.proc" | grep -c -E '^[0-9]+$')" -eq 2 -a \
      "$(cut -d' ' -f2 "$WORK/auto2.proc" | sort -u | wc -l)" -eq 2 ]
check "auto2: report says mrflow bound them" \
    [ "$(from_report auto2 bound_by | grep -c ' mrflow$')" -eq 2 ]
check "auto2: map output pages on the rank's NUMA node" \
    cmp -s <(from_report auto2 numa_node) <(from_report auto2 map_output_numa)
check "auto2: no placement warning" [ "$(grep -c "placement:" "$WORK/auto2.log")" -eq 0 ]

# 2. one unbound rank: core 0's... one core
placed 1 auto1 --bind-to none -- -- 
checks auto1 1
check "auto1: the rank is on one CPU" grep -q -E '^0 [0-9]+$' "$WORK/auto1.proc"

# 3. mpiexec's own binding (--bind-to core) is kept and reported as the launcher's
placed 2 mpibind --bind-to core --map-by core -- -- 
checks mpibind 2
check "mpibind: report says the launcher bound them" \
    [ "$(from_report mpibind bound_by | grep -c ' launcher$')" -eq 2 ]

# 4. a binding mrflow would not choose (both ranks on the last CPU) is kept
last=$((ncpu - 1))
placed 2 taskset --bind-to none -- taskset -c "$last" -- 
checks taskset 2
check "taskset: both ranks stay on CPU $last" \
    [ "$(cut -d' ' -f2 "$WORK/taskset.proc" | sort -u)" = "$last" ]
check "taskset: report says launcher" \
    [ "$(from_report taskset bound_by | grep -c ' launcher$')" -eq 2 ]

# 5. more ranks than hardware threads: a warning (once), no binding, right output
np=$((ncpu * 2))
placed "$np" over --oversubscribe --bind-to none -- -- 
checks over "$np"
check "over: one placement warning" [ "$(grep -c "placement:" "$WORK/over.log")" -eq 1 ]
check "over: ranks unbound (all CPUs: $all_cpus)" \
    [ "$(cut -d' ' -f2 "$WORK/over.proc" | sort -u)" = "$all_cpus" ]
check "over: report says none" [ "$(from_report over bound_by | grep -c ' none$')" -eq "$np" ]

# 6. --bind none and --bind numa
placed 2 none --bind-to none -- -- --bind none
checks none 2
check "none: ranks on all CPUs" [ "$(cut -d' ' -f2 "$WORK/none.proc" | sort -u)" = "$all_cpus" ]
placed 2 numa --bind-to none -- -- --bind numa
checks numa 2
node_cpus=$(cat /sys/devices/system/node/node"$(from_report numa numa_node | head -1 | cut -d' ' -f2)"/cpulist 2>/dev/null)
check "numa: rank 0 on its NUMA node's CPUs ($node_cpus)" \
    [ -n "$node_cpus" -a "$(sed -n 's/^0 //p' "$WORK/numa.proc")" = "$node_cpus" ]

# 7. mrflow topo: the preview and the view under mpiexec agree with what runs did
"$MRFLOW" topo --ranks-per-node 2 > "$WORK/topo.txt" 2>&1
check "topo preview: exit 0 and two planned ranks" \
    [ "$(awk '$1 ~ /^[01]$/ { print $1 " " $2 }' "$WORK/topo.txt")" = "$(cat "$WORK/auto2.proc")" ]
"$MPIEXEC" -np 2 --bind-to none "$MRFLOW" topo > "$WORK/topo2.txt" 2>&1
check "topo under mpiexec: the cores a run used, not bound now" \
    [ "$(awk '$2 == "'"$(hostname | cut -c1-16)"'" { print $1 " " $4 " " $6 }' "$WORK/topo2.txt")" = \
      "$(sed 's/$/ mrflow*/' "$WORK/auto2.proc")" ]
"$MRFLOW" topo --bind sockets > /dev/null 2>&1
check "topo: bad --bind is a usage error" [ $? -eq 2 ]
mpi 1 tcp run wordcount --input "$WORK/in.txt" --output "$WORK/bad" --bind sockets \
    > /dev/null 2> "$WORK/bad.log"
check "run: bad --bind is exit 2 naming the choices" \
    [ $? -eq 2 ] && grep -q "auto, core, numa or none" "$WORK/bad.log"

finish
