# wordcount.sh -- wordcount at 1, 2 and 4 ranks over shared memory and TCP,
# compared with a coreutils word count on tricky inputs.
. "${TOP_SRCDIR:-.}/tests/mpi/lib.sh"

in=$WORK/in
mkdir -p "$in/many"
printf 'hello world\r\nfoo\tbar\r\nhello\r\n' > "$in/crlf.txt"
printf 'a\tb\vc\fd\re  f\t\t\tg\n\t\n  \n' > "$in/spaces.txt"
printf 'a\0b c\0\0d\n\0\na\0b\n' > "$in/nul.bin"
printf '\377\376 caf\303\251 \303\050 x \200\n\303\251\n' > "$in/badutf8.txt"
printf 'last line without a newline' > "$in/nonl.txt"
: > "$in/empty.txt"
"$MRFLOW" gen text --size 3M --seed 7 --output "$WORK/big.tmp" || exit 99
tr '\n' ' ' < "$WORK/big.tmp" > "$in/oneline.txt" && printf '\n' >> "$in/oneline.txt"
"$MRFLOW" gen text --size 2M --seed 3 --output "$in/zipf.txt" || exit 99
i=0
while [ $i -lt 120 ]; do
    printf 'w%d common\nsmall file %d\n' $((i % 17)) $i > "$in/many/f$(printf %03d $i)"
    i=$((i + 1))
done
printf 'common' > "$in/many/zz-nonl"

ref_wordcount "$in"/*.txt "$in/nul.bin" "$in"/many/* > "$WORK/ref"
[ -s "$WORK/ref" ] || { echo "empty reference"; exit 99; }

# all inputs at once, small tasks so lines are split at many boundaries
for np in $RANKS; do
    for btl in $BTLS; do
        out=$WORK/out-$np-$btl
        if mpi "$np" "$btl" run wordcount --input "$in" "$in/many" --output "$out" \
            --task-size 64K --quiet; then
            cat "$out"/part-* | sort > "$WORK/got"
            check "wordcount np=$np btl=$btl equals coreutils" cmp -s "$WORK/ref" "$WORK/got"
            check "wordcount np=$np btl=$btl parts sorted" parts_sorted "$out"
            check "wordcount np=$np btl=$btl _SUCCESS, no temporaries" \
                test -f "$out/_SUCCESS" -a "$(ls "$out" | grep -c part-)" -eq "$np"
            check "wordcount np=$np btl=$btl no leftovers" no_leftovers "$out"
        else
            not_ok "wordcount np=$np btl=$btl exited non-zero"
        fi
    done
done

# each tricky file alone, tiny tasks, 2 ranks over TCP
for f in "$in"/*.txt "$in/nul.bin"; do
    name=$(basename "$f")
    out=$WORK/one-$name
    ref_wordcount "$f" > "$WORK/ref1"
    if mpi 2 tcp run wordcount --input "$f" --output "$out" --task-size 1K --quiet; then
        cat "$out"/part-* | sort > "$WORK/got1"
        check "wordcount $name equals coreutils" cmp -s "$WORK/ref1" "$WORK/got1"
    else
        not_ok "wordcount $name exited non-zero"
    fi
done

# many shuffle rounds, with the send side staged: same answer
out=$WORK/out-rounds
if MRFLOW_SHUFFLE_STAGE=always mpi 4 tcp run wordcount --input "$in" --output "$out" \
    --round-bytes 4K --buckets 7 --quiet; then
    cat "$out"/part-* | sort > "$WORK/got"
    ref_wordcount "$in"/*.txt "$in/nul.bin" > "$WORK/ref2"
    check "wordcount in 4K shuffle rounds equals coreutils" cmp -s "$WORK/ref2" "$WORK/got"
else
    not_ok "wordcount in 4K shuffle rounds exited non-zero"
fi
# a combining table drained every 1000 keys: the reducing side combines
out=$WORK/out-drain
if MRFLOW_COMBINE_MAX_KEYS=1000 mpi 2 tcp run wordcount --input "$in" --output "$out" --quiet; then
    cat "$out"/part-* | sort > "$WORK/got"
    check "wordcount with a small combining table equals coreutils" cmp -s "$WORK/ref2" "$WORK/got"
else
    not_ok "wordcount with a small combining table exited non-zero"
fi
finish
