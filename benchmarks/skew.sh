#!/bin/sh
# skew.sh -- hash vs skew partitioning on Zipf-distributed keys: kvcount over
# `mrflow gen zipf` data for S in {0, 0.8, 1.0, 1.2, 1.5}, on 2 and 4 ranks,
# REPS runs of each configuration, all in this one run.  For each: the
# median wall time of the whole job, of the map, and of the reduce phase
# (everything after the map: the shuffle, where the reducing side combines
# what it receives, plus the final reduce; both end in lock step, so the
# slowest rank sets them), the imbalance of reduce input bytes (max / mean
# over ranks), and the largest CPU time any rank spent combining what it
# received and reducing (reduce_cpu_s_max: its own work, which is what the
# reduce side would take with a core per rank; on a machine with fewer cores
# than ranks the wall times measure the total work instead), all read from
# the engine's OUTPUT/_REPORT.json.
#
# MODES "off on" runs with --map-combine off (every pair crosses the
# shuffle: where key skew hits the reducing ranks) and with the default on
# (each rank combines first: the reduce input is one record per distinct
# key and rank, so hashing balances it already, and this measures what the
# skew partitioner's sample costs).
#
# Writes bench-out/skew.csv, bench-out/skew.png (gnuplot, when installed)
# and prints a Markdown table with the ratios hash / skew.
#   SIZE (128M) KEYS (1000000) SKEWS ("0 0.8 1.0 1.2 1.5") RANKS ("2 4")
#   MODES ("off on") REPS (3) BTL (tcp)
set -eu
cd "$(dirname "$0")/.."
SIZE=${SIZE:-128M}
KEYS=${KEYS:-1000000}
SKEWS=${SKEWS:-"0 0.8 1.0 1.2 1.5"}
RANKS=${RANKS:-"2 4"}
MODES=${MODES:-"off on"}
REPS=${REPS:-3}
BTL=${BTL:-tcp}
export LC_ALL=C OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_tcp_if_include=${OMPI_MCA_btl_tcp_if_include:-lo}
make -s mrflow
mkdir -p bench-out
csv=bench-out/skew.csv
raw=bench-out/skew-runs.txt

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
jget() { sed -n "s/^ *\"$2\": \(.*\)$/\1/p" "$1" | head -n 1 | sed 's/,$//'; }

: > "$raw"
for S in $SKEWS; do
    in=bench-out/zipf-$S-$SIZE.txt
    [ -f "$in" ] || ./mrflow gen zipf --size "$SIZE" --keys "$KEYS" --skew "$S" --seed 1 --output "$in"
    cat "$in" > /dev/null
    for np in $RANKS; do
        for mode in $MODES; do
            for rep in $(seq "$REPS"); do
                # alternate the order so drift hits both partitioners alike
                parts="hash skew"
                [ $((rep % 2)) = 0 ] && parts="skew hash"
                for p in $parts; do
                    rm -rf bench-out/skew-out
                    mpirun -np "$np" --oversubscribe --mca btl "self,$BTL" ./mrflow run kvcount \
                        --input "$in" --output bench-out/skew-out --partitioner "$p" \
                        --map-combine "$mode" --quiet
                    r=bench-out/skew-out/_REPORT.json
                    echo "$S $np $mode $p $(jget $r elapsed_s) $(jget $r map_s)" \
                        "$(jget $r shuffle_s) $(jget $r reduce_s) $(jget $r imbalance)" \
                        "$(jget $r decide_s) $(jget $r reduce_cpu_s_max)" >> "$raw"
                done
            done
        done
    done
done
rm -rf bench-out/skew-out

# medians per (S, ranks, mode, partitioner)
echo "skew,ranks,map_combine,partitioner,elapsed_s,map_s,reduce_phase_s,imbalance,decide_s,reduce_cpu_max_s" > "$csv"
for S in $SKEWS; do for np in $RANKS; do for mode in $MODES; do for p in hash skew; do
    sel() { awk -v S="$S" -v n="$np" -v m="$mode" -v p="$p" -v c="$1" \
        '$1 == S && $2 == n && $3 == m && $4 == p { print $c }' "$raw" | median; }
    red=$(awk -v S="$S" -v n="$np" -v m="$mode" -v p="$p" \
        '$1 == S && $2 == n && $3 == m && $4 == p { print $7 + $8 }' "$raw" | median)
    echo "$S,$np,$mode,$p,$(sel 5),$(sel 6),$red,$(sel 9),$(sel 10),$(sel 11)" >> "$csv"
done; done; done; done

echo "kvcount on $SIZE of Zipf keys ($KEYS distinct), btl self,$BTL, $(nproc) cores," \
    "medians of $REPS runs; reduce phase = shuffle + reduce"
echo
echo "| S | ranks | map-combine | imbalance hash | skew | reduce phase hash s | skew s | hash/skew | slowest rank's reduce CPU hash s | skew s | hash/skew | job hash s | skew s | skew/hash |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
awk -F, 'NR > 1 { k = $1 "," $2 "," $3; if ($4 == "hash") { h[k] = $0 } else { s[k] = $0; o[++n] = k } }
    END { for (i = 1; i <= n; i++) { k = o[i]; split(h[k], a, ","); split(s[k], b, ",");
        printf "| %s | %s | %s | %.3f | %.3f | %.3f | %.3f | %.2fx | %.3f | %.3f | %.2fx | %.3f | %.3f | %.3f |\n",
            a[1], a[2], a[3], a[8], b[8], a[7], b[7], a[7] / b[7], a[10], b[10], a[10] / b[10],
            a[5], b[5], b[5] / a[5] } }' "$csv"

# panel COLUMN YLABEL: one gnuplot panel, a line per (ranks, partitioner)
panel() {
    echo "set ylabel '$2'"
    printf "plot"
    sep=""
    for np in $RANKS; do for p in hash skew; do
        printf "%s 'bench-out/skew-%s-off-%s.dat' using 1:%s with linespoints title '%s, %s ranks'" \
            "$sep" "$np" "$p" "$1" "$p" "$np"
        sep=","
    done; done
    echo
}

if command -v gnuplot > /dev/null; then
    for np in $RANKS; do for mode in $MODES; do for p in hash skew; do
        awk -F, -v n="$np" -v m="$mode" -v p="$p" '$2 == n && $3 == m && $4 == p { print $1, $7, $8, $10 }' \
            "$csv" > "bench-out/skew-$np-$mode-$p.dat"
    done; done; done
    {
        echo "set terminal pngcairo size 1500,500 font ',10'"
        echo "set output 'bench-out/skew.png'"
        echo "set multiplot layout 1,3 title 'kvcount, $SIZE Zipf keys, --map-combine off, $(nproc) cores'"
        echo "set xlabel 'Zipf exponent S'; set key top left; set grid"
        panel 2 "reduce phase (s), median of $REPS"
        panel 4 "slowest rank reduce CPU (s), median of $REPS"
        panel 3 "imbalance of reduce input bytes (max/mean)"
        echo "unset multiplot"
    } > bench-out/skew.gp
    if echo "$MODES" | grep -q off; then
        gnuplot bench-out/skew.gp && echo && echo "plot: bench-out/skew.png"
    fi
else
    echo
    echo "(no gnuplot: apt-get install gnuplot-nox for bench-out/skew.png)"
fi
echo "data: $csv (medians), $raw (every run)"
