# slurm.sh -- slurm/mrflow.sbatch on a real single-node Slurm cluster that
# this script starts (tests/slurm/cluster.sh) and stops.  Skipped (77) when
# the Slurm packages are not installed; .ci/run installs them.
#  1. sbatch --wait of the template: wordcount on 2 and 4 tasks equals a
#     coreutils count (and srun as the launcher on 2);
#  2. scancel --batch -s USR1 mid-map (terasort): the ranks checkpoint, the job
#     requeues itself, runs again with SLURM_RESTART_COUNT=1, resumes and
#     ends COMPLETED with output byte-identical to an uninterrupted run;
#  3. scancel --batch -s TERM: the ranks checkpoint, the job is not
#     requeued (exit 75, FAILED); the same command resubmitted resumes;
#  4. a job past its --time (1 minute, --signal=B:USR1@30) checkpoints
#     before the kill and finishes after its requeue, same bytes.
. "$TOP_SRCDIR/tests/mpi/lib.sh"

for c in munged slurmctld slurmd sbatch scontrol; do
    command -v "$c" > /dev/null || {
        echo "SKIP: Slurm is not installed ($c missing: apt-get install slurmctld slurmd" \
            "slurm-client munge)"
        exit 77
    }
done

# a free port pair for slurmctld and slurmd
port=6817
while ss -ltn | awk '{ print $4 }' | grep -qE ":($port|$((port + 1)))\$"; do
    port=$((port + 2))
done
L=$WORK/slurm
chmod 711 "$WORK" # munged's socket must be reachable by all
export SLURM_LAB_PORT=$port
conf=$("$TOP_SRCDIR/tests/slurm/cluster.sh" start "$L") || {
    rc=$?
    [ "$rc" -eq 77 ] && exit 77
    echo "cannot start the Slurm cluster (exit $rc)"
    tail -n 20 "$L"/log/*.log 2> /dev/null
    "$TOP_SRCDIR/tests/slurm/cluster.sh" stop "$L"
    exit 99
}
export SLURM_CONF=$conf
trap '"$TOP_SRCDIR/tests/slurm/cluster.sh" stop "$L"; [ -n "${MRFLOW_TEST_KEEP:-}" ] || rm -rf "$WORK"' EXIT
echo "# Slurm $(slurmctld -V 2>/dev/null) on port $port, config $conf"

# the job's programs: mrflow itself, and a wrapper that pauses the first run
# in the map (until a signal) so a test can signal it mid-phase
"$MRFLOW" gen text --size 24M --output "$WORK/in.txt" > /dev/null || exit 99
"$MRFLOW" gen terasort --size 24M --output "$WORK/sort.dat" > /dev/null || exit 99
ref_wordcount "$WORK/in.txt" > "$WORK/ref" || exit 99
paused_mrflow "$WORK/paused-mrflow"
SB=$TOP_SRCDIR/slurm/mrflow.sbatch
# the ranks talk over TCP, as between nodes
export OMPI_MCA_btl=self,tcp

field() { # field JOBID NAME: a field of scontrol show job
    scontrol show job "$1" 2> /dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}
# wait_state JOBID STATE SECONDS: polls until the job is in STATE
wait_state() {
    local i
    for i in $(seq $(($3 * 5))); do
        [ "$(field "$1" JobState)" = "$2" ] && return 0
        sleep 0.2
    done
    echo "  job $1 is $(field "$1" JobState), not $2, after $3 s" >&2
    return 1
}
# wait_paused NP: the first run's ranks are all paused in the map
# wait_paused NP [JOBID]: the first run's ranks are all paused in the map (0),
# or JOBID was requeued before they got there (2), or 60 s passed (1)
wait_paused() {
    local i
    for i in $(seq 600); do
        [ "$(ls "$WORK"/pause.[0-9]* 2> /dev/null | wc -l)" -ge "$1" ] && return 0
        [ -n "${2:-}" ] && [ $((i % 10)) = 0 ] && [ "$(field "$2" Restarts)" != 0 ] && return 2
        sleep 0.1
    done
    return 1
}
same_counts() { cmp -s <(cat "$1"/part-* | sort) "$WORK/ref"; }

# 1. plain runs: 2 and 4 tasks with mpirun, 2 with srun
for np in 2 4; do
    MRFLOW=$MRFLOW timeout 300 sbatch --wait -n "$np" -o "$WORK/plain-$np.log" "$SB" \
        run wordcount --input "$WORK/in.txt" --output "$WORK/plain-$np" --quiet > /dev/null
    check "sbatch --wait, $np tasks (mpirun): exit 0" [ $? -eq 0 ]
    check "$np tasks: counts equal coreutils'" same_counts "$WORK/plain-$np"
    check "$np tasks: $np parts" [ "$(ls "$WORK/plain-$np"/part-* | wc -l)" -eq "$np" ]
done
# the README's sbatch line as written, but for one node, 2 tasks and this
# test's paths
line=$(/usr/bin/python3 "$TOP_SRCDIR/tests/docs/blocks.py" get sh 'slurm/mrflow.sbatch run wordcount' \
    "$TOP_SRCDIR/README.md" | sed -e ':a' -e '/\\$/N; s/\\\n *//; ta' | grep '^sbatch .*--checkpoint-dir')
run=$(echo "$line" | sed "s#^sbatch -N [0-9]* -n [0-9]* slurm/mrflow.sbatch #sbatch --wait -N 1 -n 2 -o $WORK/readme.log $SB #;
    s#/shared/corpus#$WORK/in.txt#; s#/shared/counts#$WORK/readme#g")
check "README's sbatch line found and adapted: $run" sh -c 'case "$1" in "sbatch --wait -N 1 -n 2 "*"run wordcount --input $2 --output $3 --checkpoint-dir $3.ckpt") ;; *) exit 1 ;; esac' \
    _ "$run" "$WORK/in.txt" "$WORK/readme"
MRFLOW=$MRFLOW timeout 300 sh -c "$run --quiet" > /dev/null
check "the README's sbatch line: exit 0" [ $? -eq 0 ]
check "... counts equal coreutils', checkpoints removed" \
    bash -c 'cmp -s <(cat "$1"/part-* | sort) "$2" && [ -z "$(ls "$1.ckpt" 2> /dev/null | grep epoch)" ]' \
    _ "$WORK/readme" "$WORK/ref"
MRFLOW=$MRFLOW MRFLOW_LAUNCHER=srun timeout 300 sbatch --wait -n 2 -o "$WORK/srun.log" "$SB" \
    run wordcount --input "$WORK/in.txt" --output "$WORK/srun" --quiet > /dev/null
check "sbatch --wait, 2 tasks (srun --mpi=pmix): exit 0" [ $? -eq 0 ]
check "srun: counts equal coreutils'" same_counts "$WORK/srun"
# the reference for the preemption tests: terasort, whose parts are the same
# bytes on as many ranks whatever happens (wordcount's are the same lines, but
# which rank gets a key depends on measured sizes)
MRFLOW=$MRFLOW timeout 300 sbatch --wait -n 2 -o "$WORK/sort.log" "$SB" \
    run terasort --input "$WORK/sort.dat" --output "$WORK/sort" --quiet > /dev/null
check "terasort, 2 tasks: exit 0" [ $? -eq 0 ]
check "terasort: validates" "$MRFLOW" validate terasort "$WORK/sort" --input "$WORK/sort.dat"
MRFLOW=$MRFLOW timeout 60 sbatch --wait -n 1 -o "$WORK/noargs.log" "$SB" > /dev/null
check "no arguments: the job fails (exit 2) saying what to give" \
    sh -c '[ $1 -ne 0 ] && grep -q "give mrflow" "$2"' _ $? "$WORK/noargs.log"
MRFLOW=/nonexistent/mrflow timeout 60 sbatch --wait -n 1 -o "$WORK/noprog.log" "$SB" run x \
    > /dev/null
check "mrflow not found: the job fails naming MRFLOW" \
    sh -c '[ $1 -ne 0 ] && grep -q "set MRFLOW=" "$2"' _ $? "$WORK/noprog.log"

# preempted_job NAME SBATCH-ARGS...: submits the paused terasort on 2 tasks
# with a checkpoint dir; leaves the job id in jid
preempted_job() {
    local name=$1
    shift
    rm -f "$WORK"/pause.*
    jid=$(PAUSE_FILE=$WORK/pause MRFLOW=$WORK/paused-mrflow sbatch --parsable -n 2 \
        -o "$WORK/$name.log" "$@" "$SB" run terasort --input "$WORK/sort.dat" \
        --output "$WORK/$name" --checkpoint-dir "$WORK/$name.ckpt" --checkpoint-policy always \
        --log-level info)
}
# preempt_checks NAME: the job checkpointed, requeued itself, resumed, same bytes
preempt_checks() {
    local name=$1 log=$WORK/$1.log
    check "$name: COMPLETED after its requeue" wait_state "$jid" COMPLETED 180
    check "$name: requeued once (Restarts=1)" [ "$(field "$jid" Restarts)" = 1 ]
    check "$name: first run exited 75 and requeued" \
        sh -c 'grep -q "mrflow exited with status 75" "$1" && grep -q "requeueing job" "$1"' _ "$log"
    check "$name: second run had SLURM_RESTART_COUNT=1" grep -q "(restart 1)" "$log"
    check "$name: it resumed from the checkpoint" grep -q "resuming job" "$log"
    check "$name: the second run exited 0" \
        [ "$(grep -c "mrflow exited with status" "$log")" -eq 2 -a \
          "$(grep "mrflow exited with status" "$log" | tail -n 1 | grep -c "status 0")" -eq 1 ]
    check "$name: output identical to an uninterrupted run" \
        diff -r -q -x _REPORT.json -x _SUCCESS "$WORK/$name" "$WORK/sort"
    check "$name: checkpoints removed after the commit" \
        sh -c '[ -z "$(ls "$1" 2>/dev/null | grep epoch)" ]' _ "$WORK/$name.ckpt"
}

# 2. scancel --batch -s USR1 while the ranks are in the map
preempted_job usr1
if wait_paused 2; then
    ok "usr1: the job runs, its ranks paused in the map"
    scancel --batch -s USR1 "$jid"
    preempt_checks usr1
    check "usr1: the template passed the signal on" grep -q "got SIGUSR1" "$WORK/usr1.log"
else
    not_ok "usr1: the ranks never paused (job $jid: $(field "$jid" JobState))"
    cat "$WORK/usr1.log" 2> /dev/null | tail -n 20
fi

# 3. TERM (scancel, preemption): checkpoint, no self-requeue; resubmitting resumes
preempted_job term
if wait_paused 2; then
    ok "term: the job runs, its ranks paused in the map"
    scancel --batch -s TERM "$jid"
    check "term: the job ends FAILED with exit code 75" \
        sh -c 'for i in $(seq 300); do
                   s=$(scontrol show job "$1" | grep -o "JobState=[A-Z]*")
                   [ "$s" = JobState=FAILED ] && break; sleep 0.2; done
               scontrol show job "$1" | grep -q "ExitCode=75:0"' _ "$jid"
    check "term: not requeued, the log says why" \
        sh -c '[ "$2" = 0 ] && grep -q "not requeueing" "$1"' _ "$WORK/term.log" "$(field "$jid" Restarts)"
    check "term: a checkpoint is left" test -s "$WORK/term.ckpt/LATEST"
    MRFLOW=$MRFLOW timeout 300 sbatch --wait -n 2 -o "$WORK/term2.log" "$SB" run terasort \
        --input "$WORK/sort.dat" --output "$WORK/term" --checkpoint-dir "$WORK/term.ckpt" \
        --checkpoint-policy always \
        --log-level info > /dev/null
    check "term: resubmitted, it resumes and exits 0" \
        sh -c '[ $1 -eq 0 ] && grep -q "resuming job" "$2"' _ $? "$WORK/term2.log"
    check "term: output identical to an uninterrupted run" \
        diff -r -q -x _REPORT.json -x _SUCCESS "$WORK/term" "$WORK/sort"
else
    not_ok "term: the ranks never paused (job $jid: $(field "$jid" JobState))"
fi

# MRFLOW_MAX_REQUEUES=0: checkpoint and stop, no requeue
MRFLOW_MAX_REQUEUES=0 preempted_job norequeue
if wait_paused 2; then
    scancel --batch -s USR1 "$jid"
    check "MRFLOW_MAX_REQUEUES=0: exit 75, not requeued, the log says to resubmit" \
        sh -c 'for i in $(seq 300); do
                   s=$(scontrol show job "$1" | grep -o "JobState=[A-Z]*")
                   [ "$s" = JobState=FAILED ] && break; sleep 0.2; done
               scontrol show job "$1" | grep -q "Restarts=0" &&
               grep -q "MRFLOW_MAX_REQUEUES=0): resubmit" "$2"' _ "$jid" "$WORK/norequeue.log"
else
    not_ok "norequeue: the ranks never paused (job $jid: $(field "$jid" JobState))"
fi

# 4. past --time: Slurm warns with USR1 30 s (+0..60) before the limit
t0=$SECONDS
preempted_job timeout -t 1 --signal=B:USR1@30
# Slurm may warn as early as 9 s into the job: ranks slow to start (the
# sanitizers, a loaded machine) can get it before they reach the pause.  The
# job must then checkpoint, requeue and complete all the same.
wait_paused 2 "$jid"
paused=$?
if [ "$paused" -ne 1 ]; then
    if [ "$paused" -eq 0 ]; then
        ok "timeout: the job runs, its ranks paused in the map until Slurm's signal"
    else
        ok "timeout: Slurm's signal came before the ranks reached the pause (early start-up)"
    fi
    preempt_checks timeout
    check "timeout: the signal came from Slurm, before the time limit" \
        sh -c 'grep -q "got SIGUSR1" "$1" && ! grep -q "got SIGTERM" "$1" &&
               ! grep -qi "time limit" "$1"' _ "$WORK/timeout.log"
    echo "# the time-limit test took $((SECONDS - t0)) s"
else
    not_ok "timeout: the ranks never paused (job $jid: $(field "$jid" JobState))"
    cat "$WORK/timeout.log" 2> /dev/null | tail -n 20
fi

finish
