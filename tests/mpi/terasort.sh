# terasort.sh -- terasort at 1, 2 and 4 ranks over shared memory and TCP:
# output passes `validate`, equals a coreutils sort of the records (as hex
# lines), and is byte-identical whatever the rank count.
. "${TOP_SRCDIR:-.}/tests/mpi/lib.sh"

in=$WORK/in
mkdir -p "$in"
"$MRFLOW" gen terasort --size 3M --seed 11 --output "$in/a.dat" 2>/dev/null || exit 99
"$MRFLOW" gen terasort --size 1M --seed 12 --output "$in/b.dat" 2>/dev/null || exit 99
# duplicate keys with different payloads: ties must be ordered, not arbitrary
head -c 1000 "$in/a.dat" > "$WORK/d" && cat "$WORK/d" "$WORK/d" > "$in/c.dat"
dd if="$in/b.dat" bs=100 count=50 status=none >> "$in/c.dat"

hexrecs() { od -An -v -tx1 -w100 | tr -d ' '; }
cat "$in"/*.dat | hexrecs | sort > "$WORK/ref"
first=
for np in $RANKS; do
    for btl in $BTLS; do
        out=$WORK/out-$np-$btl
        if mpi "$np" "$btl" run terasort --input "$in" --output "$out" --task-size 64K --quiet; then
            check "terasort np=$np btl=$btl validates against its input" \
                "$MRFLOW" validate terasort "$out" --input "$in"
            cat "$out"/part-* | hexrecs > "$WORK/got"
            check "terasort np=$np btl=$btl equals coreutils sort" cmp -s "$WORK/ref" "$WORK/got"
            cat "$out"/part-* > "$WORK/cat-$np-$btl"
            if [ -z "$first" ]; then
                first=$WORK/cat-$np-$btl
            else
                check "terasort np=$np btl=$btl byte-identical to $(basename "$first")" \
                    cmp -s "$first" "$WORK/cat-$np-$btl"
            fi
        else
            not_ok "terasort np=$np btl=$btl exited non-zero"
        fi
    done
done

# many shuffle rounds and a single bucket
out=$WORK/out-rounds
if mpi 4 tcp run terasort --input "$in" --output "$out" --round-bytes 2K --quiet; then
    check "terasort in 2K shuffle rounds validates" "$MRFLOW" validate terasort "$out" --input "$in"
else
    not_ok "terasort in 2K rounds exited non-zero"
fi
out=$WORK/out-b1
if mpi 2 tcp run terasort --input "$in" --output "$out" --buckets 1 --quiet; then
    check "terasort with one bucket validates" "$MRFLOW" validate terasort "$out" --input "$in"
else
    not_ok "terasort with one bucket exited non-zero"
fi

# validate itself rejects unsorted output and a different multiset
mkdir -p "$WORK/bad"
cp "$in/a.dat" "$WORK/bad/part-00000"
check "validate rejects unsorted parts" sh -c '! "$0" validate terasort "$1" >/dev/null 2>&1' \
    "$MRFLOW" "$WORK/bad"
cp -r "$WORK/out-rounds" "$WORK/lost" && truncate -s -100 "$WORK/lost/part-00003"
check "validate rejects a lost record" sh -c '! "$0" validate terasort "$1" --input "$2" >/dev/null' \
    "$MRFLOW" "$WORK/lost" "$in"
finish
