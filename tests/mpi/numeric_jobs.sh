# numeric_jobs.sh -- the histogram and groupby jobs over HDF5 datasets h5py
# writes (tests/mpi/h5data.py), at 1, 2 and 4 ranks over TCP, equal to
# numpy's answers: 1-D floats with NaNs (bad records), a compound field of a
# chunked gzip-filtered dataset, a 2-D int16 dataset (every column), values
# below and above the range; groupby on skewed negative int64 keys (one key
# holds about 40 % of the rows, so it is split over ranks) in a chunked and
# a contiguous dataset, and on unsigned keys with NaN values; N rows not a
# multiple of any chunk; --format hdf5 writes typed datasets (int64 keys,
# uint64 counts or a compound) that h5py reads as numpy arrays equal to
# numpy's answers.  Then every refusal of a bad option or a field that is
# missing or of the wrong kind: exit 2 naming it, no output.
. "$TOP_SRCDIR/tests/mpi/lib.sh"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
"$PY" -c 'import h5py, numpy' 2> /dev/null ||
    { echo "SKIP: needs h5py and numpy (apt-get install python3-h5py; scripts/setup.sh does)"; exit 77; }
H5DATA=$TOP_SRCDIR/tests/mpi/h5data.py
N=100003
"$PY" "$H5DATA" make "$WORK/d.h5" $N || exit 99
D=$WORK/d.h5

# name|job options|reference arguments
cases="floats|histogram --input $D:/floats --range -1000:1000 --bins 20|hist $D /floats '' -1000 1000 20
field|histogram --input $D:/grp/chunked --field val --range -100:300 --bins 7|hist $D /grp/chunked val -100 300 7
mat|histogram --input $D:/mat --range=-300:300 --bins 13|hist $D /mat '' -300 300 13
uint|histogram --input $D:/nanrec --field id --range 0:500 --bins 1000|hist $D /nanrec id 0 500 1000
chunked|groupby --input $D:/grp/chunked --key key --value val|groupby $D /grp/chunked key val
contig|groupby --input $D:/contig --key key --value val|groupby $D /contig key val
nan|groupby --input $D:/nanrec --key id --value x|groupby $D /nanrec id x"
while IFS='|' read -r name args refargs; do
    eval "\"\$PY\" \"\$H5DATA\" $refargs" > "$WORK/ref-$name" || exit 99
done << END
$cases
END
for np in $RANKS; do
    while IFS='|' read -r name args refargs; do
        out=$WORK/$name-$np
        # shellcheck disable=SC2086
        mpi "$np" tcp run $args --output "$out" --task-size 64K --quiet --max-bad-records 1000 \
            < /dev/null
        check "$name ($args), $np ranks: exit 0" [ $? -eq 0 ]
        check "$name, $np ranks: equal to numpy" \
            cmp -s "$WORK/ref-$name" <(cat "$out"/part-* 2> /dev/null | LC_ALL=C sort)
    done << END
$cases
END
    check "floats, $np ranks: the NaNs are bad records" \
        [ "$(cat "$WORK/floats-$np"/_BAD_RECORDS/* 2> /dev/null | grep -c NaN)" = $(((N + 996) / 997)) ]
    check "nan, $np ranks: the NaNs are bad records" \
        [ "$(cat "$WORK/nan-$np"/_BAD_RECORDS/* 2> /dev/null | grep -c NaN)" = $(((N + 500) / 501)) ]
done
# typed HDF5 output: int64 bins and uint64 counts; int64 keys and a
# compound of count, sum, min, max; read as numpy reads them
for np in 1 2 4; do
    mpi "$np" tcp run histogram --input "$D:/floats" --range -1000:1000 --bins 20 --format hdf5 \
        --output "$WORK/th-$np" --task-size 64K --quiet --max-bad-records 1000
    "$PY" "$H5DATA" typed "$WORK/th-$np/output.h5" > "$WORK/th-$np.txt" 2> "$WORK/th-$np.err"
    check "histogram --format hdf5, $np ranks: int64 keys, uint64 counts" \
        [ "$(head -1 "$WORK/th-$np.txt")" = "dtypes: int64 uint64" ]
    check "histogram --format hdf5, $np ranks: equal to numpy" \
        cmp -s "$WORK/ref-floats" <(tail -n +2 "$WORK/th-$np.txt")
    mpi "$np" tcp run groupby --input "$D:/grp/chunked" --key key --value val --format hdf5 \
        --output "$WORK/tg-$np" --task-size 64K --quiet
    "$PY" "$H5DATA" typed "$WORK/tg-$np/output.h5" > "$WORK/tg-$np.txt" 2> "$WORK/tg-$np.err"
    check "groupby --format hdf5, $np ranks: int64 keys, a compound of count, sum, min, max" \
        grep -qF "dtypes: int64 [('count', '<u8'), ('sum', '<f8'), ('min', '<f8'), ('max', '<f8')]" \
        "$WORK/tg-$np.txt"
    check "groupby --format hdf5, $np ranks: equal to numpy" \
        cmp -s "$WORK/ref-chunked" <(tail -n +2 "$WORK/tg-$np.txt")
    check "groupby --format hdf5, $np ranks: mrflow inspect verifies it" \
        "$MRFLOW" inspect "$WORK/tg-$np/output.h5"
done

check "the heaviest groupby key (-299) holds over a third of the rows" \
    awk -F'\t' -v n=$N '$1 == -299 && $2 > n / 3 { ok = 1 } END { exit !ok }' "$WORK/ref-chunked"

refused() { # refused WHAT EXPECT JOB ARGS...
    local what=$1 expect=$2; shift 2
    mpi 2 tcp run "$@" --output "$WORK/o" --quiet 2> "$WORK/err"
    local rc=$?
    check "$what: exit 2 ($rc), says '$expect', no output" \
        sh -c '[ $1 -eq 2 ] && grep -q -- "$2" "$3" && [ ! -e "$4" ]' _ $rc "$expect" "$WORK/err" \
        "$WORK/o"
}
refused "histogram of a compound without --field" "name the one to count with --field" \
    histogram --input "$D:/grp/chunked" --range 0:1
refused "histogram, a missing field" "no field 'nope'" \
    histogram --input "$D:/grp/chunked" --field nope --range 0:1
refused "histogram, a string field" "field tag of" \
    histogram --input "$D:/grp/chunked" --field tag --range 0:1
refused "histogram, no --range" "--range LO:HI is required" histogram --input "$D:/floats"
refused "histogram, --range HI < LO" "LO < HI" histogram --input "$D:/floats" --range 1:0
refused "histogram, --range of one number" "LO < HI" histogram --input "$D:/floats" --range 5
refused "histogram, --bins 0" "bins must be" histogram --input "$D:/floats" --range 0:1 --bins 0
refused "histogram, --bins x" "not an integer" histogram --input "$D:/floats" --range 0:1 --bins x
refused "groupby, no --key" "--key FIELD is required" groupby --input "$D:/grp/chunked" --value val
refused "groupby, a float key" "is not an integer" groupby --input "$D:/grp/chunked" --key val --value key
refused "groupby, a missing value field" "no field 'v'" groupby --input "$D:/grp/chunked" --key key --value v
refused "groupby of numbers (no fields)" "no field 'a'" groupby --input "$D:/floats" --key a --value b
refused "groupby of a plain file" "FILE.h5:/PATH" groupby --input "$TOP_SRCDIR/README.md" --key a --value b
"$MRFLOW" run histogram --help > "$WORK/help"
check "histogram --help lists its options" \
    sh -c 'grep -q -- "--range LO:HI" "$1" && grep -q -- "--bins N" "$1" && grep -q -- "--field NAME" "$1"' _ "$WORK/help"
finish
