#!/bin/bash
# nodes.sh -- mrflow across two pretend nodes (tests/nodes/lab.sh: network
# namespaces with their own hostname, IP and /tmp, real TCP between them and
# nothing else), 2 ranks on each, started as a user on a cluster would with
# the MPI this build uses: Open MPI's `mpirun --host` or MPICH's `mpiexec
# -launcher ssh`, from node 1, with no MCA or launcher flags of ours.
# Inputs, outputs and checkpoints live on a folder every node sees (the
# "shared file system"); each node's /tmp is its own.
#  1. wordcount and terasort equal a one-node run of the same job (and
#     coreutils' count / the terasort validator); wordcount of a zstd file
#     of many frames equals coreutils' count of the plain text; groupby of
#     a chunked HDF5 dataset equals numpy's;
#  2. the run report and `mrflow topo` name two hosts, and on each host its
#     two ranks have local ranks 0 and 1 and different cores;
#  3. a rank on node 2 killed in the map: non-zero exit, no rank left on
#     either node, nothing under the output name; a task failing on node 2:
#     exit 1 naming it, nothing left beside the output name either;
#     --output or --checkpoint-dir on a node's own /tmp: exit 2 naming the
#     rank and host that cannot see it; an input on node 1's /tmp only: an
#     error naming the file and node 2;
#  4. a small --memory: each rank's spill file is on its own node's /tmp
#     (checked on the open files of the paused ranks), the output is right,
#     and no file is left on either node;
#  5. a checkpoint written by 4 ranks on 2 nodes (a chain of incremental
#     epochs, stopped in the shuffle) resumes on 3 ranks on one
#     node, and one written by 3 ranks on one node resumes on 4 ranks on 2:
#     the uninterrupted output;
#  6. Slurm across the nodes (slurmctld on the host, a slurmd per node):
#     sbatch -N 2 -n 4 slurm/mrflow.sbatch, paused in the map, scancel
#     --batch -s USR1 -> the ranks checkpoint (exit 75), the job requeues
#     itself and ends COMPLETED with the uninterrupted output; with
#     MRFLOW_LAUNCHER=mpirun and =srun.
# Skipped (77) with the reason where pretend nodes cannot be made (not root,
# no network namespaces, no sshd); the Slurm checks are skipped where Slurm
# is not installed.
MRFLOW_TEST_ANY_MPI=1
. "$TOP_SRCDIR/tests/mpi/lib.sh"

FLAVOR=${MPI_FLAVOR:-openmpi}
LABSH=$TOP_SRCDIR/tests/nodes/lab.sh
# lib.sh keeps single-node tests' TCP on loopback; between nodes the ranks
# find their interfaces themselves, and spill goes to each node's own /tmp
unset OMPI_MCA_btl_tcp_if_include OMPI_MCA_oob_tcp_if_include TMPDIR
BASE=$(mktemp -d /var/tmp/mrflow-nodes.XXXXXX) || exit 99
LAB=$BASE/lab
S=$BASE/shared
mkdir -p "$S" "$BASE/bin"
chmod 755 "$BASE"
# the program on the shared folder too: the build tree may be under /tmp,
# which every node has its own of
cp "$MRFLOW" "$BASE/bin/mrflow" || exit 99
MRFLOW=$BASE/bin/mrflow
# and LeakSanitizer's suppressions (sanitizer builds), which the ranks read
cp "$TOP_SRCDIR/tests/lsan.supp" "$BASE/lsan.supp" || exit 99
export LSAN_OPTIONS="suppressions=$BASE/lsan.supp:print_suppressions=0"
"$LABSH" start "$LAB" 2 slurm > "$BASE/lab.out" 2>&1
case $? in
0) ;;
77)
    grep SKIP "$BASE/lab.out"
    rm -rf "$BASE"
    exit 77
    ;;
*)
    echo "cannot start the pretend nodes:"
    cat "$BASE/lab.out"
    "$LABSH" stop "$LAB"
    rm -rf "$BASE"
    exit 99
    ;;
esac
cleanup() {
    "$LABSH" stop "$LAB"
    [ -n "${MRFLOW_TEST_KEEP:-}" ] || rm -rf "$BASE" "$WORK"
}
trap cleanup EXIT
labvar() { "$LABSH" env "$LAB" | sed -n "s/^$1=//p"; }
echo "# $FLAVOR, 2 pretend nodes on $(labvar LAB_NET), lab in $LAB"

# launch HOSTS NP ARGS...: mrflow ARGS on HOSTS (node1:2,node2:2), started on
# node 1.  Run it in the background (launch ... &): the launcher replaces the
# subshell, so $! is its PID and a signal sent there reaches it
launch() {
    local hosts=$1 np=$2 fwd=() v
    shift 2
    case $FLAVOR in
    openmpi)
        # Open MPI passes only what -x names to ranks on other nodes
        for v in MRFLOW_STRICT_MEM ASAN_OPTIONS LSAN_OPTIONS LC_ALL MRFLOW_TEST_PAUSE \
            MRFLOW_TEST_PAUSE_FILE MRFLOW_EXIT_FILE; do
            [ -n "${!v+x}" ] && fwd+=(-x "$v")
        done
        exec "$LABSH" on "$LAB" 1 mpirun --host "$hosts" -np "$np" "${fwd[@]}" "$MRFLOW" "$@"
        ;;
    mpich)
        exec "$LABSH" on "$LAB" 1 mpiexec.mpich -launcher ssh -hosts "$hosts" -np "$np" "$MRFLOW" "$@"
        ;;
    *)
        echo "nodes.sh: MPI_FLAVOR '$FLAVOR' is neither openmpi nor mpich" >&2
        return 99
        ;;
    esac
}
TWO=node1:2,node2:2
run() { # run LOG HOSTS NP ARGS...: launch and wait (300 s at most); status in rc
    local log=$1
    shift
    launch "$@" > "$log" 2>&1 &
    wait_dog $! 300
}
node_tmp() { echo "/proc/$("$LABSH" pid "$LAB" "$1")/root/tmp"; } # node K's /tmp, seen from here
node_of() { # node_of PID: the pretend node a process runs in (its UTS namespace)
    local k
    for k in 1 2; do
        [ "$(readlink "/proc/$1/ns/uts")" = "$(readlink "/proc/$("$LABSH" pid "$LAB" "$k")/ns/uts")" ] &&
            { echo "$k"; return; }
    done
    echo "?"
}
ranks_of() { # ranks_of OUT: PIDs of the mrflow ranks writing OUT
    local p
    for p in $(pgrep -f -- "--output $1( |\$)"); do
        [ "$(cat "/proc/$p/comm" 2> /dev/null)" = mrflow ] && echo "$p"
    done
}
# wait_files N PREFIX PID: until N files PREFIX.RANK exist or PID ended (60 s)
wait_files() {
    local i
    for i in $(seq 600); do
        [ "$(ls "$2".[0-9]* 2> /dev/null | wc -l)" -ge "$1" ] && return 0
        kill -0 "$3" 2> /dev/null || return 1
        sleep 0.1
    done
    return 1
}
leftovers() { # leftovers: mrflow's files in either node's /tmp (none expected)
    local k
    for k in 1 2; do
        find "$(node_tmp "$k")" -name '*mrflow*' 2> /dev/null
    done
}
nothing_under() { [ ! -e "$1" ] && no_leftovers "$1"; }
flat() { if [ "$1" = wordcount ]; then sort "$2"/part-*; else cat "$2"/part-*; fi; }

COMMON="--task-size 1M"
"$MRFLOW" gen text --size 12M --seed 7 --output "$S/text" > /dev/null 2>&1 || exit 99
"$MRFLOW" gen terasort --size 16M --seed 8 --output "$S/tera" > /dev/null 2>&1 || exit 99
ref_wordcount "$S/text" > "$S/ref-wc"
input_of() { [ "$1" = wordcount ] && echo "$S/text" || echo "$S/tera"; }

# ---- 1. the same output as on one node ----------------------------------------
for job in wordcount terasort; do
    run "$S/$job-one.log" node1:4 4 run "$job" --input "$(input_of $job)" --output "$S/$job-one" \
        $COMMON
    [ "$rc" -eq 0 ] || { not_ok "$job on one node: exit $rc"; tail -5 "$S/$job-one.log"; }
    run "$S/$job-two.log" "$TWO" 4 run "$job" --input "$(input_of $job)" --output "$S/$job-two" \
        $COMMON
    check "$job on 2 nodes x 2 ranks: exit 0" [ "$rc" -eq 0 ] || tail -5 "$S/$job-two.log"
    flat "$job" "$S/$job-one" > "$S/$job-one.flat"
    flat "$job" "$S/$job-two" > "$S/$job-two.flat"
    check "$job on 2 nodes equals the one-node run" cmp -s "$S/$job-one.flat" "$S/$job-two.flat"
done
check "wordcount on 2 nodes equals coreutils" cmp -s "$S/ref-wc" "$S/wordcount-two.flat"
check "terasort on 2 nodes validates" "$MRFLOW" validate terasort "$S/terasort-two" \
    --input "$S/tera"
check "terasort on 2 nodes: tasks were stolen across nodes or run at home, all 4 ranks mapped" \
    [ "$(grep -c '"input_bytes": [1-9]' "$S/terasort-two/_REPORT.json")" -ge 4 ]
# zstd input (frames cut every 1 MB, inside lines) read by ranks on both
# nodes, each decompressing its tasks from the shared file
if command -v zstd > /dev/null; then
    split -b 1000000 -d -a 3 "$S/text" "$S/zpiece-"
    for p in "$S"/zpiece-*; do zstd -q -c "$p"; done > "$S/text.zst"
    rm -f "$S"/zpiece-*
    run "$S/zstd-two.log" "$TWO" 4 run wordcount --input "$S/text.zst" --output "$S/zstd-two" $COMMON
    check "zstd input on 2 nodes x 2 ranks: exit 0" [ "$rc" -eq 0 ] || tail -5 "$S/zstd-two.log"
    check "zstd input on 2 nodes equals coreutils on the plain text" \
        cmp -s "$S/ref-wc" <(sort "$S"/zstd-two/part-* 2> /dev/null)
    check "zstd input on 2 nodes: all 4 ranks mapped" \
        [ "$(grep -c '"input_bytes": [1-9]' "$S/zstd-two/_REPORT.json")" -ge 4 ]
else
    not_ok "zstd is not installed (scripts/setup.sh installs it)"
fi
# an HDF5 dataset (chunked, gzip-filtered) read by ranks on both nodes,
# each opening the shared file for the chunks of its tasks: groupby equal
# to numpy
if /usr/bin/python3 -c 'import h5py, numpy' 2> /dev/null; then
    H5DATA=$TOP_SRCDIR/tests/mpi/h5data.py
    /usr/bin/python3 "$H5DATA" make "$S/d.h5" 300007 || exit 99
    /usr/bin/python3 "$H5DATA" groupby "$S/d.h5" /grp/chunked key val > "$S/ref-gb" || exit 99
    run "$S/h5-two.log" "$TWO" 4 run groupby --input "$S/d.h5:/grp/chunked" --key key \
        --value val --output "$S/h5-two" --task-size 256K
    check "HDF5 dataset on 2 nodes x 2 ranks: exit 0" [ "$rc" -eq 0 ] || tail -5 "$S/h5-two.log"
    check "HDF5 dataset on 2 nodes: groupby equals numpy" \
        cmp -s "$S/ref-gb" <(cat "$S"/h5-two/part-* 2> /dev/null | LC_ALL=C sort)
    check "HDF5 dataset on 2 nodes: all 4 ranks read chunks" \
        [ "$(grep -c '"input_bytes": [1-9]' "$S/h5-two/_REPORT.json")" -ge 4 ]
else
    not_ok "h5py is not installed (scripts/setup.sh installs python3-h5py)"
fi

# ---- 2. where the ranks ran ----------------------------------------------------
# rank host local_rank cpuset bound_by, from the report
python3 - "$S/wordcount-two/_REPORT.json" > "$S/placed" << 'EOF'
import json, sys
for k in json.load(open(sys.argv[1]))["ranks_detail"]:
    print(k["rank"], k["host"], k["local_rank"], k["cpuset"], k["bound_by"])
EOF
check "report: ranks 0,1 on node1 and 2,3 on node2, local ranks 0 and 1 on each" \
    [ "$(cut -d' ' -f1-3 "$S/placed" | tr '\n' ' ')" = "0 node1 0 1 node1 1 2 node2 0 3 node2 1 " ]
check "report: each node's two ranks are bound to different cores" \
    [ "$(awk '{ print $2, $4 }' "$S/placed" | sort -u | wc -l)" -eq 4 ]
check "report: every rank bound (by mrflow or the launcher), none unbound" \
    [ "$(awk '$5 == "none"' "$S/placed" | wc -l)" -eq 0 ]
run "$S/topo.log" "$TWO" 4 topo
check "topo under the launcher: exit 0" [ "$rc" -eq 0 ]
check "topo: two ranks on each of node1 and node2, local ranks 0 and 1" \
    [ "$(awk '$1 ~ /^[0-3]$/ { print $2, $3 }' "$S/topo.log" | sort | tr '\n' ' ')" = \
      "node1 0 node1 1 node2 0 node2 1 " ] || cat "$S/topo.log"

# ---- 3. a rank on node 2 dies, or fails ------------------------------------------
run "$S/kill.log" "$TWO" 4 run wordcount --input "$S/text" --output "$S/killed" $COMMON \
    --fault crash:rank=3:phase=map
check "rank 3 (node2) killed in the map: non-zero exit ($rc)" [ "$rc" -ne 0 ]
for i in $(seq 50); do [ -z "$(ranks_of "$S/killed")" ] && break; sleep 0.1; done
check "killed: no rank left running on either node" [ -z "$(ranks_of "$S/killed")" ]
# (a SIGKILLed job cannot remove its hidden .NAME.mrflow-tmp-RUNID sibling)
check "killed: nothing visible under the output name" [ ! -e "$S/killed" ]
run "$S/fail.log" "$TWO" 4 run wordcount --input "$S/text" --output "$S/failed" $COMMON \
    --fault fail:rank=3
check "a task failing on node2: exit 1 ($rc), the message names it" \
    sh -c '[ "$1" -eq 1 ] && grep -q "injected failure" "$2"' _ "$rc" "$S/fail.log"
check "failed: nothing visible under the output name" nothing_under "$S/failed"

# ---- 3b. what must be shared, given on a node's own disk ---------------------------
run "$S/localout.log" "$TWO" 4 run wordcount --input "$S/text" --output /tmp/wc-local $COMMON
check "--output on node-local /tmp: exit 2 ($rc) naming rank 2 on node2" \
    sh -c '[ "$1" -eq 2 ] && grep -q "rank 2 on host node2 does not see" "$2"' _ "$rc" \
    "$S/localout.log"
check "--output on node-local /tmp: nothing left on node1's /tmp" \
    [ -z "$(ls -A "$(node_tmp 1)" | grep wc-local)" ]
run "$S/localck.log" "$TWO" 4 run wordcount --input "$S/text" --output "$S/wc-localck" $COMMON \
    --checkpoint-dir /tmp/ck-local
check "--checkpoint-dir on node-local /tmp: exit 2 ($rc) naming node2, no output" \
    sh -c '[ "$1" -eq 2 ] && grep -q "checkpoint-dir.*host node2 does not see" "$2" &&
           [ ! -e "$3" ]' _ "$rc" "$S/localck.log" "$S/wc-localck"
"$LABSH" on "$LAB" 1 cp "$S/text" /tmp/text-local
run "$S/localin.log" "$TWO" 4 run wordcount --input /tmp/text-local --output "$S/wc-localin" \
    $COMMON
check "--input on node1's /tmp only: non-zero exit ($rc) naming the file and host node2" \
    sh -c '[ "$1" -ne 0 ] && grep -q "text-local.*on host node2" "$2" && [ ! -e "$3" ]' _ "$rc" \
    "$S/localin.log" "$S/wc-localin"

# ---- 4. spill on each node's own /tmp -------------------------------------------
rm -f "$S"/pause.*
MRFLOW_TEST_PAUSE=reduce MRFLOW_TEST_PAUSE_FILE=$S/pause \
    launch "$TWO" 4 run terasort --input "$S/tera" --output "$S/spilled" $COMMON --memory 16M \
    > "$S/spill.log" 2>&1 &
pid=$!
if wait_files 4 "$S/pause" "$pid"; then
    # a spill file is unlinked at once: an open file named /tmp/#INODE
    # (O_TMPFILE) or /tmp/.mrflow-spill-* (deleted)
    placed=0 elsewhere=0
    for p in $(ranks_of "$S/spilled"); do
        tmpdev=$(stat -c %d "$(node_tmp "$(node_of "$p")")")
        mine=0
        for fd in /proc/"$p"/fd/*; do
            case $(readlink "$fd") in
            */\#[0-9]*" (deleted)" | */.mrflow-spill-*" (deleted)") ;;
            *) continue ;;
            esac
            if [ "$(stat -L -c %d "$fd" 2> /dev/null)" = "$tmpdev" ]; then
                mine=$((mine + 1))
            else
                elsewhere=$((elsewhere + 1))
            fi
        done
        [ "$mine" -gt 0 ] && placed=$((placed + 1))
    done
    check "spill: each of the 4 paused ranks has its spill file on its own node's /tmp ($placed)" \
        [ "$placed" -eq 4 ]
    check "spill: no spill file anywhere else ($elsewhere)" [ "$elsewhere" -eq 0 ]
else
    not_ok "spill: the ranks did not reach the reduce"
fi
touch "$S/pause.go"
wait_dog "$pid" 300
check "spill run: exit 0 ($rc)" [ "$rc" -eq 0 ] || tail -5 "$S/spill.log"
spilled_mib() { sed -n 's/.*spilled \([0-9.]*\) MiB from map, \([0-9.]*\) MiB from shuffle.*/\1 \2/p' "$1"; }
check "spill run: the summary says it spilled ($(spilled_mib "$S/spill.log") MiB)" \
    awk -v s="$(spilled_mib "$S/spill.log")" 'BEGIN { split(s, a, " "); exit !(a[1] + a[2] > 0) }'
flat terasort "$S/spilled" > "$S/spilled.flat" 2> /dev/null
check "spill run: the output of the run without a budget" cmp -s "$S/terasort-one.flat" "$S/spilled.flat"
check "spill: no mrflow file left on either node's /tmp" [ -z "$(leftovers)" ]

# ---- 5. checkpoints move between node layouts ------------------------------------
# stop_resume JOB HOSTS_A NP_A HOSTS_B NP_B [PHASE [ARGS]]: paused in PHASE
# (map) on A, USR1 to the launcher, resumed on B.  reduce-mid: the parts
# written so far (in the output's hidden folder, on the shared folder) are
# continued by the resume, each rank's by the rank of that number wherever
# it now runs
stop_resume() {
    local job=$1 ha=$2 na=$3 hb=$4 nb=$5 phase=${6:-map} ck=$S/ck-$1 out=$S/resumed-$1 ef=$S/exit-$1 said
    rm -f "$S"/pause.* "$ef"
    # shellcheck disable=SC2086
    MRFLOW_EXIT_FILE=$ef MRFLOW_TEST_PAUSE=$phase MRFLOW_TEST_PAUSE_FILE=$S/pause \
        launch "$ha" "$na" run "$job" --input "$(input_of "$job")" --output "$out" \
        --checkpoint-dir "$ck" --checkpoint-policy always $COMMON --checkpoint-every 0 ${7:-} \
        > "$S/stop-$job.log" 2>&1 &
    local pid=$!
    wait_files "$na" "$S/pause" "$pid"
    sleep 0.2
    kill -USR1 "$pid"
    wait_dog "$pid" 300
    said=$(cat "$ef" 2> /dev/null)
    check "$job on $ha: USR1 in $phase -> rank 0 exits 75 (MRFLOW_EXIT_FILE: $said)" \
        [ "$said" = 75 ] || tail -5 "$S/stop-$job.log"
    if [ "$FLAVOR" = mpich ]; then
        # MPICH's mpiexec 4.0 sometimes returns 0 for ranks that all exited
        # 75 after a forwarded USR1 (src/driver.c; slurm/mrflow.sbatch reads
        # MRFLOW_EXIT_FILE for that reason): 75 or 0, nothing else
        check "$job on $ha: the launcher returns 75 (or MPICH's 0) ($rc)" \
            sh -c '[ "$1" -eq 75 ] || [ "$1" -eq 0 ]' _ "$rc" || tail -5 "$S/stop-$job.log"
    else
        check "$job on $ha: USR1 in $phase -> exit 75 ($rc)" [ "$rc" -eq 75 ] ||
            tail -5 "$S/stop-$job.log"
    fi
    check "$job: checkpointed ($(cat "$ck/LATEST" 2> /dev/null)), no output yet" \
        sh -c '[ -f "$1/$(cat "$1/LATEST")" ] && [ ! -e "$2" ]' _ "$ck" "$out"
    [ -n "${7:-}" ] && check "$job: a chain of incremental epochs ($(ls "$ck" | tr '\n' ' '))" \
        sh -c '[ "$(ls "$1"/epoch-*.h5 | wc -l)" -ge 2 ]' _ "$ck"
    run "$S/resume-$job.log" "$hb" "$nb" run "$job" --input "$(input_of "$job")" \
        --output "$out" --checkpoint-dir "$ck" --checkpoint-policy always $COMMON \
        --checkpoint-every 0 --log-level info
    check "$job resumed on $hb ($nb ranks): exit 0 ($rc)" [ "$rc" -eq 0 ] ||
        tail -5 "$S/resume-$job.log"
    check "$job resumed on $hb: it resumed (did not start over)" \
        grep -q "resuming job '$job' from checkpoint" "$S/resume-$job.log"
    [ "$phase" = reduce-mid ] &&
        check "$job resumed on $hb: the stopped reduce's parts were continued, not redone" \
            grep -q "continuing the reduce: [1-9][0-9]* keys" "$S/resume-$job.log"
    flat "$job" "$out" > "$S/resumed-$job.flat" 2> /dev/null
    check "$job resumed on $hb: the uninterrupted output" \
        cmp -s "$S/$job-one.flat" "$S/resumed-$job.flat"
}
# (terasort: checkpoints every 64K of map output, written by ranks on both
# nodes, stopped in the shuffle; the chain is read on one node)
stop_resume terasort "$TWO" 4 node2:3 3 shuffle "--checkpoint-bytes 64K"
stop_resume wordcount node1:3 3 "$TWO" 4
# (stopped mid-reduce on 2 + 2 ranks, continued on 1 + 3: rank 1 moves to
# node 2 and reopens the part it wrote on node 1)
rm -rf "$S/ck-terasort" "$S/resumed-terasort"
stop_resume terasort "$TWO" 4 node1:1,node2:3 4 reduce-mid

# ---- 6. Slurm across the nodes ---------------------------------------------------
SLURM_CONF=$(labvar SLURM_CONF)
if [ -z "$SLURM_CONF" ]; then
    echo "# Slurm checks skipped: $(labvar SLURM)"
    finish
fi
export SLURM_CONF
SB=$TOP_SRCDIR/slurm/mrflow.sbatch
paused_mrflow "$S/paused-mrflow"
sfield() { # sfield JOBID NAME
    scontrol show job "$1" 2> /dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}
# the MPICH build is started by its own mpiexec, and srun speaks PMI-2 to it
launcher_env() {
    if [ "$FLAVOR" = mpich ]; then
        echo "MRFLOW_MPIRUN=mpiexec.mpich,MRFLOW_SRUN_MPI=pmi2"
    else
        echo "MRFLOW_MPIRUN=mpirun"
    fi
}
declare -A JOB
for l in mpirun srun; do
    rm -f "$S/pause-$l".*
    JOB[$l]=$(cd "$S" && sbatch --parsable -N 2 -n 4 --ntasks-per-node 2 -o "$S/slurm-$l.out" \
        --export="ALL,MRFLOW=$S/paused-mrflow,MRFLOW_LAUNCHER=$l,PAUSE_FILE=$S/pause-$l,$(launcher_env)" \
        "$SB" run terasort --input "$S/tera" --output "$S/sl-$l" --checkpoint-dir "$S/slck-$l" \
        --checkpoint-policy always \
        $COMMON --checkpoint-every 0 2> "$S/sbatch-$l.err")
    [ -n "${JOB[$l]}" ] || not_ok "sbatch ($l) failed: $(cat "$S/sbatch-$l.err")"
done
for l in mpirun srun; do
    id=${JOB[$l]}
    [ -n "$id" ] || continue
    for i in $(seq 600); do
        [ "$(ls "$S/pause-$l".[0-9]* 2> /dev/null | wc -l)" -ge 4 ] && break
        case $(sfield "$id" JobState) in PENDING | RUNNING) ;; *) break ;; esac
        sleep 0.1
    done
    check "slurm ($l): 4 ranks on $(sfield "$id" NodeList) paused in the map" \
        [ "$(ls "$S/pause-$l".[0-9]* 2> /dev/null | wc -l)" -ge 4 ] || cat "$S/slurm-$l.out"
    scancel --batch -s USR1 "$id"
done
for l in mpirun srun; do
    id=${JOB[$l]}
    [ -n "$id" ] || continue
    for i in $(seq 900); do
        [ "$(sfield "$id" JobState)" = COMPLETED ] && break
        case $(sfield "$id" JobState) in FAILED | CANCELLED | TIMEOUT | NODE_FAIL) break ;; esac
        sleep 0.2
    done
    check "slurm ($l): COMPLETED after one requeue" \
        [ "$(sfield "$id" JobState)/$(sfield "$id" Restarts)" = COMPLETED/1 ] ||
        tail -20 "$S/slurm-$l.out"
    check "slurm ($l): the first run checkpointed and exited 75" \
        grep -q "exited with status 75" "$S/slurm-$l.out"
    check "slurm ($l): on node1 and node2" [ "$(sfield "$id" NodeList)" = "node[1-2]" ]
    flat terasort "$S/sl-$l" > "$S/sl-$l.flat" 2> /dev/null
    check "slurm ($l): the uninterrupted output" cmp -s "$S/terasort-one.flat" "$S/sl-$l.flat"
done
finish
