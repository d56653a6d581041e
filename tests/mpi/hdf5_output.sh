# hdf5_output.sh -- --format hdf5: OUTPUT/output.h5 read back with h5py
# (tests/mpi/h5cat.py) equals the text parts of a run of the same job on
# the same ranks, for wordcount and terasort at 1, 2 and 4 ranks over TCP;
# the output commit holds (_SUCCESS, no parts, no staging files left);
# h5dump and mrflow inspect read it; with a checkpoint, a job preempted in
# its reduce and resumed on 3 ranks writes the same records.
. "${TOP_SRCDIR:-.}/tests/mpi/lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
if ! "$PY" -c 'import h5py' 2>/dev/null; then
    echo "hdf5_output.sh: needs h5py (apt-get install python3-h5py; scripts/setup.sh does)" >&2
    exit 99
fi
in=$WORK/in
mkdir -p "$in"
"$MRFLOW" gen text --size 2M --seed 8 --output "$in/text.txt" 2>/dev/null || exit 99
"$MRFLOW" gen terasort --size 1M --seed 9 --output "$in/sort.dat" 2>/dev/null || exit 99
input_of() { [ "$1" = wordcount ] && echo "$in/text.txt" || echo "$in/sort.dat"; }

for job in wordcount terasort; do
    for np in 1 2 4; do
        t=$WORK/text-$job-$np h=$WORK/h5-$job-$np
        if mpi "$np" tcp run "$job" --input "$(input_of $job)" --output "$t" --task-size 128K --quiet &&
            mpi "$np" tcp run "$job" --input "$(input_of $job)" --output "$h" --task-size 128K \
                --format hdf5 --quiet; then
            cat "$t"/part-* > "$WORK/want"
            if "$PY" "$TOP_SRCDIR/tests/mpi/h5cat.py" "$h/output.h5" > "$WORK/got"; then
                check "$job np=$np: output.h5 read with h5py equals the text parts" \
                    cmp -s "$WORK/want" "$WORK/got"
            else
                not_ok "$job np=$np: h5py could not read output.h5"
            fi
            check "$job np=$np: committed (_SUCCESS), no parts or staging files" sh -c \
                '[ -f "$1/_SUCCESS" ] && ! ls -a "$1" | grep -q "^part-\|stage"' _ "$h"
        else
            not_ok "$job np=$np: a run failed"
        fi
    done
done
h=$WORK/h5-wordcount-4/output.h5
check "h5dump -H reads output.h5" sh -c 'h5dump -H "$1" | grep -q "GROUP \"part-00003\""' _ "$h"
check "mrflow inspect verifies output.h5" sh -c '"$0" inspect "$1" | grep -q "verification: OK"' \
    "$MRFLOW" "$h"
ref_wordcount "$in/text.txt" > "$WORK/ref"
check "wordcount output.h5 equals a coreutils count" sh -c \
    '"$0" "$1" "$2" | sort | cmp -s - "$3"' "$PY" "$TOP_SRCDIR/tests/mpi/h5cat.py" "$h" "$WORK/ref"

# preempted in the reduce (USR1 to mpirun), resumed on 3 ranks
ck=$WORK/ck
rm -f "$WORK"/pause.*
MRFLOW_TEST_PAUSE=reduce MRFLOW_TEST_PAUSE_FILE=$WORK/pause "$MPIEXEC" -np 4 --oversubscribe \
    --mca btl self,tcp "$MRFLOW" run terasort --input "$in/sort.dat" --output "$WORK/h5-res" \
    --format hdf5 --checkpoint-dir "$ck" --checkpoint-policy always --task-size 128K --quiet > "$WORK/pre.log" 2>&1 &
pid=$!
wait_paused 4 "$pid"
kill -USR1 "$pid"
wait "$pid"
rc=$?
check "--format hdf5, USR1 in the reduce: exit 75, no output" \
    sh -c '[ "$1" -eq 75 ] && [ ! -e "$2" ]' _ "$rc" "$WORK/h5-res"
if mpi 3 tcp run terasort --input "$in/sort.dat" --output "$WORK/h5-res" --format hdf5 \
    --checkpoint-dir "$ck" --checkpoint-policy always --task-size 128K --quiet; then
    "$PY" "$TOP_SRCDIR/tests/mpi/h5cat.py" "$WORK/h5-res/output.h5" > "$WORK/got"
    cat "$WORK"/text-terasort-4/part-* > "$WORK/want"
    check "resumed on 3 ranks: output.h5 holds the same records in order" cmp -s "$WORK/want" "$WORK/got"
else
    not_ok "resume with --format hdf5 failed"
fi
finish
