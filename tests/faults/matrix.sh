# matrix.sh -- the fault matrix: a real job (2 ranks over TCP) with one fault
# injected at a time.  For each row it checks the exit status, that the
# message names the problem, that nothing is visible under the output name,
# and that no spill file is left in the job's spill directory; then prints a
# table.  Faults: a rank killed (SIGKILL) in the map, the shuffle and the
# reduce; SIGTERM to every rank and SIGUSR1 to one in the map; an unwritable
# output directory; a full disk (RLIMIT_FSIZE) for output and for spill; the
# input deleted or truncated during the map; a damaged shuffle block, spill
# block; a rank whose task fails.  Without --checkpoint-dir a killed or
# preempted job must simply fail cleanly.  With it (the last rows): USR1 and
# SIGKILL between shuffle rounds, while a round is received, at the start of
# the reduce and in its middle (part of the output written), each followed
# by a resume on 2 and on 3 ranks that must
# give the clean run's output; and USR1 between rounds and at the reduce's
# start where no checkpoint was worth taking (the rerun starts over).
. "$TOP_SRCDIR/tests/mpi/lib.sh"
export LC_ALL=C

NP=2
WRAP=""
"$MRFLOW" gen text --size 48M --seed 3 --output "$WORK/text" || exit 99
"$MRFLOW" gen terasort --size 32M --seed 3 --output "$WORK/tera" 2> /dev/null || exit 99
"$MRFLOW" gen terasort --size 128M --seed 4 --output "$WORK/tera-big" 2> /dev/null || exit 99
mkdir "$WORK/spill"
# clean runs: a fault that lands after the commit must leave exactly this
for in in text tera tera-big; do
    job=terasort
    [ $in = text ] && job=wordcount
    mpi $NP tcp run $job --input "$WORK/$in" --output "$WORK/clean-$in" --quiet || exit 99
    cat "$WORK/clean-$in"/part-* | cksum > "$WORK/ref-$in"
done
TABLE=$WORK/table
printf '%-34s %-6s %-8s %s\n' "fault" "exit" "verdict" "detail" > "$TABLE"

# launch NAME JOB INPUT [OPTS...]: starts the job in the background with a
# private spill directory; sets PID, OUT, ERR
launch() {
    name=$1 job=$2 in=$3; shift 3
    OUT=$WORK/out-$name
    ERR=$WORK/err-$name
    echo "$in" > "$ERR.in"
    rm -rf "$OUT" "$WORK/spill"/* 2> /dev/null
    if [ -n "$WRAP" ]; then
        set -- sh -c "$WRAP" "$MRFLOW" run "$job" --input "$in" --output "$OUT" "$@"
    else
        set -- "$MRFLOW" run "$job" --input "$in" --output "$OUT" "$@"
    fi
    timeout 300 "$MPIEXEC" -np $NP --oversubscribe --mca btl self,tcp "$@" \
        --spill-dir "$WORK/spill" --log-level debug --quiet > /dev/null 2> "$ERR" &
    PID=$!
}

# wait_for FILE TEXT: until TEXT appears in FILE (at most 60 s); 1 if never
wait_for() {
    i=0
    while ! grep -q "$2" "$1" 2> /dev/null; do
        i=$((i + 1))
        [ $i -gt 600 ] && return 1
        sleep 0.1
    done
}

# rank_pid RANK: the pid of that rank of the job writing $OUT
rank_pid() {
    for p in $(pgrep -f -- "--output $OUT"); do
        [ "$(tr '\0' '\n' < /proc/"$p"/environ 2> /dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')" = "$1" ] &&
            { echo "$p"; return 0; }
    done
    return 1
}

# verdict NAME WANT_RC MESSAGE: waits for the job, checks and records
verdict() {
    name=$1 want=$2 msg=$3
    rc=0
    wait "$PID" || rc=$?
    why=""
    case $want in
    nonzero) [ $rc -ne 0 ] || why="exit 0" ;;
    *) [ $rc -eq "$want" ] || why="exit $rc, wanted $want" ;;
    esac
    [ -z "$why" ] && [ -n "$msg" ] && [ ! -e "$OUT" ] && ! grep -q -- "$msg" "$ERR" &&
        why="no message matching '$msg'"
    if [ -z "$why" ] && [ -e "$OUT" ]; then
        # visible output is only allowed complete: the fault came after the commit
        ref=$WORK/ref-$(basename "$(cat "$ERR.in" 2> /dev/null)")
        if [ -f "$OUT/_SUCCESS" ] && [ -f "$ref" ] && [ "$(cat "$OUT"/part-* | cksum)" = "$(cat "$ref")" ]; then
            msg="complete output (the fault came after the commit)"
        else
            why="partial output visible under the name"
        fi
    fi
    [ -z "$why" ] && [ -n "$(ls -A "$WORK/spill")" ] && why="spill files left: $(ls "$WORK/spill")"
    if [ -z "$why" ]; then
        ok "$name: exit $rc, ${msg:+message names it, }no output, no spill file"
        printf '%-34s %-6s %-8s %s\n' "$name" "$rc" "ok" "${msg:-}" >> "$TABLE"
    else
        not_ok "$name: $why"
        sed 's/^/  /' "$ERR" | grep -v '^  *$' | tail -4
        printf '%-34s %-6s %-8s %s\n' "$name" "$rc" "FAILED" "$why" >> "$TABLE"
    fi
}

# a rank killed in each phase; the job is slowed so the phase lasts
launch kill-map wordcount "$WORK/text" --fault slow:rank=0:factor=100 --speculate off
wait_for "$ERR" "task 0" && kill -KILL "$(rank_pid 1)" 2> /dev/null
verdict "SIGKILL rank 1 in the map" nonzero ""

launch kill-shuffle wordcount "$WORK/text" --round-bytes 4K --compress off --speculate off
if wait_for "$ERR" "after map" && p=$(rank_pid 1) && kill -KILL "$p" 2> /dev/null; then
    verdict "SIGKILL rank 1 in the shuffle" nonzero ""
else
    verdict "SIGKILL rank 1 in the shuffle (ended first)" 0 ""
    [ -f "$OUT/_SUCCESS" ] || not_ok "SIGKILL rank 1 in the shuffle (ended first): no output"
fi

# (a larger input, so that the reduce lasts long enough to be hit; a rank
# that has already exited when the signal comes is the "ended first" row)
launch kill-reduce terasort "$WORK/tera-big" --memory 16M --speculate off
if wait_for "$ERR" "after shuffle" && p=$(rank_pid 0) && kill -KILL "$p" 2> /dev/null; then
    verdict "SIGKILL rank 0 in the reduce" nonzero ""
else
    # not injected: then the job must have succeeded with the whole output
    verdict "SIGKILL rank 0 in the reduce (ended first)" 0 ""
    [ -f "$OUT/_SUCCESS" ] || not_ok "SIGKILL rank 0 in the reduce (ended first): no output"
fi

# signals a scheduler sends, without --checkpoint-dir: the job must end
# non-zero with nothing visible
launch sigterm wordcount "$WORK/text" --fault slow:rank=0:factor=100 --speculate off
# as Slurm's scancel does: SIGTERM to every rank, once rank 1 has done a
# task (rank 0, 100x slow, is then inside its first one for seconds; waiting
# for "task 0", rank 0's own, sent the signal after the map, and a job
# could finish or commit first)
wait_for "$ERR" "rank 1 .*debug: task [0-9]*:" && kill -TERM "$(rank_pid 0)" "$(rank_pid 1)" 2> /dev/null
verdict "SIGTERM to every rank in the map" nonzero ""

launch sigusr1 wordcount "$WORK/text" --fault slow:rank=0:factor=100 --speculate off
wait_for "$ERR" "task 0" && kill -USR1 "$(rank_pid 1)" 2> /dev/null
verdict "SIGUSR1 to rank 1 in the map" nonzero ""

# where the output cannot go
OUT=/proc/mrflow-out ERR=$WORK/err-unwritable
rm -rf "$WORK/spill"/*
rc=0
timeout 300 "$MPIEXEC" -np $NP --oversubscribe --mca btl self,tcp "$MRFLOW" run wordcount \
    --input "$WORK/text" --output /proc/mrflow-out --spill-dir "$WORK/spill" 2> "$ERR" > /dev/null &
PID=$!
verdict "unwritable output directory" 2 "/proc/mrflow-out"

# a full disk: each rank may write at most 1 MiB per file
WRAP="ulimit -f 1024 && exec \"\$0\" \"\$@\""
launch full-output terasort "$WORK/tera"
verdict "full disk for the output" 1 "part-0000"
launch full-spill terasort "$WORK/tera" --memory 16M
verdict "full disk for spill" 1 "spill"
WRAP=""

# the input changes under the job (1 rank, every task slowed, so tasks remain)
NP=1
cp "$WORK/text" "$WORK/doomed"
launch deleted wordcount "$WORK/doomed" --fault slow:rank=0:factor=100 --speculate off --task-size 1M
wait_for "$WORK/err-deleted" "task 0" && rm -f "$WORK/doomed"
verdict "input deleted during the map (1 rank)" nonzero "doomed"
cp "$WORK/text" "$WORK/shrunk"
launch truncated wordcount "$WORK/shrunk" --fault slow:rank=0:factor=100 --speculate off --task-size 1M
wait_for "$WORK/err-truncated" "task 0" && truncate -s 1M "$WORK/shrunk"
verdict "input truncated during the map (1 rank)" nonzero "shrunk"
NP=2

# damaged data and failing tasks
launch corrupt-shuffle wordcount "$WORK/text" --fault corrupt:rank=1
verdict "damaged shuffle block" 1 "shuffle chunk from rank 1"
launch corrupt-spill terasort "$WORK/tera" --memory 16M --fault corrupt-spill:rank=1
verdict "damaged spill block" 1 "failed its checksum"
launch fail-task wordcount "$WORK/text" --fault fail:rank=1
verdict "a rank's map task fails" 1 "injected failure"

# Rows with checkpoints: a stop (USR1 to mpirun: exit 75) or a kill
# (SIGKILL to rank 1: the job fails) at each stop point past the map --
# between shuffle rounds, while a round is received, at the start of the
# reduce, in its middle -- with every rank paused there (MRFLOW_TEST_PAUSE); then the same
# command again on 2 ranks and on 3: the output of the clean run (terasort's
# parts in order are the same bytes on any number of ranks).
# ckpt_row NAME SIGNAL PHASE WANT_RC (POLICY: --checkpoint-policy, default
# always; MSG: what the stop must say)
ckpt_row() {
    local title=$1 sig=$2 phase=$3 want=$4 row=ck-$3-$2-${POLICY:-always} ck np mp
    local policy=${POLICY:-always}
    ck=$WORK/ck-$row
    rm -rf "$ck" "$WORK"/pause.*
    export MRFLOW_TEST_PAUSE=$phase MRFLOW_TEST_PAUSE_FILE=$WORK/pause
    launch "$row" terasort "$WORK/tera" --checkpoint-dir "$ck" --checkpoint-policy "$policy" \
        --round-bytes 1M
    unset MRFLOW_TEST_PAUSE MRFLOW_TEST_PAUSE_FILE
    if ! wait_paused $NP "$PID"; then
        verdict "$title (never paused)" 0 ""
        not_ok "$title: the ranks never paused in $phase"
        return
    fi
    if [ "$sig" = USR1 ]; then
        mp=$(pgrep -P "$PID" | head -n1) && kill -USR1 "$mp"
    else
        kill -KILL "$(rank_pid 1)"
    fi
    verdict "$title" "$want" "${MSG:-}"
    local resumed="resumed on 2 and 3 ranks: the clean output"
    for np in 2 3; do
        rm -rf "$ck-$np" "$OUT"
        cp -r "$ck" "$ck-$np"
        if mpi $np tcp run terasort --input "$WORK/tera" --output "$OUT" --checkpoint-dir "$ck-$np" \
            --checkpoint-policy "$policy" --round-bytes 1M --quiet 2> "$ERR.resume" &&
            [ "$(cat "$OUT"/part-* | cksum)" = "$(cat "$WORK/ref-tera")" ]; then
            ok "$title, then the same command on $np ranks: the clean run's output"
        else
            not_ok "$title, then the same command on $np ranks: $(grep -m1 error "$ERR.resume")"
            resumed="RESUME ON $np RANKS FAILED"
        fi
    done
    sed -i "\$s/\$/${MSG:+; }$resumed/" "$TABLE"
}
ckpt_row "USR1 between shuffle rounds" USR1 shuffle 75
ckpt_row "USR1 while a round is received" USR1 shuffle-receive 75
ckpt_row "USR1 at the start of the reduce" USR1 reduce 75
ckpt_row "SIGKILL rank 1 between rounds" KILL shuffle nonzero
ckpt_row "SIGKILL rank 1 at reduce start" KILL reduce nonzero
# (the parts written so far are kept: the resume on 2 ranks goes on from them)
MSG="with the reduce's progress" ckpt_row "USR1 mid-reduce (4096 keys reduced)" USR1 reduce-mid 75
ckpt_row "SIGKILL rank 1 mid-reduce" KILL reduce-mid nonzero
# the default policy with no checkpoint worth taking (MRFLOW_TEST_CKPT_COST
# makes each cost more than it saves): the stop writes nothing, and the same
# command starts over
export MRFLOW_TEST_CKPT_COST=1e9 POLICY=auto MSG="no checkpoint was worth writing"
ckpt_row "USR1 between rounds, no checkpoint" USR1 shuffle 75
ckpt_row "USR1 at reduce start, no checkpoint" USR1 reduce 75
unset MRFLOW_TEST_CKPT_COST POLICY MSG

echo "# fault matrix ($NP ranks, btl self,tcp)"
sed 's/^/# /' "$TABLE"
finish
