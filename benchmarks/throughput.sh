#!/bin/sh
# throughput.sh -- mrflow's throughput benchmark.  Generates a Zipf text corpus and a
# terasort file (once; kept in bench-out/), warms the page cache, then runs
# wordcount and terasort at 1 and 2 ranks REPS times each, and in the same run
# the single-process references: a coreutils word count (LC_ALL=C tr | sort |
# uniq -c) and refsort.c, a C in-memory radix sort of the records, plus one
# row per job at the largest rank count with --speculate off.  Prints
# medians: wall seconds (mpirun included), MB/s of input, records/s, peak RSS
# per rank, and each figure's ratio to its reference.
#   TEXT_SIZE (512M) TERA_SIZE (1G) REPS (3) RANKS ("1 2") BTL (vader)
set -eu
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
RANKS=${RANKS:-"1 2"}
BTL=${BTL:-vader}
make -s mrflow benchmarks/refsort
. ./benchmarks/common.sh

# run_mrflow JOB INPUT NP [OPTION...]: prints "seconds records_in peak_rss_mib"
run_mrflow() {
    rm -rf bench-out/out
    job=$1 input=$2 np=$3
    shift 3
    s=$(now)
    mpirun -np "$np" --mca btl "self,$BTL" ./mrflow run "$job" --input "$input" \
        --output bench-out/out "$@" 2> bench-out/summary
    e=$(now)
    recs=$(sed -n 's/.* \([0-9]*\) records in.*/\1/p' bench-out/summary)
    rss=$(sed -n 's/.*peak RSS \([0-9.]*\) MiB.*/\1/p' bench-out/summary | head -1)
    echo "$(awk -v s="$s" -v e="$e" 'BEGIN { print e - s }') $recs $rss"
}

report() { # report NAME BYTES SECONDS RECORDS RSS REF_SECONDS (0 = not measured: "-")
    awk -v n="$1" -v b="$2" -v t="$3" -v r="$4" -v m="$5" -v ref="$6" 'BEGIN {
        rs = r > 0 ? sprintf("%10.2f", r / t / 1e6) : sprintf("%10s", "-")
        ms = m > 0 ? sprintf("%8.1f", m) : sprintf("%8s", "-")
        printf "| %-22s | %7.2f | %8.1f | %s | %s | %6.2fx |\n",
            n, t, b / t / 1e6, rs, ms, ref / t }'
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo),"\
     "$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)"
echo "median of $REPS runs; btl self,$BTL; wall time includes mpirun start-up"

# references, same run
s=$(now)
tr -s ' \t\n\v\f\r' '\n' < "$text" | sed '/^$/d' | sort | uniq -c > /dev/null
ref_wc=$(since "$s")
for i in $(seq "$REPS"); do
    s=$(now); ./benchmarks/refsort "$tera" bench-out/refsorted; since "$s"
done | median > bench-out/ref_ts
ref_ts=$(cat bench-out/ref_ts)
rm -f bench-out/refsorted

tbytes=$(stat -c %s "$text")
sbytes=$(stat -c %s "$tera")
echo
echo "| run                    | wall s  | MB/s     | M recs/s   | RSS MiB  | vs ref  |"
echo "|------------------------|---------|----------|------------|----------|---------|"
report "ref: coreutils wc" "$tbytes" "$ref_wc" 0 0 "$ref_wc"
# bench_job JOB INPUT BYTES REF_SECONDS: a row per rank count, and one more
# at the largest with --speculate off (the cost of keeping tasks apart)
bench_job() {
    for np in $RANKS off; do
        label="$1 np=$np" extra=
        if [ "$np" = off ]; then
            np=$(echo $RANKS | awk '{ print $NF }')
            label="$1 np=$np spec off" extra="--speculate off"
        fi
        # shellcheck disable=SC2086
        for i in $(seq "$REPS"); do run_mrflow "$1" "$2" "$np" $extra; done > bench-out/runs
        t=$(cut -d' ' -f1 bench-out/runs | median); r=$(cut -d' ' -f2 bench-out/runs | median)
        m=$(cut -d' ' -f3 bench-out/runs | median)
        report "$label" "$3" "$t" "$r" "$m" "$4"
    done
}
bench_job wordcount "$text" "$tbytes" "$ref_wc"
report "ref: refsort.c" "$sbytes" "$ref_ts" "$((sbytes / 100))" 0 "$ref_ts"
bench_job terasort "$tera" "$sbytes" "$ref_ts"
rm -rf bench-out/out
