# skew.sh -- skewed keys: the skew partitioner balances the reduce input
# (the engine's own report, cross-checked against the parts), splits heavy
# keys only when the job has a combiner (or reduces per value), and never
# changes the output.  References: coreutils counts, the hash partitioner,
# `mrflow validate`.
. "$TOP_SRCDIR/tests/mpi/lib.sh"
export LC_ALL=C

SIZE=${MRFLOW_TEST_SKEW_SIZE:-$([ -n "${SAN_CFLAGS:-}" ] && echo 8M || echo 16M)}
NP=4

# imb LIST: max / mean of the numbers, to 4 places
imb() { echo "$1" | awk '{ m = 0; s = 0; for (i = 1; i <= NF; i++) { s += $i; if ($i > m) m = $i } printf "%.4f\n", s ? m * NF / s : 1 }'; }
# le A B: A <= B (decimals)
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
sum() { echo "$1" | awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; print s }'; }

# parts_match_report DIR: each part's line count is that rank's records_out
parts_match_report() {
    local r=0 p want
    for p in "$1"/part-*; do
        want=$(sed -n "s/.*\"rank\": $r,.*\"records_out\": \([0-9]*\),.*/\1/p" "$1/_REPORT.json")
        [ "$(wc -l < "$p")" = "$want" ] || { echo "  $p: $(wc -l < "$p") lines, report says '$want'" >&2; return 1; }
        r=$((r + 1))
    done
    [ "$r" = "$NP" ]
}

# report_consistent DIR MAPCOMBINE: the report's imbalance is max/mean of
# its delivered bytes, which add up to the bytes shuffled; without map-side
# combining (packing by the map output's own bytes) they are what the
# packing planned.  (With it and speculation, buckets are packed by each
# task's combined output, which the rank's table combines further.)
report_consistent() {
    local got planned imbalance raw
    got=$(jget "$1/_REPORT.json" reduce_input_bytes)
    planned=$(jget "$1/_REPORT.json" reduce_input_bytes_planned)
    imbalance=$(jget "$1/_REPORT.json" imbalance)
    raw=$(jget "$1/_REPORT.json" shuffle_bytes_raw)
    [ "$(imb "$got")" = "$(printf '%.4f' "$imbalance")" ] ||
        { echo "  imbalance $imbalance, bytes say $(imb "$got")" >&2; return 1; }
    [ "$(sum "$got")" = "$raw" ] || { echo "  delivered $(sum "$got") != shuffled $raw" >&2; return 1; }
    [ "$2" = on ] || [ "$got" = "$planned" ] ||
        { echo "  delivered [$got] != planned [$planned]" >&2; return 1; }
}

ref_kvcount() { cut -f1 "$1" | sort | uniq -c | sed -E 's/^ *([0-9]+) (.*)$/\2\t\1/' | sort; }

for S in 0.8 1.0 1.2 1.5; do
    in=$WORK/zipf-$S
    "$MRFLOW" gen zipf --size "$SIZE" --keys 1000000 --skew "$S" --seed 7 --output "$in" || exit 99
    ref_kvcount "$in" > "$WORK/ref"
    lines=$(wc -l < "$in")
    for mc in off on; do
        for p in hash skew; do
            out=$WORK/out-$S-$mc-$p
            if ! mpi $NP tcp run kvcount --input "$in" --output "$out" --partitioner "$p" \
                --map-combine "$mc" --quiet 2> "$WORK/err"; then
                not_ok "S=$S map-combine $mc $p: run failed"
                sed 's/^/  /' "$WORK/err"
                continue
            fi
            check "S=$S map-combine $mc $p: counts match coreutils" \
                sh -c "cat '$out'/part-* | sort | cmp -s - '$WORK/ref'"
            check "S=$S map-combine $mc $p: parts sorted" parts_sorted "$out"
            check "S=$S map-combine $mc $p: part line counts match the report" \
                parts_match_report "$out"
            check "S=$S map-combine $mc $p: report consistent" report_consistent "$out" "$mc"
        done
        hs=$WORK/out-$S-$mc-hash
        sk=$WORK/out-$S-$mc-skew
        [ -f "$sk/_REPORT.json" ] && [ -f "$hs/_REPORT.json" ] || continue
        i_hash=$(jget "$hs/_REPORT.json" imbalance)
        i_skew=$(jget "$sk/_REPORT.json" imbalance)
        echo "# S=$S map-combine $mc: imbalance hash $i_hash, skew $i_skew"
        check "S=$S map-combine $mc: skew imbalance $i_skew <= 1.10" le "$i_skew" 1.10
        if [ "$mc" = off ]; then
            # every record crosses the shuffle: the delivered records are the input lines
            check "S=$S: records delivered = input lines" \
                test "$(sum "$(jget "$sk/_REPORT.json" reduce_input_records)")" = "$lines"
            # the skew is real: without the skew partitioner it shows
            case $S in 1.2 | 1.5)
                check "S=$S: hash imbalance $i_hash > 1.2 (the test can see skew)" \
                    le 1.2 "$i_hash" ;;
            esac
            found=$(jget "$sk/_REPORT.json" found)
            split=$(jget "$sk/_REPORT.json" split)
            case $S in 1.0 | 1.2 | 1.5)
                check "S=$S: heavy keys found ($found) and split ($split)" \
                    sh -c "[ '$found' -ge 1 ] && [ '$split' = '$found' ]" ;;
            esac
        fi
    done
    rm -rf "$WORK"/out-"$S"-* "$in"
done

# one key is 60% of the words: counted once, exactly, on 1, 2 and 4 ranks
awk 'BEGIN { srand(11); for (l = 0; l < 60000; l++) { line = "";
        for (w = 0; w < 10; w++) line = line (w ? " " : "") (rand() < 0.6 ? "hot" : "w" int(rand() * 20000));
        print line } }' > "$WORK/hot60" || exit 99
ref_wordcount "$WORK/hot60" > "$WORK/hot60.ref"
hot_want=$(grep "^hot$TAB" "$WORK/hot60.ref")
for np in 1 2 4; do
    for mc in on off; do
        out=$WORK/hot60-$np-$mc
        if mpi "$np" tcp run wordcount --input "$WORK/hot60" --output "$out" --map-combine "$mc" \
            --quiet 2> "$WORK/err"; then
            check "60% one word, $np ranks, map-combine $mc: the word once, right count" \
                test "$(cat "$out"/part-* | grep "^hot$TAB")" = "$hot_want"
            check "60% one word, $np ranks, map-combine $mc: all counts match coreutils" \
                sh -c "cat '$out'/part-* | sort | cmp -s - '$WORK/hot60.ref'"
            if [ "$np" = 4 ] && [ "$mc" = off ]; then
                check "60% one word: report names it heavy and split" \
                    sh -c "grep -q '\"key\": \"hot\"' '$out/_REPORT.json' &&
                           [ \"\$(sed -n 's/.*\"key\": \"hot\".*\"buckets\": \([0-9]*\)}.*/\1/p' '$out/_REPORT.json')\" -gt 1 ]"
                i=$(jget "$out/_REPORT.json" imbalance)
                check "60% one word, 4 ranks: imbalance $i <= 1.10" le "$i" 1.10
            fi
        else
            not_ok "60% one word, $np ranks, map-combine $mc: run failed"
            sed 's/^/  /' "$WORK/err"
        fi
        rm -rf "$out"
    done
done

# terasort where 30% of the records share one key: ordered, complete, and
# the tie spread over adjacent parts
"$MRFLOW" gen terasort --size 8M --hot-key-share 0.3 --seed 5 --output "$WORK/tera30" || exit 99
for np in 1 2 4; do
    out=$WORK/tera30-$np
    if mpi "$np" tcp run terasort --input "$WORK/tera30" --output "$out" --quiet 2> "$WORK/err"; then
        check "terasort 30% one key, $np ranks: validates" \
            "$MRFLOW" validate terasort "$out" --input "$WORK/tera30"
        if [ "$np" = 4 ]; then
            i=$(jget "$out/_REPORT.json" imbalance)
            ties=$(jget "$out/_REPORT.json" range_tie_keys)
            check "terasort 30% one key: the tie is spread (1 tie key: $ties; imbalance $i <= 1.25)" \
                sh -c "[ '$ties' = 1 ] && awk -v a='$i' 'BEGIN { exit !(a <= 1.25) }'"
        fi
    else
        not_ok "terasort 30% one key, $np ranks: run failed"
        sed 's/^/  /' "$WORK/err"
    fi
    rm -rf "$out"
done
check "terasort refuses --partitioner hash (exit 2)" \
    sh -c "timeout 120 '$MPIEXEC' -np 1 '$MRFLOW' run terasort --input '$WORK/tera30' \
        --output '$WORK/tera-hash' --partitioner hash 2> '$WORK/err'; [ \$? = 2 ] &&
        grep -q 'partitioner range' '$WORK/err'"

# a job without a combiner: the heavy key is found but kept whole
MPICC=${MPICC:-mpicc}
libdir=$TOP_BUILDDIR/.libs
# shellcheck disable=SC2086
"$MPICC" ${SAN_CFLAGS:-} -std=c11 -Wall -Wextra -Werror -I"$TOP_SRCDIR/include" \
    "$TOP_SRCDIR/tests/mpi/hotkey.c" -o "$WORK/hotkey" -L"$libdir" -lmrflow \
    -Wl,-rpath,"$libdir" || { echo "cannot build the hot-key job"; exit 99; }
yes x | head -n 20000 > "$WORK/hot" || exit 99
if timeout 300 "$MPIEXEC" -np $NP --oversubscribe --mca btl self,tcp "$WORK/hotkey" \
    --input "$WORK/hot" --output "$WORK/hot-out" --quiet 2> "$WORK/err"; then
    check "no combiner: one line for the hot key, all values" \
        test "$(cat "$WORK/hot-out"/part-*)" = "hot${TAB}20000 $((20000 * 19999)) ordered"
    check "no combiner: report says found 1, split 0, and why" \
        sh -c "[ '$(jget "$WORK/hot-out/_REPORT.json" found)' = 1 ] &&
               [ '$(jget "$WORK/hot-out/_REPORT.json" split)' = 0 ] &&
               grep -q 'not split: the job has no combiner' '$WORK/hot-out/_REPORT.json'"
else
    not_ok "no combiner: run failed"
    sed 's/^/  /' "$WORK/err"
fi

finish
