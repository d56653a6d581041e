#!/bin/sh
# check.sh -- quick start (2): set up and build, then run the whole test
# suite (unit tests and MPI tests at 1, 2 and 4 ranks).
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
make -j"$(nproc)" check
