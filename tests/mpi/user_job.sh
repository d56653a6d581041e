# user_job.sh -- a user's own job (the README's example), compiled against
# the public header and the shared library alone, run at 1, 2 and 4 ranks and
# compared with coreutils.
. "${TOP_SRCDIR:-.}/tests/mpi/lib.sh"

MPICC=${MPICC:-mpicc}
libdir=$TOP_BUILDDIR/.libs
# shellcheck disable=SC2086
"$MPICC" ${SAN_CFLAGS:-} -std=c11 -Wall -Wextra -Wno-unused-parameter -Werror -I"$TOP_SRCDIR/include" \
    "$TOP_SRCDIR/tests/mpi/user_job.c" -o "$WORK/logcount" -L"$libdir" -lmrflow \
    -Wl,-rpath,"$libdir" || { echo "cannot build the example job"; exit 99; }
check "example job is at most 30 lines" test "$(wc -l < "$TOP_SRCDIR/tests/mpi/user_job.c")" -le 30

"$MRFLOW" gen text --size 1M --seed 5 --output "$WORK/log" || exit 99
printf 'no-space-line\n\n lead\nx y z\nx\n' >> "$WORK/log"
cut -d' ' -f1 "$WORK/log" | sed '/^$/d' | sort | uniq -c | sed -E 's/^ *([0-9]+) (.*)$/\2\t\1/' |
    sort > "$WORK/ref"
for np in $RANKS; do
    out=$WORK/out-$np
    if timeout 300 "$MPIEXEC" -np "$np" --oversubscribe --mca btl self,tcp "$WORK/logcount" \
        --input "$WORK/log" --output "$out" --task-size 100K --quiet; then
        cat "$out"/part-* | sort > "$WORK/got"
        check "user job np=$np equals coreutils" cmp -s "$WORK/ref" "$WORK/got"
    else
        not_ok "user job np=$np exited non-zero"
    fi
done
finish
