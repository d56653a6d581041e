# checkpoint.sh -- coordinated HDF5 checkpoints with real signals, real
# process kills and real damaged files, over TCP:
# - USR1 to mpirun during map, shuffle (between rounds, and while a round is
#   received: the round is dropped) and reduce: exit 75; resuming on 4, 2
#   and 3 ranks gives the output of an uninterrupted run (terasort: the
#   same bytes; wordcount: the same lines, and a coreutils count);
# - a rank SIGKILLed mid-shuffle, a rank killed while writing a checkpoint,
#   SIGTERM (mpirun kills ranks a second later): the rerun resumes;
# - a flipped byte or a truncated newest epoch: fallback to the older one;
#   none valid: an error unless --restart-from-scratch;
# - another job or option: refused, exit 2, naming it; an unusable
#   directory: exit 2 before any work; mrflow inspect and h5dump read it.
. "${TOP_SRCDIR:-.}/tests/mpi/lib.sh"

in=$WORK/in
mkdir -p "$in"
"$MRFLOW" gen text --size 3M --seed 5 --output "$in/text.txt" 2>/dev/null || exit 99
"$MRFLOW" gen terasort --size 2M --seed 6 --output "$in/sort.dat" 2>/dev/null || exit 99
ref_wordcount "$in/text.txt" > "$WORK/ref-wc"
COMMON="--task-size 64K --round-bytes 16K --checkpoint-policy always --checkpoint-every 0"

input_of() { # (INPUT=PATH overrides)
    if [ -n "${INPUT:-}" ]; then echo "$INPUT"; elif [ "$1" = wordcount ]; then echo "$in/text.txt"; else echo "$in/sort.dat"; fi
}
# the output, comparable: terasort's parts in order; wordcount's lines sorted
flat() { if [ "$1" = wordcount ]; then sort "$2"/part-*; else cat "$2"/part-*; fi; }

for job in wordcount terasort; do
    mpi 4 tcp run "$job" --input "$(input_of $job)" --output "$WORK/plain-$job" $COMMON --quiet ||
        not_ok "$job: uninterrupted run failed"
    flat "$job" "$WORK/plain-$job" > "$WORK/plain-$job.flat"
done
check "wordcount uninterrupted equals coreutils" cmp -s "$WORK/ref-wc" "$WORK/plain-wordcount.flat"
check "terasort uninterrupted validates" "$MRFLOW" validate terasort "$WORK/plain-terasort" \
    --input "$in/sort.dat"

# preempt JOB PHASE CKDIR OUT [ARGS...]: runs JOB on 4 ranks, waits until every
# rank is paused in PHASE (MRFLOW_TEST_PAUSE), sends SIGNAL (default USR1) to
# mpirun; the exit status goes to $rc.
preempt() {
    local job=$1 phase=$2 ck=$3 out=$4 sig=${SIGNAL:-USR1}
    shift 4
    rm -f "$WORK"/pause.*
    MRFLOW_TEST_PAUSE=$phase MRFLOW_TEST_PAUSE_FILE=$WORK/pause \
        "$MPIEXEC" -np 4 --oversubscribe --mca btl self,tcp "$MRFLOW" run "$job" \
        --input "$(input_of "$job")" --output "$out" --checkpoint-dir "$ck" $COMMON --quiet \
        "$@" > "$WORK/preempt.log" 2>&1 &
    local pid=$!
    wait_paused "${PAUSED:-4}" "$pid"
    sleep 0.2
    kill -s "$sig" "$pid" 2>/dev/null
    wait_dog "$pid"
}

# resume JOB NP CKDIR OUT [ARGS...]: the same command again, on NP ranks
resume() {
    local job=$1 np=$2 ck=$3 out=$4
    shift 4
    mpi "$np" tcp run "$job" --input "$(input_of "$job")" --output "$out" --checkpoint-dir "$ck" \
        $COMMON --log-level info "$@" > "$WORK/resume.log" 2>&1
}

same_output() { # JOB OUT: equal to the uninterrupted run
    flat "$1" "$2" > "$WORK/got.flat" && cmp -s "$WORK/plain-$1.flat" "$WORK/got.flat"
}

for job in wordcount terasort; do
    # shuffle-receive: the signal comes while round 2 is exchanged; the round is dropped
    for phase in map shuffle shuffle-receive reduce; do
        ck=$WORK/ck-$job-$phase
        preempt "$job" "$phase" "$ck" "$WORK/o-$job-$phase"
        check "$job: USR1 during $phase exits 75" [ "$rc" -eq 75 ]
        check "$job: USR1 during $phase leaves no output and LATEST names a file" \
            sh -c '[ ! -e "$1" ] && [ -f "$2/$(cat "$2/LATEST")" ]' _ "$WORK/o-$job-$phase" "$ck"
        if [ "$phase" = map ]; then
            check "$job: the map-phase checkpoint has tasks left to do" \
                sh -c '"$0" inspect "$1/$(cat "$1/LATEST")" | grep -q "phase map:"' "$MRFLOW" "$ck"
        elif [ "$phase" = reduce ]; then
            # the stop writes nothing: the map's checkpoint holds all (the resume shuffles again)
            check "$job: stopped in the reduce, LATEST is the checkpoint after the map" \
                sh -c '"$0" inspect "$1/$(cat "$1/LATEST")" | grep -q "phase mapped:" &&
                    [ "$(ls "$1"/epoch-*.h5 | wc -l)" -eq 1 ]' "$MRFLOW" "$ck"
        fi
        for np in 4 2 3; do
            rm -rf "$ck-$np"
            cp -r "$ck" "$ck-$np"
            out=$WORK/r-$job-$phase-$np
            if resume "$job" "$np" "$ck-$np" "$out"; then
                check "$job: preempted in $phase, resumed on $np ranks: same output" \
                    same_output "$job" "$out"
                check "$job: resumed on $np ranks said so" grep -q "resuming job" "$WORK/resume.log"
                check "$job: checkpoints removed once the output is committed" \
                    sh -c '! ls "$1" | grep -q "epoch\|LATEST"' _ "$ck-$np"
            else
                not_ok "$job: resume on $np ranks after $phase failed: $(grep -m1 error "$WORK/resume.log")"
            fi
        done
    done
done

# USR1 in the middle of a map task, with speculation on and off: the task's
# partial output is dropped whole (wordcount: its combining table; terasort:
# its records, the ones it spilled mid-task too) and the task is redone on
# resume.  (With --speculate off both used to stay: counts too high, records
# twice.)
"$MRFLOW" gen terasort --size 32M --seed 7 --output "$in/sort32.dat" 2>/dev/null || exit 99
for spec in off on; do
    for job in wordcount terasort; do
        ck=$WORK/ck-mid-$job-$spec out=$WORK/r-mid-$job-$spec
        if [ $job = wordcount ]; then
            pause=map-task args="--task-size 512K" input=
        else # 4 MiB map arenas: the second task of each rank spills
            pause=map-task-spilled args="--task-size 2M --memory 16M" input=$in/sort32.dat
        fi
        # shellcheck disable=SC2086
        INPUT=$input preempt $job $pause "$ck" "$WORK/o-mid" --speculate $spec $args
        check "$job --speculate $spec: USR1 in the middle of a task exits 75" [ "$rc" -eq 75 ]
        # shellcheck disable=SC2086
        if ! INPUT=$input resume $job 3 "$ck" "$out" --speculate $spec $args; then
            not_ok "$job --speculate $spec: resume after a stop mid-task failed: $(grep -m1 error "$WORK/resume.log")"
        elif [ $job = wordcount ]; then
            check "$job --speculate $spec: stopped mid-task, resumed on 3 ranks: same output" \
                same_output $job "$out"
        else
            check "$job --speculate $spec: stopped mid-task after a spill, resumed on 3 ranks: validates" \
                "$MRFLOW" validate terasort "$out" --input "$in/sort32.dat"
        fi
    done
done

# USR1 while a task is about to spill (the map arena full): the task stops
# there instead of spilling first (a spill of the arena takes seconds at
# 600 MB), its records are dropped, and it is redone on resume.  Wordcount
# spills a task's own overflow, with a table of 64 keys.
for job in terasort wordcount; do
    ck=$WORK/ck-spill-$job out=$WORK/r-spill-$job
    if [ $job = terasort ]; then
        input=$in/sort32.dat cap=
    else
        input=$in/text16.txt cap=64
        "$MRFLOW" gen text --size 16M --seed 8 --output "$input" 2>/dev/null || exit 99
        ref_wordcount "$input" > "$WORK/ref-wc16"
    fi
    # shellcheck disable=SC2086
    MRFLOW_COMBINE_MAX_KEYS=$cap INPUT=$input preempt $job map-spill "$ck" "$WORK/o-spill" \
        --task-size 2M --memory 16M --log-level debug
    check "$job: USR1 when a task must spill exits 75" [ "$rc" -eq 75 ]
    check "$job: the task stopped instead of spilling" \
        grep -q "the running task stops here instead of spilling" "$WORK/preempt.log"
    # shellcheck disable=SC2086
    if ! MRFLOW_COMBINE_MAX_KEYS=$cap INPUT=$input resume $job 3 "$ck" "$out" --task-size 2M --memory 16M; then
        not_ok "$job: resume after a stop instead of a spill failed: $(grep -m1 error "$WORK/resume.log")"
    elif [ $job = terasort ]; then
        check "$job: stopped instead of spilling, resumed on 3 ranks: validates" \
            "$MRFLOW" validate terasort "$out" --input "$in/sort32.dat"
    else
        check "$job: stopped instead of spilling, resumed on 3 ranks: equals coreutils" \
            sh -c 'sort "$1"/part-* | cmp -s - "$2"' _ "$out" "$WORK/ref-wc16"
    fi
done

# USR1 after the last map task, before a rank that spilled would spill the
# rest of its arena: it does not (the job stops after the checkpoint after
# the map, which takes the arena as it is); the resume validates
ck=$WORK/ck-mapend
INPUT=$in/sort32.dat preempt terasort map-end "$ck" "$WORK/o-mapend" --task-size 2M --memory 16M \
    --log-level debug
check "terasort: USR1 at the map's end exits 75" [ "$rc" -eq 75 ]
check "terasort: USR1 at the map's end: the arena is not spilled" \
    grep -q "the map arena is not spilled" "$WORK/preempt.log"
check "terasort: USR1 at the map's end: LATEST is the checkpoint after the map" \
    sh -c '"$0" inspect "$1/$(cat "$1/LATEST")" | grep -q "phase mapped:"' "$MRFLOW" "$ck"
if INPUT=$in/sort32.dat resume terasort 3 "$ck" "$WORK/r-mapend" --task-size 2M --memory 16M; then
    check "terasort: stopped at the map's end, resumed on 3 ranks: validates" \
        "$MRFLOW" validate terasort "$WORK/r-mapend" --input "$in/sort32.dat"
else
    not_ok "terasort: resume after a stop at the map's end failed: $(grep -m1 error "$WORK/resume.log")"
fi

# USR1 when a rank must spill what it received to make room for a round:
# it spills nothing, the round is dropped, every rank stops (not a failure).
# (The first rank to pause holds the others in the round's collectives.)
ck=$WORK/ck-rspill
PAUSED=1 INPUT=$in/sort32.dat preempt terasort shuffle-spill "$ck" "$WORK/o-rspill" --task-size 2M \
    --memory 16M --log-level debug
check "terasort: USR1 before a spill of received records exits 75" [ "$rc" -eq 75 ]
check "terasort: USR1 before a spill of received records: the round is dropped, nothing spilled" \
    sh -c 'grep -q "round [0-9]* dropped" "$1" && ! grep -q "received bytes .* as sorted run" "$1"' \
    _ "$WORK/preempt.log"
if INPUT=$in/sort32.dat resume terasort 2 "$ck" "$WORK/r-rspill" --task-size 2M --memory 16M; then
    check "terasort: stopped before a spill of received records, resumed on 2 ranks: validates" \
        "$MRFLOW" validate terasort "$WORK/r-rspill" --input "$in/sort32.dat"
else
    not_ok "terasort: resume after a stop before a receive spill failed: $(grep -m1 error "$WORK/resume.log")"
fi

# a map-phase checkpoint: metadata, h5dump, inspect
ck=$WORK/ck-wordcount-map
f=$ck/$(cat "$ck/LATEST")
check "h5dump -H reads a checkpoint" sh -c 'h5dump -H "$1" | grep -q "GROUP \"meta\""' _ "$f"
check "mrflow inspect verifies every block" sh -c '"$0" inspect "$1" | grep -q "verification: OK"' \
    "$MRFLOW" "$f"

# corrupt_data FILE: flip a byte in the middle of /data
corrupt_data() {
    local off size
    off=$(h5dump -p -H -d /data "$1" | sed -n 's/.*OFFSET \([0-9]*\).*/\1/p' | head -n1)
    size=$(h5dump -p -H -d /data "$1" | sed -n 's/.*SIZE \([0-9]*\).*/\1/p' | head -n1)
    [ -n "$off" ] && [ -n "$size" ] || return 1
    local pos=$((off + size / 2)) b
    b=$(dd if="$1" bs=1 skip="$pos" count=1 status=none | od -An -tu1 | tr -d ' ')
    # shellcheck disable=SC2059
    printf "$(printf '\\%03o' $((b ^ 90)))" | dd of="$1" bs=1 seek="$pos" conv=notrunc status=none
}

# two epochs (periodic checkpoints during the map, then after it), preempted
# in the shuffle; the newest damaged
COMMON="--task-size 64K --round-bytes 16K --checkpoint-policy always --checkpoint-every 0.000001"
ck=$WORK/ck-two
# (and blocks staged through a file past 64 KiB, not in memory)
MRFLOW_CKPT_MEM=64K preempt wordcount shuffle "$ck" "$WORK/o-two"
# incremental: each epoch holds only what is new and names the one before
# as its base; all of the chain is kept
chain_ok() { # CKDIR: epochs 1..N, epoch 1 holds its data, every later one builds on the one before
    local n=0 e
    for e in "$1"/epoch-*.h5; do
        n=$((n + 1))
        if [ "$n" -eq 1 ]; then
            "$MRFLOW" inspect "$e" | grep -q "builds on: nothing" || return 1
        else
            "$MRFLOW" inspect "$e" | grep -q "builds on: epoch $((n - 1));" || return 1
        fi
    done
    [ "$n" -ge 3 ] && [ "$(cat "$1/LATEST")" = "$(basename "$e")" ]
}
check "periodic checkpoints: exit 75, a chain of incremental epochs kept" \
    sh -c '[ "$1" -eq 75 ]' _ "$rc"
check "periodic checkpoints: every epoch builds on the one before" chain_ok "$ck"
check "incremental epochs: their records add up to the map output" sh -c \
    'total=0; for e in "$1"/epoch-*.h5; do
         r=$("$0" inspect "$e" | sed -n "s/.*data: \([0-9]*\) records.*/\1/p"); total=$((total + r))
     done
     "$0" inspect "$1/$(cat "$1/LATEST")" | grep -q "; $total records in the chain"' "$MRFLOW" "$ck"
newest=$ck/$(cat "$ck/LATEST")
cp -r "$ck" "$WORK/ck-two-saved"
cp -r "$ck" "$WORK/ck-chain3"
if resume wordcount 3 "$WORK/ck-chain3" "$WORK/r-chain3"; then
    check "a chain of epochs resumed on 3 ranks: same output" same_output wordcount "$WORK/r-chain3"
else
    not_ok "resume of a chain on 3 ranks failed: $(grep -m1 error "$WORK/resume.log")"
fi
# a damaged epoch inside the chain: the newer ones cannot be used, the one before it can
cp -r "$ck" "$WORK/ck-midchain"
n=$(ls "$WORK"/ck-midchain/epoch-*.h5 | wc -l)
mid=$(ls "$WORK"/ck-midchain/epoch-*.h5 | sed -n "$((n - 1))p")
if [ "$n" -ge 3 ] && corrupt_data "$mid"; then
    if resume wordcount 2 "$WORK/ck-midchain" "$WORK/r-midchain"; then
        check "a damaged epoch inside the chain: fallback to the one before it" sh -c \
            'grep -q "falling back" "$1" && grep -q "resuming job .* from checkpoint .*epoch-0*$2.h5" "$1"' \
            _ "$WORK/resume.log" "$((n - 2))"
        check "a damaged epoch inside the chain: output correct" same_output wordcount "$WORK/r-midchain"
    else
        not_ok "resume with a damaged epoch inside the chain failed: $(grep -m1 error "$WORK/resume.log")"
    fi
else
    not_ok "could not damage an epoch inside the chain ($n epochs)"
fi
# run to the end with a checkpoint always due: one after the shuffle too.
# (rank 0's clock says when one is due, after each of its tasks: rank 1 runs
# slowed down, so it cannot map every task while rank 0 maps its first)
if mpi 2 tcp run terasort --input "$in/sort.dat" --output "$WORK/o-due" \
    --checkpoint-dir "$WORK/ck-due" $COMMON --fault slow:rank=1:factor=4 --log-level info \
    > "$WORK/due.log" 2>&1; then
    check "checkpoints always due: taken during the map, after it and after the shuffle" sh -c \
        'grep -q "(map)" "$1" && grep -q "(mapped)" "$1" && grep -q "(shuffled)" "$1"' _ "$WORK/due.log"
    check "checkpoints always due: same bytes" same_output terasort "$WORK/o-due"
else
    not_ok "a run with checkpoints always due failed"
fi
# stopped in the reduce after a checkpoint of the reduce input (one is due
# after the shuffle): resumed on as many ranks, no shuffle
for job in wordcount terasort; do
    preempt "$job" reduce "$WORK/ck-red-$job" "$WORK/o-red-$job"
    check "$job: a checkpoint after the shuffle, USR1 in the reduce: exit 75" [ "$rc" -eq 75 ]
    check "$job: LATEST is the reduce input" sh -c \
        '"$0" inspect "$1/$(cat "$1/LATEST")" | grep -q "phase shuffled:"' "$MRFLOW" "$WORK/ck-red-$job"
    if resume "$job" 4 "$WORK/ck-red-$job" "$WORK/r-red-$job"; then
        check "$job: resumed after the shuffle on as many ranks: no shuffle" sh -c \
            'grep -q "shuffled phase.*now 4" "$1" && grep -q "\"shuffle_bytes_raw\": 0," "$2"' \
            _ "$WORK/resume.log" "$WORK/r-red-$job/_REPORT.json"
        check "$job: resumed after the shuffle: same output" same_output "$job" "$WORK/r-red-$job"
    else
        not_ok "$job: resume after the shuffle failed: $(grep -m1 error "$WORK/resume.log")"
    fi
done

if corrupt_data "$newest"; then
    check "inspect finds the flipped byte" \
        sh -c '! "$0" inspect "$1" 2>/dev/null | grep -q "verification: OK"' "$MRFLOW" "$newest"
    if resume wordcount 4 "$ck" "$WORK/r-flip"; then
        check "a flipped byte: fallback to the older epoch, said" \
            grep -q "falling back to the previous epoch" "$WORK/resume.log"
        check "a flipped byte: output correct" same_output wordcount "$WORK/r-flip"
    else
        not_ok "resume after a flipped byte failed: $(grep -m1 error "$WORK/resume.log")"
    fi
else
    not_ok "could not find /data in $newest"
fi
cp -r "$WORK/ck-two-saved" "$WORK/ck-trunc"
newest=$WORK/ck-trunc/$(cat "$WORK/ck-trunc/LATEST")
truncate -s $(($(stat -c %s "$newest") / 2)) "$newest"
if resume wordcount 2 "$WORK/ck-trunc" "$WORK/r-trunc"; then
    check "a truncated newest epoch: fallback, said" grep -q "trying the previous epoch" "$WORK/resume.log"
    check "a truncated newest epoch: output correct" same_output wordcount "$WORK/r-trunc"
else
    not_ok "resume after truncation failed: $(grep -m1 error "$WORK/resume.log")"
fi
# no valid epoch at all
cp -r "$WORK/ck-two-saved" "$WORK/ck-none"
for e in "$WORK"/ck-none/epoch-*.h5; do truncate -s 100 "$e"; done
resume wordcount 2 "$WORK/ck-none" "$WORK/r-none"
rc=$?
check "no valid epoch: exit 1 naming --restart-from-scratch" \
    sh -c '[ "$1" -eq 1 ] && grep -q -- "--restart-from-scratch" "$2" && [ ! -e "$3" ]' _ "$rc" \
    "$WORK/resume.log" "$WORK/r-none"
if resume wordcount 2 "$WORK/ck-none" "$WORK/r-none" --restart-from-scratch; then
    check "--restart-from-scratch: output correct" same_output wordcount "$WORK/r-none"
else
    not_ok "--restart-from-scratch failed"
fi

# the chain's first epoch damaged: no epoch is usable; from scratch, the
# new run's first checkpoint builds on nothing
cp -r "$WORK/ck-two-saved" "$WORK/ck-base"
first=$(ls "$WORK"/ck-base/epoch-*.h5 | head -n 1)
if corrupt_data "$first"; then
    resume wordcount 2 "$WORK/ck-base" "$WORK/r-base"
    rc=$?
    check "the chain's first epoch damaged: exit 1, none valid" \
        sh -c '[ "$1" -eq 1 ] && grep -q -- "--restart-from-scratch" "$2"' _ "$rc" "$WORK/resume.log"
    if resume wordcount 2 "$WORK/ck-base" "$WORK/r-base" --restart-from-scratch; then
        check "from scratch after a damaged chain: the first new epoch builds on nothing" sh -c \
            'grep -m1 "info: checkpoint .*epoch-" "$1" | grep -q "in the chain of 1 epochs"' _ \
            "$WORK/resume.log"
        check "from scratch after a damaged chain: output correct" same_output wordcount "$WORK/r-base"
    else
        not_ok "--restart-from-scratch after a damaged chain failed: $(grep -E "error|warning: internal" "$WORK/resume.log" | grep -v "fails its checksum" | tail -n 1)"
    fi
else
    not_ok "could not damage the chain's first epoch"
fi

# --checkpoint-bytes: checkpoints during the map by size alone, each with
# only the new map output; stopped in the map and resumed on 3 ranks
COMMON="--task-size 64K --round-bytes 16K --checkpoint-policy always --checkpoint-every 0 --checkpoint-bytes 100K"
for job in wordcount terasort; do
    if mpi 2 tcp run "$job" --input "$(input_of "$job")" --output "$WORK/o-bytes-$job" \
        --checkpoint-dir "$WORK/ck-bytes-$job" $COMMON --log-level info > "$WORK/bytes.log" 2>&1; then
        check "$job --checkpoint-bytes 100K: checkpoints during the map, incremental" sh -c \
            '[ "$(grep -c "(map): .* new records" "$1")" -ge 2 ] &&
             grep -Eq "\(mapped\): .* in the chain of ([3-9]|[1-9][0-9]+) epochs" "$1"' _ "$WORK/bytes.log"
        check "$job --checkpoint-bytes 100K: same output" same_output "$job" "$WORK/o-bytes-$job"
    else
        not_ok "$job --checkpoint-bytes run failed: $(grep -m1 error "$WORK/bytes.log")"
    fi
    SIGNAL=USR1 preempt "$job" map "$WORK/ck-bytes2-$job" "$WORK/o-bytes2-$job" --fault slow:rank=1:factor=4
    check "$job --checkpoint-bytes: USR1 in the map exits 75" [ "$rc" -eq 75 ]
    if resume "$job" 3 "$WORK/ck-bytes2-$job" "$WORK/r-bytes2-$job"; then
        check "$job --checkpoint-bytes: resumed on 3 ranks, same output" same_output "$job" \
            "$WORK/r-bytes2-$job"
    else
        not_ok "$job: resume after --checkpoint-bytes failed: $(grep -m1 error "$WORK/resume.log")"
    fi
done

# another option or job between runs: refused, naming it
COMMON="--task-size 64K --round-bytes 16K --checkpoint-policy always --checkpoint-every 0"
cp -r "$WORK/ck-two-saved" "$WORK/ck-opt"
resume wordcount 4 "$WORK/ck-opt" "$WORK/r-opt" --partitioner hash
rc=$?
check "another --partitioner: exit 2 naming it" \
    sh -c '[ "$1" -eq 2 ] && grep -q "partitioner skew, this run has --partitioner hash" "$2"' _ \
    "$rc" "$WORK/resume.log"
mpi 2 tcp run kvcount --input "$in/text.txt" --output "$WORK/r-job" --checkpoint-dir "$WORK/ck-opt" \
    $COMMON > "$WORK/job.log" 2>&1
rc=$?
check "another job: exit 2 naming both" \
    sh -c '[ "$1" -eq 2 ] && grep -q "written by job .wordcount., this is job .kvcount." "$2"' _ \
    "$rc" "$WORK/job.log"
if resume wordcount 3 "$WORK/ck-opt" "$WORK/r-noresume" --no-resume; then
    check "--no-resume: starts over, output correct" sh -c \
        'grep -q "ignoring the checkpoints" "$1" && ! grep -q "resuming job" "$1"' _ "$WORK/resume.log"
    check "--no-resume: output correct" same_output wordcount "$WORK/r-noresume"
else
    not_ok "--no-resume failed"
fi

# crashes: a rank SIGKILLed mid-shuffle (by the test, and by --fault); the
# rerun resumes from the checkpoint taken after the map
ck=$WORK/ck-kill
rm -f "$WORK"/pause.*
MRFLOW_TEST_PAUSE=shuffle MRFLOW_TEST_PAUSE_FILE=$WORK/pause "$MPIEXEC" -np 4 --oversubscribe \
    --mca btl self,tcp "$MRFLOW" run terasort --input "$in/sort.dat" --output "$WORK/o-kill" \
    --checkpoint-dir "$ck" $COMMON --quiet > "$WORK/kill.log" 2>&1 &
pid=$!
wait_paused 4 "$pid"
victim=$(pgrep -P "$pid" | sed -n 2p)
[ -n "$victim" ] && kill -9 "$victim"
wait_dog "$pid" 60
check "a rank SIGKILLed mid-shuffle: the job fails, no output" \
    sh -c '[ "$1" -ne 0 ] && [ "$1" -ne 75 ] && [ ! -e "$2" ]' _ "$rc" "$WORK/o-kill"
if resume terasort 2 "$ck" "$WORK/r-kill"; then
    check "after SIGKILL: resumed from the map checkpoint" grep -q "resuming job" "$WORK/resume.log"
    check "after SIGKILL: same bytes" same_output terasort "$WORK/r-kill"
else
    not_ok "resume after SIGKILL failed: $(grep -m1 error "$WORK/resume.log")"
fi
ck=$WORK/ck-fault
mpi 4 tcp run wordcount --input "$in/text.txt" --output "$WORK/o-fault" --checkpoint-dir "$ck" \
    $COMMON --fault crash:rank=2:phase=shuffle > "$WORK/fault.log" 2>&1
rc=$?
check "--fault crash:rank=2:phase=shuffle: the job fails" [ "$rc" -ne 0 ]
if resume wordcount 3 "$ck" "$WORK/r-fault"; then
    check "after a crash in the shuffle: resumed, output correct" same_output wordcount "$WORK/r-fault"
else
    not_ok "resume after --fault crash failed: $(grep -m1 error "$WORK/resume.log")"
fi
# killed while writing a checkpoint: no LATEST to a partial file; the rerun
# removes the partial file and starts over
ck=$WORK/ck-midwrite
mpi 4 tcp run wordcount --input "$in/text.txt" --output "$WORK/o-mid" --checkpoint-dir "$ck" \
    $COMMON --fault crash:rank=1:phase=checkpoint > "$WORK/mid.log" 2>&1
rc=$?
check "killed while writing a checkpoint: fails, no LATEST, no epoch" \
    sh -c '[ "$1" -ne 0 ] && [ ! -e "$2/LATEST" ] && ! ls "$2" | grep -q "^epoch"' _ "$rc" "$ck"
if resume wordcount 4 "$ck" "$WORK/r-mid"; then
    check "after a crash mid-write: output correct, partial file gone" \
        sh -c '! ls -a "$1" | grep -q "h5.tmp"' _ "$ck"
    check "after a crash mid-write: output correct" same_output wordcount "$WORK/r-mid"
else
    not_ok "rerun after a crash mid-write failed: $(grep -m1 error "$WORK/resume.log")"
fi
# SIGTERM: mpirun gives ranks about a second; the epoch after the map stays valid
ck=$WORK/ck-term
SIGNAL=TERM preempt terasort shuffle "$ck" "$WORK/o-term"
check "SIGTERM mid-shuffle: stopped (75, or killed), LATEST still valid" \
    sh -c '[ "$1" -ne 0 ] && "$2" inspect "$3/$(cat "$3/LATEST")" | grep -q "verification: OK"' _ \
    "$rc" "$MRFLOW" "$ck"
if resume terasort 4 "$ck" "$WORK/r-term"; then
    check "after SIGTERM: same bytes" same_output terasort "$WORK/r-term"
else
    not_ok "resume after SIGTERM failed: $(grep -m1 error "$WORK/resume.log")"
fi

# --checkpoint-policy auto (the default) leaves out a checkpoint that would
# cost more to write and read back than the work it saves.
# MRFLOW_TEST_CKPT_COST scales that cost: 1e9 makes every checkpoint too
# dear, 0 makes every one worth taking.
COMMON="--task-size 64K --round-bytes 16K --checkpoint-every 0"
ck_fig() { # REPORT FIELD: a number from the report's checkpoints object
    sed -n "s/.*\"checkpoints\".*\"$2\": \([0-9.e+-]*\).*/\1/p" "$1" | head -n 1
}
ck=$WORK/ck-auto
MRFLOW_TEST_CKPT_COST=1e9 preempt terasort shuffle "$ck" "$WORK/o-auto"
check "auto, every checkpoint too dear: USR1 exits 75, no epoch written, says it starts over" \
    sh -c '[ "$1" -eq 75 ] && ! ls "$2" | grep -q "^epoch" &&
           grep -q "no checkpoint was worth writing" "$3"' _ "$rc" "$ck" "$WORK/preempt.log"
if MRFLOW_TEST_CKPT_COST=1e9 resume terasort 3 "$ck" "$WORK/r-auto"; then
    check "auto, too dear: the rerun starts over on 3 ranks, same bytes" \
        sh -c '! grep -q "resuming job" "$1"' _ "$WORK/resume.log"
    check "auto, too dear: same bytes" same_output terasort "$WORK/r-auto"
    r=$WORK/r-auto/_REPORT.json
    check "auto, too dear: the report counts it left out, work below cost" \
        awk -v n="$(ck_fig "$r" left_out)" -v w="$(ck_fig "$r" left_out_work_s)" \
        -v c="$(ck_fig "$r" left_out_cost_s)" -v k="$(ck_fig "$r" written)" \
        'BEGIN { exit !(n >= 1 && w < c && k == 0) }'
else
    not_ok "auto, too dear: the rerun failed: $(grep -m1 error "$WORK/resume.log")"
fi
rm -rf "$ck"
MRFLOW_TEST_CKPT_COST=0 mpi 2 tcp run terasort --input "$in/sort.dat" --output "$WORK/o-auto0" \
    --checkpoint-dir "$ck" $COMMON --quiet --report "$WORK/auto0.json"
r=$WORK/auto0.json
check "auto, every checkpoint worth it: the one after the map is taken" \
    awk -v n="$(ck_fig "$r" left_out)" -v k="$(ck_fig "$r" written)" 'BEGIN { exit !(n == 0 && k == 1) }'
# the real figures: wordcount's map output (its combining table) is small
# against the work of mapping it, so the default keeps its checkpoint; any
# checkpoint left out says the work it would save was below its cost
for job in wordcount terasort; do
    rm -rf "$ck"
    mpi 2 tcp run "$job" --input "$(input_of "$job")" --output "$WORK/o-auto-$job" \
        --checkpoint-dir "$ck" $COMMON --quiet --report "$WORK/auto-$job.json"
    r=$WORK/auto-$job.json
    check "auto, $job: taken ($(ck_fig "$r" written)) or left out ($(ck_fig "$r" left_out)) by its figures" \
        awk -v n="$(ck_fig "$r" left_out)" -v k="$(ck_fig "$r" written)" \
        -v w="$(ck_fig "$r" left_out_work_s)" -v c="$(ck_fig "$r" left_out_cost_s)" -v j="$job" \
        'BEGIN { exit !(n + k == 1 && (n == 0 || w < c) && (j != "wordcount" || k == 1)) }'
done

# an unusable checkpoint directory: exit 2 before any work
: > "$WORK/afile"
mpi 2 tcp run wordcount --input "$in/text.txt" --output "$WORK/o-nodir" \
    --checkpoint-dir "$WORK/afile" > "$WORK/nodir.log" 2>&1
rc=$?
check "--checkpoint-dir naming a file: exit 2, named, no output" \
    sh -c '[ "$1" -eq 2 ] && grep -q "is not a directory" "$2" && [ ! -e "$3" ]' _ "$rc" \
    "$WORK/nodir.log" "$WORK/o-nodir"
mpi 2 tcp run wordcount --input "$in/text.txt" --output "$WORK/o-nodir" \
    --checkpoint-dir /proc/mrflow-no/ck > "$WORK/nodir.log" 2>&1
rc=$?
check "--checkpoint-dir that cannot be created: exit 2, named" \
    sh -c '[ "$1" -eq 2 ] && grep -q "cannot be created" "$2" && [ ! -e "$3" ]' _ "$rc" \
    "$WORK/nodir.log" "$WORK/o-nodir"
# USR1 in the middle of the reduce (every rank has reduced 4096 keys): the
# parts written so far stay in the output's hidden temporary directory and
# an epoch of phase "reducing" records where each stands.  The same command
# on 4 ranks continues them (bytes a part got after the record are cut
# off: here appended by hand, as a run killed while continuing would leave
# them); on 2 ranks, or with the directory gone, the reduce is done anew.
parts_equal() { # OUT: every part the same bytes as the uninterrupted run's
    for p in "$WORK/plain-$2"/part-*; do cmp -s "$p" "$1/${p##*/}" || return 1; done
}
for job in wordcount terasort; do
    ckm=$WORK/ck-rmid-$job
    preempt "$job" reduce-mid "$ckm" "$WORK/o-rmid-$job"
    check "$job: USR1 mid-reduce exits 75, saying the reduce's progress is kept" \
        sh -c '[ "$1" -eq 75 ] && grep -q "with the reduce.s progress" "$2"' _ "$rc" "$WORK/preempt.log"
    check "$job: LATEST records the reduce's progress (at least 4 x 4096 keys), the parts kept" sh -c \
        '"$0" inspect "$1/$(cat "$1/LATEST")" > "$2" && grep -q "phase reducing:" "$2" &&
            grep -Eq "reduce progress: (1[6-9]|[2-9][0-9])[0-9]{3} keys reduced" "$2" &&
            ls -d "$3"/.o-rmid-$4.mrflow-tmp-* && [ ! -e "$3/o-rmid-$4" ]' \
        "$MRFLOW" "$ckm" "$WORK/inspect.txt" "$WORK" "$job"
    h5dump -d /reduce "$ckm/$(cat "$ckm/LATEST")" > /dev/null 2>&1
    check "$job: h5dump reads the reducing epoch's /reduce" [ $? -eq 0 ]
    tmp=$(ls -d "$WORK"/.o-rmid-$job.mrflow-tmp-*)
    for p in "$tmp"/part-*; do printf 'junk after the record' >> "$p"; done
    rm -rf "$WORK/rmid-keep"
    cp -r "$tmp" "$WORK/rmid-keep"
    for np in 4 2; do
        rm -rf "$ckm-$np"
        cp -r "$ckm" "$ckm-$np"
        out=$WORK/o-rmid-$job # (the same --output: the parts are continued in its folder)
        rm -rf "$out"
        [ $np = 2 ] && cp -r "$WORK/rmid-keep" "$tmp" # (the run on 4 made it the output)
        if resume "$job" $np "$ckm-$np" "$out"; then
            check "$job: stopped mid-reduce, resumed on $np ranks: same output" same_output "$job" "$out"
            if [ $np = 4 ]; then
                check "$job: resumed on 4 ranks: the reduce continued, said" \
                    grep -q "continuing the reduce: [1-9][0-9]* keys" "$WORK/resume.log"
                check "$job: continued parts are the uninterrupted run's, byte for byte" \
                    parts_equal "$out" "$job"
                check "$job: the continued output holds no stopped-run mark" \
                    [ ! -e "$out/.mrflow-stopped" ]
            else
                check "$job: resumed on 2 ranks: the reduce done anew, said; the old parts removed" sh -c \
                    'grep -q "progress on 4 ranks; this run has another rank count" "$1" &&
                        ! ls -d "$2"/.o-rmid-$3.mrflow-tmp-* 2> /dev/null' _ "$WORK/resume.log" "$WORK" "$job"
            fi
        else
            not_ok "$job: resume on $np ranks after a stop mid-reduce failed: $(grep -m1 error "$WORK/resume.log")"
        fi
    done
    # a record naming more keys than the reduce input has (rank 0's count
    # raised in /reduce with h5py): a clear error naming --no-resume, not
    # output missing keys
    if [ $job = terasort ] && /usr/bin/python3 -c 'import h5py' 2> /dev/null; then
        rm -rf "$ckm-bad" "$WORK/o-rmid-$job" && cp -r "$ckm" "$ckm-bad"
        cp -r "$WORK/rmid-keep" "$tmp"
        /usr/bin/python3 - "$ckm-bad/$(cat "$ckm-bad/LATEST")" << 'PY'
import struct, sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    b = bytearray(f["/reduce"][()])
    w = struct.unpack_from("<4Q", b)
    at = 8 * (4 + (w[3] + 8) // 8)  # rank 0's first field: keys reduced
    struct.pack_into("<Q", b, at, 10**9)
    f["/reduce"][...] = list(b)
PY
        resume "$job" 4 "$ckm-bad" "$WORK/o-rmid-$job"
        check "$job: a record of more keys than the input has: exit 1 naming --no-resume, no output" \
            sh -c '[ "$1" -eq 1 ] && grep -q "cannot be continued; rerun with --no-resume" "$2" &&
                [ ! -e "$3" ]' _ $? "$WORK/resume.log" "$WORK/o-rmid-$job"
    fi
    # the parts gone (another output folder's cleanup): done anew on 4 ranks too
    rm -rf "$ckm-gone" "$WORK/o-rmid-$job" && cp -r "$ckm" "$ckm-gone"
    if resume "$job" 4 "$ckm-gone" "$WORK/o-rmid-$job"; then
        check "$job: the stopped run's parts gone: the reduce done anew, said" sh -c \
            'grep -q "the output it had written is gone" "$1"' _ "$WORK/resume.log"
        check "$job: the stopped run's parts gone: same output" same_output "$job" "$WORK/o-rmid-$job"
    else
        not_ok "$job: resume with the stopped run's parts gone failed: $(grep -m1 error "$WORK/resume.log")"
    fi
done
# stopped again while the continued run passes over the keys done (the
# pause comes at its 4096th key of 16384): the record stays as it was, and
# the third run finishes the parts
ckm=$WORK/ck-rmid-terasort-4b
rm -rf "$ckm" "$WORK"/.o-rmid-terasort.mrflow-tmp-* "$WORK/o-rmid-terasort"
preempt terasort reduce-mid "$ckm" "$WORK/o-rmid-terasort"
preempt terasort reduce-mid "$ckm" "$WORK/o-rmid-terasort"
check "terasort: stopped again while continuing the reduce: exit 75, the same keys recorded" \
    sh -c '[ "$1" -eq 75 ] && "$2" inspect "$3/$(cat "$3/LATEST")" | grep -q "$4 keys reduced"' \
    _ "$rc" "$MRFLOW" "$ckm" "$(sed -n 's/.*reduce progress: \([0-9]*\) keys.*/\1/p' "$WORK/inspect.txt")"
if resume terasort 4 "$ckm" "$WORK/o-rmid-terasort"; then
    check "terasort: stopped twice in the reduce: the parts are the uninterrupted run's" \
        parts_equal "$WORK/o-rmid-terasort" terasort
else
    not_ok "terasort: resume after two stops in the reduce failed: $(grep -m1 error "$WORK/resume.log")"
fi
# a stopped reduce's folder (marked) superseded by a run of the same
# output that does not resume: its commit removes the folder; an unmarked
# folder (a running job's) is left alone
ckm=$WORK/ck-rmid-superseded
rm -rf "$ckm" "$WORK"/.o-rmid-terasort.mrflow-tmp-* "$WORK/o-rmid-terasort"
preempt terasort reduce-mid "$ckm" "$WORK/o-rmid-terasort"
check "terasort: the folder of a reduce stopped mid-way is marked as a stopped run's" \
    sh -c '[ "$1" -eq 75 ] && [ "$(ls "$2"/.o-rmid-terasort.mrflow-tmp-*/.mrflow-stopped | wc -l)" -eq 1 ]' \
    _ "$rc" "$WORK"
mkdir "$WORK/.o-rmid-terasort.mrflow-tmp-live"
if resume terasort 2 "$ckm" "$WORK/o-rmid-terasort" --no-resume; then
    check "terasort: a --no-resume run removes the stopped run's folder, says so, keeps an unmarked one" \
        sh -c '[ "$(ls -d "$2"/.o-rmid-terasort.mrflow-tmp-*)" = "$2/.o-rmid-terasort.mrflow-tmp-live" ] &&
            grep -q "an earlier run of this output that was stopped in its reduce" "$1"' \
        _ "$WORK/resume.log" "$WORK"
    check "terasort: the --no-resume run's output" same_output terasort "$WORK/o-rmid-terasort"
else
    not_ok "terasort: --no-resume run after a stop mid-reduce failed: $(grep -m1 error "$WORK/resume.log")"
fi
rmdir "$WORK/.o-rmid-terasort.mrflow-tmp-live"
# the default policy with no checkpoint worth taking: a stop mid-reduce
# still keeps the parts, in an epoch with no task done under it; the same
# command maps and shuffles again (with that epoch's partition decisions),
# then continues the parts (wordcount: its keys are the same though the map
# combines them differently)
for job in wordcount terasort; do
    ckm=$WORK/ck-rmid-auto-$job
    rm -rf "$ckm" "$WORK/o-rmid-auto-$job"
    MRFLOW_TEST_CKPT_COST=1e9 preempt "$job" reduce-mid "$ckm" "$WORK/o-rmid-auto-$job" \
        --checkpoint-policy auto
    check "$job, no checkpoint worth taking: USR1 mid-reduce: exit 75, an epoch of the reduce's progress alone" \
        sh -c '[ "$1" -eq 75 ] && "$2" inspect "$3/$(cat "$3/LATEST")" > "$4" &&
            grep -q "phase reducing: 0 of" "$4" && grep -q "builds on: nothing" "$4"' \
        _ "$rc" "$MRFLOW" "$ckm" "$WORK/inspect.txt"
    if MRFLOW_TEST_CKPT_COST=1e9 resume "$job" 4 "$ckm" "$WORK/o-rmid-auto-$job" --checkpoint-policy auto; then
        check "$job, no checkpoint worth taking: the map done again, the reduce continued" \
            grep -q "continuing the reduce: [1-9][0-9]* keys" "$WORK/resume.log"
        check "$job, no checkpoint worth taking: parts equal to the uninterrupted run's" \
            parts_equal "$WORK/o-rmid-auto-$job" "$job"
    else
        not_ok "$job, no checkpoint worth taking: resume after a stop mid-reduce failed: $(grep -m1 error "$WORK/resume.log")"
    fi
done

finish
