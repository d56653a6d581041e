#!/bin/sh
# readme.sh -- renders a benchmark results file (benchmarks/results/*.csv,
# written by benchmarks/run) as Markdown: the full tables go into
# docs/performance.md between "<!-- benchmarks:begin -->" and
# "<!-- benchmarks:end -->", the headline table (wordcount and terasort at 1
# and 2 ranks against the yardsticks) into README.md between
# "<!-- headline:begin -->" and "<!-- headline:end -->", so the figures are
# the latest run's, not typed by hand.
#   benchmarks/readme.sh [RESULTS.csv] [--print]
# Without a file: the newest in benchmarks/results/.  --print: to stdout only.
set -eu
cd "$(dirname "$0")/.."
csv="" print=no
for a in "$@"; do
    case $a in
    --print) print=yes ;;
    *) csv=$a ;;
    esac
done
[ -n "$csv" ] || csv=$(ls -t benchmarks/results/*-quick.csv benchmarks/results/*-full.csv 2> /dev/null | head -n 1)
[ -n "$csv" ] && [ -f "$csv" ] || { echo "readme.sh: no results file (run benchmarks/run first)" >&2; exit 2; }
json=${csv%.csv}.json
png=${csv%.csv}.png
machine=""
[ -f "$json" ] && machine=$(sed -n 's/.*"machine": {"cores": \([0-9]*\), "mem_gib": \([0-9.]*\), "cpu": "\(.*\)"},/\1 cores, \2 GiB, \3/p' "$json")
when=$(basename "$csv" .csv)

# awk: the yardsticks' times (ref, coreutils cu) and input sizes (rb, cb) by
# job, for the ratios; a throughput row f then compares with them
yardsticks='
    $1 == "baseline" && $2 == "refwc" { ref["wordcount"] = $7; rb["wordcount"] = $4 }
    $1 == "baseline" && $2 == "coreutils-wordcount" { cu["wordcount"] = $7; cb["wordcount"] = $4 }
    $1 == "baseline" && $2 == "refsort" { ref["terasort"] = $7; rb["terasort"] = $4 }'

render() {
    echo "Results of \`benchmarks/run\` in \`$csv\` ($when${machine:+; $machine});"
    echo "medians of the runs, min–max in brackets; wall time includes mpirun start-up."
    echo
    echo "| baseline | what | median s [min–max] | MB/s |"
    echo "|---|---|---|---|"
    awk -F, '$1 == "baseline" {
        printf "| %s | %.0f MiB%s | %.3f [%.3f–%.3f] | %.0f |\n", $2, $4 / 1048576, $5 == "" ? "" : ", " $5, $7, $8, $9, $10 }' "$csv"
    echo
    echo "| throughput | ranks | config | median s [min–max] | MB/s | peak RSS MiB/rank | vs tuned C (refwc, refsort) | vs coreutils |"
    echo "|---|---|---|---|---|---|---|---|"
    awk -F, "$yardsticks"'
        $1 == "throughput" { r[++n] = $0 }
        END { for (k = 1; k <= n; k++) { split(r[k], f, ",");
            vs = (ref[f[2]] > 0 && rb[f[2]] == f[4]) ? sprintf("%.2fx", ref[f[2]] / f[7]) : "-"
            vc = (cu[f[2]] > 0 && cb[f[2]] == f[4]) ? sprintf("%.2fx", cu[f[2]] / f[7]) : "-"
            printf "| %s %.0f MiB | %s | %s | %.2f [%.2f–%.2f] | %.1f | %s | %s | %s |\n", f[2], f[4] / 1048576, f[3],
                f[5] == "" ? "default" : f[5], f[7], f[8], f[9], f[10], f[11], vs, vc } }' "$csv"
    echo
    echo "| weak scaling | ranks | input MiB | median s [min–max] | MB/s |"
    echo "|---|---|---|---|---|"
    awk -F, '$1 == "weak" { printf "| %s | %s | %.0f | %.2f [%.2f–%.2f] | %.1f |\n", $2, $3, $4 / 1048576, $7, $8, $9, $10 }' "$csv"
    echo
    echo "| skew (kvcount, --map-combine off) | ranks | partitioner | imbalance | median s [min–max] |"
    echo "|---|---|---|---|---|"
    awk -F, '$1 == "skew" { split($5, a, " "); printf "| %s, %.0f MiB | %s | %s | %.3f | %.2f [%.2f–%.2f] |\n", a[1], $4 / 1048576, $3, a[2], $13, $7, $8, $9 }' "$csv"
    echo
    echo "| straggler (wordcount) | ranks | median s [min–max] |"
    echo "|---|---|---|"
    awk -F, '$1 == "straggler" { printf "| %s | %s | %.2f [%.2f–%.2f] |\n", $5, $3, $7, $8, $9 }' "$csv"
    echo
    echo "| memory sweep | ranks | budget | median s [min–max] | MB/s | peak RSS MiB/rank |"
    echo "|---|---|---|---|---|---|"
    awk -F, '$1 == "memory" { b = $5; sub("--memory ", "", b); printf "| %s %.0f MiB | %s | %s | %.2f [%.2f–%.2f] | %.1f | %s |\n", $2, $4 / 1048576, $3, b, $7, $8, $9, $10, $11 }' "$csv"
    if [ -f "$png" ]; then
        echo
        echo "![benchmark plots](../$png)"
    fi
}

# The MPI MapReduce peers, 2 ranks on this machine kind, same inputs, from the
# team's performance notes (not re-measured by benchmarks/run): wordcount
# 25-34 MB/s, an MPI sample sort 107 MB/s.
headline() {
    echo "| job | ranks | mrflow s | MB/s | vs tuned C | vs coreutils | vs MPI MapReduce peers |"
    echo "|---|---|---|---|---|---|---|"
    awk -F, "$yardsticks"'
        $1 == "throughput" && $5 == "" && ($3 == 1 || $3 == 2) { r[++n] = $0 }
        END { for (k = 1; k <= n; k++) { split(r[k], f, ",");
            vs = (ref[f[2]] > 0 && rb[f[2]] == f[4]) ? sprintf("%.2fx", ref[f[2]] / f[7]) : "-"
            vc = (cu[f[2]] > 0 && cb[f[2]] == f[4]) ? sprintf("%.2fx", cu[f[2]] / f[7]) : "-"
            vp = "-"
            if (f[3] == 2 && f[2] == "wordcount") vp = sprintf("%.1f–%.1fx", f[10] / 34, f[10] / 25)
            if (f[3] == 2 && f[2] == "terasort") vp = sprintf("%.1fx", f[10] / 107)
            printf "| %s %.0f MiB | %s | %.2f | %.1f | %s | %s | %s |\n", f[2], f[4] / 1048576, f[3],
                f[7], f[10], vs, vc, vp } }' "$csv"
    echo
    echo "From \`$csv\` (medians; ratios are the other program's time over mrflow's, or mrflow's MB/s over the peers')."
}

if [ "$print" = yes ]; then
    render
    echo
    headline
    exit 0
fi
# splice FILE MARKER CONTENT: replaces what lies between <!-- MARKER:begin -->
# and <!-- MARKER:end --> in FILE with the file CONTENT.
splice() {
    grep -q "^<!-- $2:begin -->\$" "$1" && grep -q "^<!-- $2:end -->\$" "$1" ||
        { echo "readme.sh: $1 lacks the $2:begin/end markers" >&2; exit 2; }
    awk -v sec="$3" -v b="<!-- $2:begin -->" -v e="<!-- $2:end -->" '
        $0 == b { print; while ((getline l < sec) > 0) print l; skip = 1; next }
        $0 == e { skip = 0 }
        !skip { print }' "$1" > "$1.new"
    mv "$1.new" "$1"
}
mkdir -p bench-out
render > bench-out/section.md
headline > bench-out/headline.md
splice docs/performance.md benchmarks bench-out/section.md
splice README.md headline bench-out/headline.md
rm -f bench-out/section.md bench-out/headline.md
echo "docs/performance.md and README.md: benchmark figures from $csv"
