#!/bin/sh
# straggler.sh -- wall time of wordcount at 4 ranks with {no slow rank, one
# rank 3x slow, one rank 5x slow} x {speculation off, on}, one run each
# (the slowdown is the --fault testing switch), and each time relative to the
# run with no slow rank and speculation on.
#   SIZE (128M) RANKS (4) BTL (vader) TASK_SIZE (default: the engine's, ~8 per rank)
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
