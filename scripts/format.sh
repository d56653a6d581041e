#!/bin/sh
# format.sh -- clang-format the C sources (.clang-format); --check only
# reports files that differ and exits 1.  tests/mpi/user_job.c is left as
# written: README.md and docs/user-guide.md quote it verbatim
# (tests/docs/examples.sh checks).
set -eu
cd "$(dirname "$0")/.."
files=$(ls src/*.c src/*.h include/*.h jobs/*.c tests/unit/*.c tests/unit/*.h benchmarks/*.c)
if [ "${1:-}" = --check ]; then
    bad=0
    for f in $files; do
        clang-format --style=file "$f" | cmp -s "$f" - || { echo "format.sh: $f is not clang-formatted (run scripts/format.sh)"; bad=1; }
    done
    exit $bad
fi
# shellcheck disable=SC2086
clang-format --style=file -i $files
