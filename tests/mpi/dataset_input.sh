# dataset_input.sh -- HDF5 datasets as input (--input FILE.h5:/PATH) read
# by a job of MRF_INPUT_DATASET (tests/mpi/h5group.c: its fields found by
# name with mrf_record_field), at 1, 2 and 4 ranks over TCP, against numpy
# on files h5py writes (tests/mpi/h5data.py): a compound dataset with a
# big-endian key, chunked and gzip-filtered, N rows not a multiple of the
# chunk; the same contiguous; 1-D floats with NaNs (bad records); a 2-D
# int16 dataset (rows are records); two datasets in one run.  Then a
# preemption in the map resumed on another rank count, and every refusal:
# missing file or dataset, empty, 3-D, variable-length strings, datasets of
# different element sizes, a plain file for a dataset job, a dataset for a
# line job -- exit 2 naming it, no output.
. "$TOP_SRCDIR/tests/mpi/lib.sh"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
"$PY" -c 'import h5py, numpy' 2> /dev/null ||
    { echo "SKIP: needs h5py and numpy (apt-get install python3-h5py; scripts/setup.sh does)"; exit 77; }

MPICC=${MPICC:-mpicc}
libdir=$TOP_BUILDDIR/.libs
# shellcheck disable=SC2086
"$MPICC" ${SAN_CFLAGS:-} -std=c11 -Wall -Wextra -Werror -I"$TOP_SRCDIR/include" \
    "$TOP_SRCDIR/tests/mpi/h5group.c" -o "$WORK/h5group" -L"$libdir" -lmrflow -lm \
    -Wl,-rpath,"$libdir" || { echo "cannot build tests/mpi/h5group.c"; exit 99; }
job() { # job NP ARGS...: h5group under mpiexec over TCP
    local np=$1; shift
    timeout 300 "$MPIEXEC" -np "$np" --oversubscribe --mca btl self,tcp "$WORK/h5group" "$@"
}
N=100003
"$PY" "$TOP_SRCDIR/tests/mpi/h5data.py" make "$WORK/d.h5" $N || exit 99
for d in /grp/chunked /contig /floats /mat; do
    "$PY" "$TOP_SRCDIR/tests/mpi/h5data.py" ref "$WORK/d.h5" $d > "$WORK/ref-${d##*/}" || exit 99
done
"$PY" "$TOP_SRCDIR/tests/mpi/h5data.py" ref "$WORK/d.h5" /grp/chunked /contig > "$WORK/ref-two" ||
    exit 99
nans=$(((N + 996) / 997))

for np in $RANKS; do
    for d in /grp/chunked /contig /floats /mat; do
        name=${d##*/} out=$WORK/$name-$np
        job "$np" --input "$WORK/d.h5:$d" --output "$out" --task-size 64K --quiet \
            --max-bad-records 1000
        check "$d, $np ranks: exit 0" [ $? -eq 0 ]
        check "$d, $np ranks: equal to numpy" \
            cmp -s "$WORK/ref-$name" <(cat "$out"/part-* 2> /dev/null | LC_ALL=C sort)
        rows=$N
        [ $d = /mat ] && rows=$((N / 3))
        check "$d, $np ranks: records in = rows ($(jget "$out/_REPORT.json" records_in))" \
            [ "$(jget "$out/_REPORT.json" records_in)" = $rows ]
        check "$d, $np ranks: several tasks ($(jget "$out/_REPORT.json" tasks))" \
            [ "$(jget "$out/_REPORT.json" tasks)" -ge 3 ]
    done
    check "/floats, $np ranks: the NaNs are bad records ($nans)" \
        [ "$(cat "$WORK/floats-$np"/_BAD_RECORDS/* 2> /dev/null | grep -c NaN)" = $nans ]
    job "$np" --input "$WORK/d.h5:/grp/chunked" "$WORK/d.h5:/contig" --output "$WORK/two-$np" \
        --task-size 64K --quiet
    check "two datasets, $np ranks: equal to numpy" \
        cmp -s "$WORK/ref-two" <(cat "$WORK/two-$np"/part-* 2> /dev/null | LC_ALL=C sort)
done

# preempted in the map (USR1 while every rank is paused after its first
# task), resumed on another rank count: the same tasks planned again, the
# output the uninterrupted one
usr1_in_map "$WORK/h5group" --input "$WORK/d.h5:/grp/chunked" --output "$WORK/ck-out" \
    --checkpoint-dir "$WORK/ck" --checkpoint-policy always --task-size 64K --quiet
check "USR1 in the map: exit 75 ($rc), no output" [ "$rc" -eq 75 ] && [ ! -e "$WORK/ck-out" ]
job 4 --input "$WORK/d.h5:/grp/chunked" --output "$WORK/ck-out" --checkpoint-dir "$WORK/ck" \
    --checkpoint-policy always --task-size 64K > "$WORK/resume.log" 2>&1
check "resumed on 4 ranks: exit 0, says it resumed" \
    sh -c '[ $1 -eq 0 ] && grep -qi "resum" "$2"' _ $? "$WORK/resume.log"
check "resumed: equal to numpy" \
    cmp -s "$WORK/ref-chunked" <(cat "$WORK/ck-out"/part-* 2> /dev/null | LC_ALL=C sort)

# refused: exit 2, the message names the input and what is wrong
refused() { # refused WHAT EXPECT ARGS...
    local what=$1 expect=$2; shift 2
    "$@" --output "$WORK/o" --quiet 2> "$WORK/err"
    local rc=$?
    check "$what: exit 2 ($rc), says '$expect', no output" \
        sh -c '[ $1 -eq 2 ] && grep -q -- "$2" "$3" && [ ! -e "$4" ]' _ $rc "$expect" "$WORK/err" \
        "$WORK/o"
}
refused "a missing file" "no/such.h5:/x" job 2 --input "$WORK/no/such.h5:/x"
refused "a missing dataset" "no dataset '/nope'" job 2 --input "$WORK/d.h5:/nope"
refused "an empty dataset" "empty" job 2 --input "$WORK/d.h5:/empty"
refused "a 3-D dataset" "3 dimensions" job 2 --input "$WORK/d.h5:/cube"
refused "variable-length strings" "variable-length string" job 2 --input "$WORK/d.h5:/strings"
refused "elements of two sizes" "one size" job 2 --input "$WORK/d.h5:/contig" "$WORK/d.h5:/floats"
refused "a plain file for a dataset job" "FILE.h5:/PATH" job 2 --input "$TOP_SRCDIR/README.md"
refused "a whole HDF5 file for a dataset job" "FILE.h5:/PATH" job 2 --input "$WORK/d.h5"
refused "a dataset for a line job" "HDF5 dataset" mpi 2 tcp run wordcount --input "$WORK/d.h5:/contig"
finish
