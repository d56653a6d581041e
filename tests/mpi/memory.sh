# memory.sh -- the bounded-memory data path: with --memory M per rank at 2
# and 4 ranks, wordcount (a 1M-word Zipf corpus) and terasort over 8x the
# ranks' total budget spill, merge and give the same output as an unlimited
# run, with each rank's peak RSS under M + 48 MiB; one rank that spills
# gives the same output as without a budget; one key with 50 million
# values reduces under the budget; shuffle and spill damage are caught and
# named; a missing, unwritable or full spill directory fails cleanly; no
# spill file outlives a job, even a killed one.
#   MRFLOW_TEST_MEMORY_RANKS ("2 4"), MRFLOW_TEST_HOT_VALUES (50000000)
#   MRFLOW_TEST_MEMORY (64M; 16M under sanitizers, whose shadow memory also
#   makes RSS meaningless there, so the RSS check is skipped)
. "${TOP_SRCDIR:-.}/tests/mpi/lib.sh"

SAN=${SAN_CFLAGS:-}
MEM=${MRFLOW_TEST_MEMORY:-$([ -n "$SAN" ] && echo 16M || echo 64M)}
MEM_MIB=${MEM%M}
OVERHEAD_MIB=48
HOT_VALUES=${MRFLOW_TEST_HOT_VALUES:-$([ -n "$SAN" ] && echo 5000000 || echo 50000000)}
spill=$WORK/spill
mkdir -p "$spill"

# summary FILE FIELD: a figure from the run summary on stderr
rss_of() { sed -n 's/.*peak RSS \([0-9.]*\) MiB (max over ranks); map.*/\1/p' "$1"; }
spilled_of() { sed -n 's/.*spilled \([0-9.]*\) MiB from map.*/\1/p' "$1"; }
under_budget() { # under_budget SUMMARY: peak RSS <= MEM + overhead
    [ -n "$SAN" ] && return 0
    awk -v r="$(rss_of "$1")" -v m="$MEM_MIB" -v o="$OVERHEAD_MIB" \
        'BEGIN { if (r == "" || r > m + o) { print "  peak RSS " r " MiB > " m " + " o; exit 1 } }'
}
spills() { awk -v s="$(spilled_of "$1")" 'BEGIN { exit !(s > 0) }'; }
empty_dir() { [ -z "$(ls -A "$1")" ]; }

for np in ${MRFLOW_TEST_MEMORY_RANKS-2 4}; do
    size=$((np * MEM_MIB * 8))M
    "$MRFLOW" gen text --size "$size" --seed $((np + 20)) --output "$WORK/text-$np" || exit 99
    "$MRFLOW" gen terasort --size "$size" --seed $((np + 30)) --output "$WORK/tera-$np" \
        2>/dev/null || exit 99
    # wordcount: zstd at 4 ranks, auto (off on one node) at 2
    comp=auto
    [ "$np" -eq 4 ] && comp=zstd
    if mpi "$np" tcp run wordcount --input "$WORK/text-$np" --output "$WORK/wc-ref-$np" --quiet &&
        mpi "$np" tcp run wordcount --input "$WORK/text-$np" --output "$WORK/wc-$np" \
            --memory "$MEM" --spill-dir "$spill" --compress $comp 2> "$WORK/wc-$np.err"; then
        cat "$WORK/wc-ref-$np"/part-* | sort > "$WORK/a"
        cat "$WORK/wc-$np"/part-* | sort > "$WORK/b"
        check "wordcount $size np=$np --memory $MEM ($comp) equals the unlimited run" \
            cmp -s "$WORK/a" "$WORK/b"
        check "wordcount np=$np parts sorted" parts_sorted "$WORK/wc-$np"
        check "wordcount np=$np spilled" spills "$WORK/wc-$np.err"
        check "wordcount np=$np peak RSS <= $MEM + $OVERHEAD_MIB MiB" under_budget "$WORK/wc-$np.err"
    else
        not_ok "wordcount $size np=$np exited non-zero"
        cat "$WORK/wc-$np.err" 2>/dev/null
    fi
    comp=zstd
    [ "$np" -eq 4 ] && comp=off
    if mpi "$np" tcp run terasort --input "$WORK/tera-$np" --output "$WORK/ts-ref-$np" --quiet &&
        mpi "$np" tcp run terasort --input "$WORK/tera-$np" --output "$WORK/ts-$np" \
            --memory "$MEM" --spill-dir "$spill" --compress $comp 2> "$WORK/ts-$np.err"; then
        cat "$WORK/ts-ref-$np"/part-* > "$WORK/a"
        cat "$WORK/ts-$np"/part-* > "$WORK/b"
        check "terasort $size np=$np --memory $MEM ($comp) byte-identical to the unlimited run" \
            cmp -s "$WORK/a" "$WORK/b"
        check "terasort np=$np --memory validates" \
            "$MRFLOW" validate terasort "$WORK/ts-$np" --input "$WORK/tera-$np"
        check "terasort np=$np spilled" spills "$WORK/ts-$np.err"
        check "terasort np=$np peak RSS <= $MEM + $OVERHEAD_MIB MiB" under_budget "$WORK/ts-$np.err"
    else
        not_ok "terasort $size np=$np exited non-zero"
        cat "$WORK/ts-$np.err" 2>/dev/null
    fi
    # incremental checkpoints of spilled map output: stopped after the map
    # (checkpoints every 8M of new output along the way), resumed on other
    # ranks under the budget
    ck=$WORK/ck-$np
    rm -f "$WORK"/pause.*
    MRFLOW_TEST_PAUSE=shuffle MRFLOW_TEST_PAUSE_FILE=$WORK/pause "$MPIEXEC" -np "$np" \
        --oversubscribe --mca btl self,tcp "$MRFLOW" run terasort --input "$WORK/tera-$np" \
        --output "$WORK/ts-ck-$np" --memory "$MEM" --spill-dir "$spill" --checkpoint-dir "$ck" \
        --checkpoint-policy always --checkpoint-every 0 --checkpoint-bytes 8M --log-level info > "$WORK/ck-$np.err" 2>&1 &
    pid=$!
    wait_paused "$np" "$pid"
    kill -s USR1 "$pid" 2> /dev/null
    wait_dog "$pid"
    check "terasort np=$np --memory, checkpoints by size: USR1 exits 75" test "$rc" -eq 75
    check "terasort np=$np --memory: a chain of 3 or more epochs" \
        sh -c '[ "$(ls "$1"/epoch-*.h5 | wc -l)" -ge 3 ]' _ "$ck"
    np2=$((np == 2 ? 4 : 2))
    if mpi "$np2" tcp run terasort --input "$WORK/tera-$np" --output "$WORK/ts-ck-$np" \
        --memory "$MEM" --spill-dir "$spill" --checkpoint-dir "$ck" --checkpoint-policy always --checkpoint-every 0 \
        --checkpoint-bytes 8M 2> "$WORK/ck-$np.err"; then
        cat "$WORK/ts-ck-$np"/part-* > "$WORK/b"
        check "terasort np=$np --memory: the chain resumed on $np2 ranks, byte-identical" \
            cmp -s "$WORK/a" "$WORK/b"
    else
        not_ok "terasort np=$np: resume of the chain on $np2 ranks failed"
        cat "$WORK/ck-$np.err"
    fi
    rm -rf "$WORK/text-$np" "$WORK/tera-$np" "$WORK"/wc-*"$np" "$WORK"/ts-*"$np" "$ck"
    check "no spill file left after np=$np" empty_dir "$spill"
done

# one rank that spills: its runs go through the same exchange (to itself)
"$MRFLOW" gen text --size 64M --seed 41 --output "$WORK/t1" || exit 99
"$MRFLOW" gen terasort --size 64M --seed 42 --output "$WORK/s1" 2>/dev/null || exit 99
for job in wordcount terasort; do
    in=$WORK/t1
    [ "$job" = terasort ] && in=$WORK/s1
    if mpi 1 tcp run "$job" --input "$in" --output "$WORK/r1-$job" --quiet &&
        mpi 1 tcp run "$job" --input "$in" --output "$WORK/m1-$job" --memory 16M \
            --spill-dir "$spill" 2> "$WORK/m1.err"; then
        cat "$WORK/r1-$job"/part-* | sort > "$WORK/a"
        cat "$WORK/m1-$job"/part-* | sort > "$WORK/b"
        check "$job np=1 --memory 16M equals the unlimited run" cmp -s "$WORK/a" "$WORK/b"
        check "$job np=1 --memory 16M spilled" spills "$WORK/m1.err"
    else
        not_ok "$job np=1 --memory 16M exited non-zero"
    fi
done
"$MRFLOW" validate terasort "$WORK/m1-terasort" --input "$WORK/s1" > /dev/null &&
    ok "terasort np=1 --memory 16M validates" || not_ok "terasort np=1 --memory 16M validates"
rm -rf "$WORK/t1" "$WORK/s1" "$WORK"/r1-* "$WORK"/m1-*

# one key whose values are far beyond the budget: streamed to reduce
MPICC=${MPICC:-mpicc}
libdir=$TOP_BUILDDIR/.libs
# shellcheck disable=SC2086
"$MPICC" ${SAN:-} -std=c11 -Wall -Wextra -Werror -I"$TOP_SRCDIR/include" \
    "$TOP_SRCDIR/tests/mpi/hotkey.c" -o "$WORK/hotkey" -L"$libdir" -lmrflow \
    -Wl,-rpath,"$libdir" || { echo "cannot build the hot-key job"; exit 99; }
yes x | head -n "$HOT_VALUES" > "$WORK/hot" || exit 99
want="hot${TAB}$HOT_VALUES $((HOT_VALUES * (HOT_VALUES - 1))) ordered"
if timeout 600 "$MPIEXEC" -np 2 --mca btl self,tcp "$WORK/hotkey" --input "$WORK/hot" \
    --output "$WORK/hot-out" --memory "$MEM" --spill-dir "$spill" 2> "$WORK/hot.err"; then
    check "one key with $HOT_VALUES values reduces under --memory $MEM" \
        test "$(cat "$WORK/hot-out"/part-*)" = "$want"
    check "one key: peak RSS <= $MEM + $OVERHEAD_MIB MiB" under_budget "$WORK/hot.err"
else
    not_ok "one key with $HOT_VALUES values exited non-zero"
    cat "$WORK/hot.err"
fi
rm -f "$WORK/hot"

# failures: each exits 1 with a message naming the cause, and leaves no
# output and no spill file
small=$WORK/small
"$MRFLOW" gen text --size 8M --seed 3 --output "$small" || exit 99
fails() { # fails NAME PATTERN OUT ARGS...: exit 1, message, no output, no spill
    local name=$1 pat=$2 out=$3 rc=0
    shift 3
    mpi 2 tcp run wordcount --input "$small" --output "$out" --memory 16M "$@" \
        > "$WORK/f.out" 2> "$WORK/f.err" || rc=$?
    check "$name: exit 1 (got $rc)" test "$rc" -eq 1
    check "$name: says '$pat'" grep -q -- "$pat" "$WORK/f.err"
    check "$name: no output" test ! -e "$out"
    check "$name: no leftovers" no_leftovers "$out"
    check "$name: no spill file" empty_dir "$spill"
}
fails "spill dir missing" "spill directory '$WORK/none'" "$WORK/o1" --spill-dir "$WORK/none"
fails "spill dir not writable" "spill directory '/proc': cannot create a file" "$WORK/o2" \
    --spill-dir /proc
# a full disk: RLIMIT_FSIZE set in each rank (ulimit -f, 512-byte blocks in
# sh) stops the spill file at 512 KiB
FSIZE_WRAP="ulimit -f 1024 && exec \"\$0\" \"\$@\""
rc=0
timeout 300 "$MPIEXEC" -np 2 --mca btl self,tcp sh -c "$FSIZE_WRAP" "$MRFLOW" run wordcount \
    --input "$small" --output "$WORK/o3" --memory 16M --spill-dir "$spill" 2> "$WORK/f.err" || rc=$?
check "spill dir full: exit 1 (got $rc)" test "$rc" -eq 1
check "spill dir full: says the write failed" \
    grep -q "spill file in '$spill': write failed after .*: File too large" "$WORK/f.err"
check "spill dir full: no output" test ! -e "$WORK/o3"
check "spill dir full: no leftovers" no_leftovers "$WORK/o3"
check "spill dir full: no spill file" empty_dir "$spill"
# the same on the reducing side only: one key's 400 thousand records fit in
# each rank's map arena but not in the receiving rank's share, whose sorted
# run then hits the limit mid-shuffle
yes x | head -n 400000 > "$WORK/hot400k" || exit 99
rc=0
timeout 300 "$MPIEXEC" -np 2 --mca btl self,tcp sh -c "$FSIZE_WRAP" "$WORK/hotkey" \
    --input "$WORK/hot400k" --output "$WORK/o3b" --memory 16M --spill-dir "$spill" \
    2> "$WORK/f.err" || rc=$?
check "reduce-side spill dir full: exit 1 (got $rc)" test "$rc" -eq 1
check "reduce-side spill dir full: says the write failed" \
    grep -q "spill file in '$spill': write failed after .*: File too large" "$WORK/f.err"
check "reduce-side spill dir full: no output" test ! -e "$WORK/o3b"
check "reduce-side spill dir full: no spill file" empty_dir "$spill"
fails "damaged shuffle chunk" "shuffle chunk from rank 1" "$WORK/o4" --fault corrupt:rank=1 \
    --spill-dir "$spill"
fails "damaged zstd shuffle chunk" "shuffle chunk from rank 0" "$WORK/o5" \
    --fault corrupt:rank=0 --compress zstd --spill-dir "$spill"
fails "damaged spill block" "failed its checksum" "$WORK/o6" --fault corrupt-spill:rank=1 \
    --spill-dir "$spill"

# a job stopped by a signal mid-run leaves no spill file behind
timeout -s TERM 3 "$MPIEXEC" -np 2 --mca btl self,tcp "$MRFLOW" run wordcount --input "$small" \
    --output "$WORK/o7" --memory 16M --spill-dir "$spill" --fault slow:rank=0:factor=50 \
    > /dev/null 2>&1
sleep 1
check "killed job: no spill file" empty_dir "$spill"

# --compress auto says what it chose and why, from measurements actually
# taken (non-zero speeds and a ratio), whether the map output spilled or not
for mem in 16M none; do
    budget="--memory $mem"
    [ "$mem" = none ] && budget=
    # shellcheck disable=SC2086
    if mpi 2 tcp run wordcount --input "$small" --output "$WORK/o8-$mem" $budget \
        --log-level info --spill-dir "$spill" 2> "$WORK/auto.err"; then
        check "auto compression (memory $mem) reports its measurement" grep -Eq \
            "compression (on|off): link [1-9][0-9]* MB/s per rank, zstd-1 [1-9][0-9]* MB/s, unzstd [1-9][0-9]* MB/s, ratio [1-9]" \
            "$WORK/auto.err"
        check "auto compression (memory $mem) is named in the summary" \
            grep -q "shuffle compression \(zstd\|off\) (auto: measured" "$WORK/auto.err"
    else
        not_ok "wordcount with --compress auto (memory $mem) exited non-zero"
    fi
done
finish
