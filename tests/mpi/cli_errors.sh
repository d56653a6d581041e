# cli_errors.sh -- bad input and usage: exit status 2, a one-line message that
# names the problem, and no output (partial or temporary) left behind.
. "${TOP_SRCDIR:-.}/tests/mpi/lib.sh"

"$MRFLOW" gen text --size 64K --output "$WORK/text" || exit 99
chmod 755 "$WORK"

# expect_usage NAME PATTERN OUTDIR CMD...: exit 2, one line matching PATTERN,
# OUTDIR absent and no temporary sibling of it
expect_usage() {
    local name=$1 pat=$2 out=$3 rc; shift 3
    "$@" > "$WORK/stdout" 2> "$WORK/stderr"; rc=$?
    if [ $rc -ne 2 ]; then not_ok "$name: exit $rc, expected 2"; sed 's/^/  /' "$WORK/stderr"; return; fi
    if [ "$(wc -l < "$WORK/stderr")" -ne 1 ]; then
        not_ok "$name: expected a one-line message"; sed 's/^/  /' "$WORK/stderr"; return
    fi
    if ! grep -q -- "$pat" "$WORK/stderr"; then
        not_ok "$name: message does not name '$pat'"; sed 's/^/  /' "$WORK/stderr"; return
    fi
    if [ -n "$out" ] && { [ -e "$out" ] || ! no_leftovers "$out"; }; then
        not_ok "$name: left output behind"; return
    fi
    ok "$name"
}

expect_usage "missing input" "$WORK/nope" "$WORK/o1" \
    "$MRFLOW" run wordcount --input "$WORK/nope" --output "$WORK/o1"
expect_usage "missing input among good ones" "$WORK/nope" "$WORK/o1" \
    "$MRFLOW" run wordcount --input "$WORK/text" "$WORK/nope" --output "$WORK/o1"
mkfifo "$WORK/fifo"
expect_usage "FIFO input" "FIFO" "$WORK/o1" \
    "$MRFLOW" run wordcount --input "$WORK/fifo" --output "$WORK/o1"
expect_usage "unknown job" "nosuchjob" "" "$MRFLOW" run nosuchjob --input "$WORK/text" --output "$WORK/o1"
expect_usage "unknown option" "--frobnicate" "$WORK/o1" \
    "$MRFLOW" run wordcount --input "$WORK/text" --output "$WORK/o1" --frobnicate
expect_usage "no --output" "--output" "" "$MRFLOW" run wordcount --input "$WORK/text"
expect_usage "bad --task-size" "--task-size" "$WORK/o1" \
    "$MRFLOW" run wordcount --input "$WORK/text" --output "$WORK/o1" --task-size 12Q
expect_usage "bad --partitioner" "--partitioner" "$WORK/o1" \
    "$MRFLOW" run wordcount --input "$WORK/text" --output "$WORK/o1" --partitioner modulo
expect_usage "bad --map-combine" "--map-combine" "$WORK/o1" \
    "$MRFLOW" run wordcount --input "$WORK/text" --output "$WORK/o1" --map-combine maybe
expect_usage "ordered job with --partitioner skew" "partitioner range" "$WORK/o1" \
    "$MRFLOW" run terasort --input "$WORK/text" --output "$WORK/o1" --partitioner skew
expect_usage "bad --checkpoint-every" "--checkpoint-every" "$WORK/o1" \
    "$MRFLOW" run wordcount --input "$WORK/text" --output "$WORK/o1" --checkpoint-every soon
expect_usage "empty --checkpoint-dir" "--checkpoint-dir" "$WORK/o1" \
    "$MRFLOW" run wordcount --input "$WORK/text" --output "$WORK/o1" --checkpoint-dir=
expect_usage "bad --fault crash phase" "crash:rank=R:phase" "$WORK/o1" \
    "$MRFLOW" run wordcount --input "$WORK/text" --output "$WORK/o1" --fault crash:rank=1:phase=sort
expect_usage "inspect without a file" "inspect" "" "$MRFLOW" inspect
expect_usage "bad --format" "--format" "$WORK/o1" \
    "$MRFLOW" run wordcount --input "$WORK/text" --output "$WORK/o1" --format parquet
expect_usage "inspect a file that is not HDF5" "not a readable HDF5 file" "" \
    "$MRFLOW" inspect "$WORK/text"
# compressed and HDF5 files are refused by their first bytes, whatever
# their names (before, a .zst input was counted as words and exit 0), but
# for zstd- and gzip-compressed lines, which are read
# (tests/mpi/compressed_input.sh); made
# by the real tools, the HDF5 file by mrflow's own --format hdf5
for z in "zstd -q -c:zstd-compressed" "gzip -c:gzip-compressed" "xz -c:xz-compressed" \
    "bzip2 -c:bzip2-compressed" "lz4 -q -c:lz4-compressed"; do
    tool=${z%%:*} what=${z#*:}
    $tool < "$WORK/text" > "$WORK/packed.dat" || { not_ok "$tool: cannot compress"; continue; }
    [ "$what" = zstd-compressed ] || [ "$what" = gzip-compressed ] ||
        expect_usage "input compressed with ${tool%% *} (named .dat)" "$what" "$WORK/o1" \
            "$MRFLOW" run wordcount --input "$WORK/packed.dat" --output "$WORK/o1"
    expect_usage "records job, input compressed with ${tool%% *}" "$what" "$WORK/o1" \
        "$MRFLOW" run terasort --input "$WORK/text" "$WORK/packed.dat" --output "$WORK/o1"
done
"$MRFLOW" run wordcount --input "$WORK/text" --output "$WORK/h5" --format hdf5 --quiet || exit 99
expect_usage "an HDF5 file as input" "an HDF5 file" "$WORK/o1" \
    "$MRFLOW" run wordcount --input "$WORK/h5/output.h5" --output "$WORK/o1"
expect_usage "gen zipf --skew out of range" "--skew" "" \
    "$MRFLOW" gen zipf --size 1K --skew 6 --output "$WORK/g"
expect_usage "gen zipf --keys 0" "--keys" "" "$MRFLOW" gen zipf --size 1K --keys 0 --output "$WORK/g"
expect_usage "gen terasort --hot-key-share 2" "--hot-key-share" "" \
    "$MRFLOW" gen terasort --size 1K --hot-key-share 2 --output "$WORK/g"
expect_usage "gen --size garbage" "--size" "" "$MRFLOW" gen text --size lots --output "$WORK/g"
check "gen --size garbage wrote nothing" test ! -e "$WORK/g"
expect_usage "unknown command" "frob" "" "$MRFLOW" frob
expect_usage "output parent missing" "$WORK/no/such" "$WORK/no/such/o" \
    "$MRFLOW" run wordcount --input "$WORK/text" --output "$WORK/no/such/o"
head -c 250 "$WORK/text" > "$WORK/partial.dat"
expect_usage "terasort trailing partial record" "partial.dat" "$WORK/o1" \
    "$MRFLOW" run terasort --input "$WORK/partial.dat" --output "$WORK/o1"

mkdir "$WORK/exists" && echo keep > "$WORK/exists/mine"
expect_usage "output exists" "exists" "" \
    "$MRFLOW" run wordcount --input "$WORK/text" --output "$WORK/exists"
check "existing output untouched" test "$(cat "$WORK/exists/mine")" = keep
check "existing output has no temporaries beside it" no_leftovers "$WORK/exists"

# the same errors under mpiexec: every rank agrees, status 2
rc=0; mpi 2 tcp run wordcount --input "$WORK/nope" --output "$WORK/o2" 2> "$WORK/stderr" || rc=$?
check "missing input under mpiexec -np 2: exit 2" test $rc -eq 2
check "missing input under mpiexec -np 2: named" grep -q "$WORK/nope" "$WORK/stderr"
check "missing input under mpiexec -np 2: no output" test ! -e "$WORK/o2"
rc=0; mpi 4 tcp run wordcount --input "$WORK/text" --output "$WORK/exists" 2> "$WORK/stderr" || rc=$?
check "output exists under mpiexec -np 4: exit 2" test $rc -eq 2

# an unreadable file: as root, read it as user nobody
echo secret > "$WORK/secret" && chmod 600 "$WORK/secret"
mkdir -m 1777 "$WORK/pub"
if [ "$(id -u)" -eq 0 ]; then
    if command -v setpriv > /dev/null; then
        expect_usage "unreadable input" "Permission denied" "$WORK/pub/o" \
            setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$WORK/pub" \
            TMPDIR="$WORK/pub" "$MRFLOW" run wordcount --input "$WORK/secret" --output "$WORK/pub/o"
    else
        echo "skip - unreadable input (no setpriv to drop root)"
    fi
else
    chmod 000 "$WORK/secret"
    expect_usage "unreadable input" "Permission denied" "$WORK/pub/o" \
        "$MRFLOW" run wordcount --input "$WORK/secret" --output "$WORK/pub/o"
fi

# --overwrite replaces a directory, and only once the job has succeeded
"$MRFLOW" run wordcount --input "$WORK/text" --output "$WORK/exists" --overwrite --quiet
check "--overwrite replaced the old output" test ! -e "$WORK/exists/mine" -a -f "$WORK/exists/_SUCCESS"
ref_wordcount "$WORK/text" > "$WORK/ref"
cat "$WORK/exists"/part-* | sort > "$WORK/got"
check "--overwrite output is right" cmp -s "$WORK/ref" "$WORK/got"
check "--overwrite left nothing beside it" no_leftovers "$WORK/exists"
echo keep > "$WORK/exists/mine2"
"$MRFLOW" run wordcount --input "$WORK/nope" --output "$WORK/exists" --overwrite 2> /dev/null
check "--overwrite with a failing job keeps the old output" test -f "$WORK/exists/mine2"

# gen is deterministic for a seed, and the seed matters
"$MRFLOW" gen text --size 100K --seed 9 --output "$WORK/g1"
"$MRFLOW" gen text --size 100K --seed 9 --output "$WORK/g2"
"$MRFLOW" gen text --size 100K --seed 10 --output "$WORK/g3"
check "gen text: same seed, same bytes" cmp -s "$WORK/g1" "$WORK/g2"
check "gen text: other seed, other bytes" sh -c '! cmp -s "$0" "$1"' "$WORK/g1" "$WORK/g3"
check "gen text: exactly --size bytes" test "$(stat -c %s "$WORK/g1")" -eq 102400
"$MRFLOW" gen zipf --size 100K --seed 9 --skew 1.2 --keys 1000 --output "$WORK/z1"
"$MRFLOW" gen zipf --size 100K --seed 9 --skew 1.2 --keys 1000 --output "$WORK/z2"
check "gen zipf: same seed, same bytes, exactly --size" \
    sh -c 'cmp -s "$0" "$1" && [ "$(stat -c %s "$0")" -eq 102400 ]' "$WORK/z1" "$WORK/z2"
check "gen zipf: at most --keys distinct keys, the top one ~ 1/H(1000, 1.2) = 22% of lines" \
    sh -c 'n=$(cut -f1 "$0" | sort -u | wc -l); top=$(cut -f1 "$0" | sort | uniq -c | sort -rn | head -1 | awk "{print \$1}");
           all=$(wc -l < "$0"); [ "$n" -le 1000 ] && awk -v t="$top" -v a="$all" "BEGIN { exit !(t / a > 0.19 && t / a < 0.25) }"' "$WORK/z1"
"$MRFLOW" gen terasort --size 1001 --output "$WORK/t1" 2> /dev/null
check "gen terasort: whole records" test "$(stat -c %s "$WORK/t1")" -eq 1000

# an input directory with no files is an empty job, not an error
mkdir "$WORK/emptydir"
rc=0; mpi 2 tcp run wordcount --input "$WORK/emptydir" --output "$WORK/eo" --quiet || rc=$?
check "empty input directory: exit 0, empty parts" \
    test $rc -eq 0 -a -f "$WORK/eo/_SUCCESS" -a ! -s "$WORK/eo/part-00000" -a ! -s "$WORK/eo/part-00001"

# help and version tell the truth and succeed
check "--help lists --input" sh -c '"$0" run wordcount --help | grep -q -- "--input"' "$MRFLOW"
check "--version" sh -c '"$0" --version | grep -q "^mrflow [0-9]"' "$MRFLOW"
check "jobs lists the jobs" sh -c '"$0" jobs | grep -q wordcount && "$0" jobs | grep -q terasort &&
    "$0" jobs | grep -q kvcount' "$MRFLOW"
rc=0; "$MRFLOW" > /dev/null 2>&1 || rc=$?
check "no command: exit 2" test $rc -eq 2
finish
