#!/bin/sh
# demo.sh -- quick start (1): set up and build, generate a text corpus, count
# its words with mpirun on all cores, and print the top words, the elapsed
# time and MB/s.  MRFLOW_DEMO_SIZE (default 512M) sets the corpus size.
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
size=${MRFLOW_DEMO_SIZE:-512M}
np=${MRFLOW_DEMO_RANKS:-$(nproc)}
mkdir -p demo-data
corpus=demo-data/text-$size.txt
[ -f "$corpus" ] || ./mrflow gen text --size "$size" --seed 1 --output "$corpus"
rm -rf demo-data/wordcount
root=
[ "$(id -u)" -eq 0 ] && root=--allow-run-as-root
start=$(date +%s.%N)
mpirun $root -np "$np" ./mrflow run wordcount --input "$corpus" --output demo-data/wordcount
end=$(date +%s.%N)
bytes=$(stat -c %s "$corpus")
echo
echo "Top 10 words:"
cat demo-data/wordcount/part-* | sort -t "$(printf '\t')" -k2,2nr | head -10
awk -v b="$bytes" -v s="$start" -v e="$end" -v np="$np" 'BEGIN {
    t = e - s; printf "\nwordcount of %.0f MiB on %d ranks: %.2f s wall clock (mpirun included), %.1f MB/s\n",
    b / 1048576, np, t, b / t / 1e6 }'
