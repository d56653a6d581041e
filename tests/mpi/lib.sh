# lib.sh -- helpers for mrflow's MPI tests (sourced).  Each test prints one
# "ok"/"not ok" line per check and ends with "N passed, N failed"; its exit
# status is automake's: 0 pass, 1 fail, 77 skip, 99 error.
set -u
: "${MRFLOW:?MRFLOW must point at the mrflow binary (make check sets it)}"
MPIEXEC=${MPIEXEC:-mpiexec}
# these tests launch with Open MPI's options (--oversubscribe, --mca btl);
# a build against MPICH runs tests/nodes, which launch with either
if [ "${MPI_FLAVOR:-openmpi}" != openmpi ] && [ -z "${MRFLOW_TEST_ANY_MPI:-}" ]; then
    echo "SKIP: this test launches with Open MPI's mpiexec options; this build uses" \
        "${MPI_FLAVOR} (its multi-node tests, tests/nodes, run with it)"
    exit 77
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 LC_ALL=C
# a job that ends with engine bytes still allocated fails
export MRFLOW_STRICT_MEM=1
# Under the sanitizers, LeakSanitizer checks MPI ranks in mrf_main just
# before MPI_Finalize (src/job.c), not at exit: Finalize unloads Open MPI's
# components, whose leaks would then be "<unknown module>" frames no
# suppression can name.  Full (slow) unwinding gives every stack frames in
# libmpi or libopen-pal, which tests/lsan.supp suppresses by library; any
# leak of ours or of a job's fails the run.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}leak_check_at_exit=0:fast_unwind_on_malloc=0"
export LSAN_OPTIONS="suppressions=$TOP_SRCDIR/tests/lsan.supp:print_suppressions=0"
# keep MPI's TCP traffic on the loopback interface
export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mrflow-test.XXXXXX") || exit 99
[ -n "${MRFLOW_TEST_KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
PASSED=0
FAILED=0
RANKS=${MRFLOW_TEST_RANKS:-"1 2 4"}
BTLS=${MRFLOW_TEST_BTLS:-"vader tcp"}
TAB=$(printf '\t')

ok() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
not_ok() { FAILED=$((FAILED + 1)); echo "not ok - $*"; }
check() { # check NAME COMMAND...: passes when the command succeeds (status 1 if not)
    local name=$1; shift
    if "$@"; then ok "$name"; else not_ok "$name"; return 1; fi
}

# mpi NP BTL ARGS...: mrflow under mpiexec with a deadlock timeout
mpi() {
    local np=$1 btl=$2; shift 2
    timeout 300 "$MPIEXEC" -np "$np" --oversubscribe --mca btl "self,$btl" "$MRFLOW" "$@"
}

# wait_dog PID [SECONDS]: waits for a background job, SIGKILLing it after
# SECONDS (120); its exit status is left in rc.  (The watchdog's sleep must
# not hold our stdout open after it is killed.)
wait_dog() {
    local pid=$1 dog
    ( sleep "${2:-120}"; kill -9 "$pid" ) > /dev/null 2>&1 & dog=$!
    wait "$pid"
    rc=$?
    pkill -P "$dog" sleep 2>/dev/null
    kill "$dog" 2>/dev/null
    wait "$dog" 2>/dev/null
    return 0
}

# wait_paused N PID: until N ranks are paused (MRFLOW_TEST_PAUSE_FILE=
# $WORK/pause makes each create $WORK/pause.RANK) or PID has ended; 60 s
wait_paused() {
    local i
    for i in $(seq 600); do
        [ "$(ls "$WORK"/pause.[0-9]* 2> /dev/null | wc -l)" -ge "$1" ] && return 0
        kill -0 "$2" 2> /dev/null || return 1
        sleep 0.1
    done
    return 1
}

# usr1_in_map PROGRAM ARGS...: runs PROGRAM ARGS on 2 ranks over TCP, each
# rank pausing after its first map task, sends USR1 once both are paused
# and waits; the exit status is left in rc, the output in $WORK/preempt.log
usr1_in_map() {
    rm -f "$WORK"/pause.*
    MRFLOW_TEST_PAUSE=map MRFLOW_TEST_PAUSE_FILE=$WORK/pause "$MPIEXEC" -np 2 --oversubscribe \
        --mca btl self,tcp "$@" > "$WORK/preempt.log" 2>&1 &
    local pid=$!
    wait_paused 2 "$pid"
    sleep 0.2
    kill -s USR1 "$pid" 2> /dev/null
    wait_dog "$pid"
}

# paused_mrflow FILE: writes FILE, a program that runs mrflow but pauses a
# Slurm job's first run in the map (until a signal or $PAUSE_FILE.go), so a
# test can signal it mid-phase; a requeued run (SLURM_RESTART_COUNT set)
# goes straight through
paused_mrflow() {
    cat > "$1" << EOF
#!/bin/sh
if [ -z "\${SLURM_RESTART_COUNT:-}" ]; then
    export MRFLOW_TEST_PAUSE=map MRFLOW_TEST_PAUSE_FILE=\$PAUSE_FILE
fi
exec "$MRFLOW" "\$@"
EOF
    chmod +x "$1"
}

# the reference word count with coreutils: word<TAB>count, sorted
# (files are separate: a file without a final newline does not join the next)
ref_wordcount() {
    local f
    for f in "$@"; do cat "$f"; printf '\n'; done | tr -s ' \t\n\v\f\r' '\n\n\n\n\n\n' | sed '/^$/d' | sort | uniq -c |
        sed -E 's/^ *([0-9]+) (.*)$/\2\t\1/' | sort
}

# parts_sorted DIR: every part's keys strictly increasing bytewise
parts_sorted() {
    local p
    for p in "$1"/part-*; do
        cut -f1 "$p" | sort -c -u 2>/dev/null || { echo "  $p is not sorted" >&2; return 1; }
    done
}

# no_leftovers DIR: no temporary sibling of DIR remains
no_leftovers() {
    local parent base
    parent=$(dirname "$1"); base=$(basename "$1")
    ! ls -a "$parent" 2>/dev/null | grep -q "^\.$base\.mrflow-"
}

# jget FILE KEY: the first value of "KEY" in a run report (the writer puts
# each member on its own line): a number, a string unquoted, or an array's
# numbers separated by spaces
jget() {
    sed -n "s/^ *\"$2\": \(.*\)$/\1/p" "$1" | head -n 1 |
        sed 's/,$//; /^\[/ { s/^\[//; s/\]$//; s/,//g; }; s/^"//; s/"$//'
}

# install_dest DIR: make install DESTDIR=DIR (a make of our own, not the
# jobserver of the make check that runs us); exit 99 if it fails
install_dest() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "${MAKE:-make}" -s -C "$TOP_BUILDDIR" install \
        DESTDIR="$1" > "$WORK/install.log" 2>&1 || {
        echo "make install failed:"
        cat "$WORK/install.log"
        exit 99
    }
}

finish() {
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ] || exit 1
    [ "$PASSED" -gt 0 ] || exit 99
    exit 0
}
