#!/bin/sh
# memory.sh -- the memory sweep: wordcount and terasort at NP ranks under
# --memory from 32M to 4G per rank and unlimited (the default budget), REPS
# runs each.  Per row, medians of: wall seconds (mpirun included), MB/s of
# input, MiB spilled (map + shuffle side, raw) and on disk, peak RSS per rank,
# the shuffle's wire/raw ratio and whether compression was on, and the
# throughput relative to the unlimited run.  In the same run, raw
# MPI_Alltoallv (benchmarks/alltoall.c) moves each job's shuffle bytes in the
# same rounds between the same ranks; the unlimited run's shuffle bandwidth
# (bytes each rank sent / seconds) is printed as a fraction of it, for the
# whole shuffle phase (grouping by destination, the compression decision,
# the rounds) and for the rounds alone.
#   TEXT_SIZE (512M) TERA_SIZE (1G) NP (2) REPS (3) BTL (vader)
#   BUDGETS ("32M 64M 128M 256M 512M 1G 2G 4G") COMPRESS (auto)
#   JOBS ("wordcount terasort")
set -eu
cd "$(dirname "$0")/.."
NP=${NP:-2}
REPS=${REPS:-3}
BTL=${BTL:-vader}
BUDGETS=${BUDGETS:-"32M 64M 128M 256M 512M 1G 2G 4G"}
COMPRESS=${COMPRESS:-auto}
JOBS=${JOBS:-"wordcount terasort"}
make -s mrflow benchmarks/alltoall
. ./benchmarks/common.sh
mkdir -p bench-out/spill
field() { sed -n "s/$1/\\1/p" bench-out/summary | head -1; }

# one JOB INPUT [--memory M]: "seconds spilled_mib disk_mib rss_mib wire raw shuffle_s comp"
one() {
    rm -rf bench-out/out
    job=$1 input=$2
    shift 2
    s=$(now)
    mpirun -np "$NP" --mca btl "self,$BTL" ./mrflow run "$job" --input "$input" \
        --output bench-out/out --spill-dir bench-out/spill --compress "$COMPRESS" "$@" \
        2> bench-out/summary
    e=$(now)
    sm=$(field '.*spilled \([0-9.]*\) MiB from map.*')
    sr=$(field '.*MiB from map, \([0-9.]*\) MiB from shuffle.*')
    disk=$(field '.*from shuffle, \([0-9.]*\) MiB on disk.*')
    rss=$(field '.*peak RSS \([0-9.]*\) MiB (max over ranks); spilled.*')
    wire=$(field '.*, \([0-9.]*\) MiB on the wire.*')
    raw=$(field '.*on the wire for \([0-9.]*\) MiB of records.*')
    shs=$(field '.*shuffle \([0-9.]*\) s, reduce.*')
    comp=$(field '.*shuffle compression \([a-z]*\).*')
    rnd=$(field '.*records, rounds \([0-9.]*\) s of which.*')
    echo "$(awk -v s="$s" -v e="$e" 'BEGIN { print e - s }') $(awk -v a="$sm" -v b="$sr" \
        'BEGIN { print a + b }') $disk $rss $wire $raw $shs $comp $rnd"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo),"\
     "$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)"
echo "np=$NP, btl self,$BTL, --compress $COMPRESS; median of $REPS runs; wall time includes mpirun"

sweep() { # sweep JOB INPUT
    bytes=$(stat -c %s "$2")
    echo
    echo "## $1, $(awk -v b="$bytes" 'BEGIN { printf "%.0f MiB", b / 1048576 }') input"
    echo
    echo "| --memory/rank | wall s | MB/s  | spilled MiB | on disk MiB | peak RSS MiB | wire/raw | zstd | vs unlimited |"
    echo "|---------------|--------|-------|-------------|-------------|--------------|----------|------|--------------|"
    for i in $(seq "$REPS"); do one "$1" "$2"; done > bench-out/runs
    base=$(cut -d' ' -f1 bench-out/runs | median)
    raw_mib=$(cut -d' ' -f6 bench-out/runs | median)
    shuffle_s=$(cut -d' ' -f7 bench-out/runs | median)
    rounds_s=$(cut -d' ' -f9 bench-out/runs | median)
    for m in unlimited $BUDGETS; do
        if [ "$m" != unlimited ]; then
            for i in $(seq "$REPS"); do one "$1" "$2" --memory "$m"; done > bench-out/runs
        fi
        t=$(cut -d' ' -f1 bench-out/runs | median)
        awk -v m="$m" -v t="$t" -v b="$bytes" -v base="$base" \
            -v sp="$(cut -d' ' -f2 bench-out/runs | median)" \
            -v dk="$(cut -d' ' -f3 bench-out/runs | median)" \
            -v rss="$(cut -d' ' -f4 bench-out/runs | median)" \
            -v w="$(cut -d' ' -f5 bench-out/runs | median)" \
            -v r="$(cut -d' ' -f6 bench-out/runs | median)" \
            -v c="$(cut -d' ' -f8 bench-out/runs | head -1)" 'BEGIN {
            printf "| %-13s | %6.2f | %5.0f | %11.0f | %11.0f | %12.1f | %8.2f | %-4s | %11.2fx |\n",
                m, t, b / t / 1e6, sp, dk, rss, (r > 0 ? w / r : 1), (c == "zstd" ? "on" : "off"), base / t }'
    done
    # raw Alltoallv of the same bytes per rank in the same rounds (256M / np
    # per peer at most, as the shuffle), against the unlimited run's shuffle
    per_rank=$(awk -v r="$raw_mib" -v n="$NP" 'BEGIN { printf "%.0f", r * 1048576 / n }')
    raw=$(mpirun -np "$NP" --mca btl "self,$BTL" ./benchmarks/alltoall "$per_rank" 268435456)
    awk -v raw="$raw" -v s="$shuffle_s" -v r="$rounds_s" -v p="$per_rank" 'BEGIN {
        split(raw, a, " ")
        eff = p / s / 1e6
        reff = p / r / 1e6
        printf "\nraw MPI_Alltoallv of the same bytes per rank (%.0f MB): %.0f MB/s in %.3f s\n", p / 1e6, a[2], a[1]
        printf "shuffle phase (unlimited, rank 0): %.0f MB/s in %.3f s, fraction %.2f\n", eff, s, eff / a[2]
        printf "its rounds alone (exchange, checksums, delivery): %.0f MB/s in %.3f s, fraction %.2f\n", reff, r, reff / a[2] }'
}
for job in $JOBS; do
    case $job in
    wordcount) sweep wordcount "$text" ;;
    terasort) sweep terasort "$tera" ;;
    *) echo "unknown job '$job' in JOBS" >&2; exit 2 ;;
    esac
done
rm -rf bench-out/out bench-out/spill
