#!/bin/sh
# straggler.sh -- wall time of wordcount at 4 ranks with {no slow rank, one
# rank 3x slow, one rank 5x slow} x {speculation off, on}, one run each
# (the slowdown is the --fault testing switch), and each time relative to the
# run with no slow rank and speculation on.  Then what speculation costs
# when no rank is slow: wordcount over COST_TEXT and terasort over
# COST_SORT at COST_RANKS ranks, speculation on and off in REPS alternating
# pairs, the medians and the median of the per-pair ratios (target <= 1.03).
#   SIZE (128M) RANKS (4) BTL (vader) TASK_SIZE (default: the engine's, ~8 per rank)
#   COST_TEXT (512M) COST_SORT (1G; 0 skips the cost table) COST_RANKS (2) REPS (5)
set -eu
cd "$(dirname "$0")/.."
SIZE=${SIZE:-128M}
NP=${RANKS:-4}
BTL=${BTL:-vader}
export LC_ALL=C OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
make -s mrflow
mkdir -p bench-out
text=bench-out/text-$SIZE.txt
[ -f "$text" ] || ./mrflow gen text --size "$SIZE" --seed 1 --output "$text"
cat "$text" > /dev/null

run() { # run SPECULATE FAULT...: prints "seconds launched won"
    rm -rf bench-out/out
    s=$(date +%s.%N)
    mpirun -np "$NP" --oversubscribe --mca btl "self,$BTL" ./mrflow run wordcount \
        --input "$text" --output bench-out/out ${TASK_SIZE:+--task-size "$TASK_SIZE"} \
        --speculate "$@" 2> bench-out/summary
    e=$(date +%s.%N)
    l=$(sed -n 's/.* \([0-9]*\) launched.*/\1/p' bench-out/summary)
    w=$(sed -n 's/.* \([0-9]*\) won.*/\1/p' bench-out/summary)
    echo "$(awk -v s="$s" -v e="$e" 'BEGIN { print e - s }') $l $w"
}

echo "wordcount, $SIZE, $NP ranks on $(nproc) cores, btl self,$BTL, task size ${TASK_SIZE:-default}, one run each"
echo
echo "| slow rank      | speculation | wall s | vs baseline | backups launched | won |"
echo "|----------------|-------------|--------|-------------|------------------|-----|"
run on > /dev/null # warm-up, not reported
set -- $(run on)
base=$1
for slow in none 3 5; do
    for spec in off on; do
        if [ $slow = none ] && [ $spec = on ]; then
            r="$base $2 $3"
        elif [ $slow = none ]; then
            r=$(run off)
        else
            r=$(run $spec --fault slow:rank=1:factor=$slow)
        fi
        set -- $r
        label=$([ $slow = none ] && echo "none" || echo "rank 1, ${slow}x")
        awk -v l="$label" -v sp="$spec" -v t="$1" -v b="$base" -v n="$2" -v w="$3" 'BEGIN {
            printf "| %-14s | %-11s | %6.2f | %10.2fx | %16s | %3s |\n", l, sp, t, t / b, n, w }'
    done
done
rm -rf bench-out/out

# ---- the cost when nothing is slow
COST_TEXT=${COST_TEXT:-512M}
COST_SORT=${COST_SORT:-1G}
COST_RANKS=${COST_RANKS:-2}
REPS=${REPS:-5}
[ "$COST_SORT" = 0 ] && exit 0
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
once() { # once JOB INPUT SPECULATE: wall seconds
    rm -rf bench-out/out
    s=$(date +%s.%N)
    mpirun -np "$COST_RANKS" --oversubscribe --mca btl "self,$BTL" ./mrflow run "$1" --input "$2" \
        --output bench-out/out --speculate "$3" --quiet < /dev/null
    awk -v s="$s" -v e="$(date +%s.%N)" 'BEGIN { print e - s }'
}
sortin=bench-out/terasort-$COST_SORT.dat
textin=bench-out/text-$COST_TEXT.txt
[ -f "$sortin" ] || ./mrflow gen terasort --size "$COST_SORT" --seed 1 --output "$sortin" 2> /dev/null
[ -f "$textin" ] || ./mrflow gen text --size "$COST_TEXT" --seed 1 --output "$textin"
cat "$sortin" "$textin" > /dev/null
echo
echo "no slow rank, $COST_RANKS ranks: speculation on vs off, $REPS alternating pairs (one warm-up each)"
echo
echo "| job | on | off | median of on/off per pair | target |"
echo "|---|---|---|---|---|"
for job in wordcount terasort; do
    input=$textin
    [ $job = terasort ] && input=$sortin
    once $job "$input" on > /dev/null
    once $job "$input" off > /dev/null
    : > bench-out/spec-cost
    for _ in $(seq "$REPS"); do
        echo "$(once $job "$input" on) $(once $job "$input" off)" >> bench-out/spec-cost
    done
    on=$(awk '{ print $1 }' bench-out/spec-cost | median)
    off=$(awk '{ print $2 }' bench-out/spec-cost | median)
    ratio=$(awk '{ print $1 / $2 }' bench-out/spec-cost | median)
    size=$COST_TEXT
    [ $job = terasort ] && size=$COST_SORT
    awk -v j="$job $size" -v a="$on" -v b="$off" -v r="$ratio" 'BEGIN {
        printf "| %s | %.2f s | %.2f s | %.3f | <= 1.03 |\n", j, a, b, r }'
done
rm -rf bench-out/out bench-out/spec-cost
