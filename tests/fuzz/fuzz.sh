#!/bin/sh
# fuzz.sh -- builds the fuzz targets with libFuzzer (Debian's clang, with
# ASan and UBSan) and fuzzes each for SECONDS (default 60), starting from the
# committed corpus.  A crash fails the run; its input is left in
# bench-out/fuzz/TARGET/ (crash-*): fix the bug, then add the input to
# tests/fuzz/crashes/TARGET/ so `make check` replays it from then on.
#   tests/fuzz/fuzz.sh [SECONDS] [TARGET...]
set -eu
cd "$(dirname "$0")/../.."
secs=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-options records block lines report decisions zstd}
command -v clang > /dev/null || { echo "fuzz.sh: needs clang (apt-get install clang)" >&2; exit 2; }
[ -f config.h ] || [ -f Makefile ] || { echo "fuzz.sh: configure the tree first" >&2; exit 2; }
out=bench-out/fuzz
mkdir -p "$out"
# the engine's sources (not the mrflow program's), compiled with clang: the
# list Makefile.am builds libmrflow_core from, so a new module is never missed
srcs=$(sed -n '/^libmrflow_core_la_SOURCES/,/^[^[:space:]]/p' Makefile.am | grep -o 'src/[a-z0-9_]*\.c')
[ -n "$srcs" ] || { echo "fuzz.sh: no libmrflow_core_la_SOURCES in Makefile.am" >&2; exit 2; }
mpi_c="$(mpicc -showme:compile) $(pkg-config --cflags hdf5-openmpi)"
mpi_l="$(mpicc -showme:link) $(pkg-config --libs hdf5-openmpi)"
failed=0
for t in $targets; do
    extra=""
    [ "$t" = report ] && extra=src/reportview.c
    bin=$out/fuzz_$t
    # shellcheck disable=SC2086
    clang -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -DMRF_BUILDING -Isrc -Iinclude -Itests/fuzz $mpi_c \
        tests/fuzz/fuzz_$t.c $srcs $extra -o "$bin" $mpi_l -lzstd -lz -lxxhash -lhwloc -lm
    mkdir -p "$out/$t"
    cp tests/fuzz/corpus/"$t"/* "$out/$t"/ 2> /dev/null || true
    echo "== fuzz_$t for $secs s"
    if ! (cd "$out" && ASAN_OPTIONS=detect_leaks=1 ./fuzz_$t -max_total_time="$secs" -max_len=65536 \
        -print_final_stats=1 "$t" > "fuzz_$t.log" 2>&1); then
        echo "fuzz_$t: FOUND A CRASH; see $out/fuzz_$t.log and $out/crash-*" >&2
        tail -30 "$out/fuzz_$t.log" >&2
        failed=$((failed + 1))
    else
        grep -E "stat::number_of_executed_units|stat::new_units_added" "$out/fuzz_$t.log" | tr '\n' ' '
        echo
    fi
done
[ $failed -eq 0 ]
