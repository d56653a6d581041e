# installed_job.sh -- the user guide's two-stage job (tests/mpi/freqfreq.c),
# built the way a user builds it: mrflow installed (make install into a
# DESTDIR), then `cc $(pkg-config --cflags --libs mrflow)` with nothing from
# the build tree; run at 1, 2 and 4 ranks and compared with coreutils.
. "$TOP_SRCDIR/tests/mpi/lib.sh"
command -v pkg-config > /dev/null || { echo "SKIP: pkg-config not installed"; exit 77; }

dest=$WORK/dest
install_dest "$dest"
pc=$(find "$dest" -name mrflow.pc | head -n 1)
check "make install puts mrflow.pc, mrflow.h and libmrflow in place" \
    sh -c '[ -n "$1" ] && [ -n "$(find "$2" -name mrflow.h)" ] && [ -n "$(find "$2" -name "libmrflow.so*")" ]' \
    _ "$pc" "$dest"
export PKG_CONFIG_PATH=${pc%/*} PKG_CONFIG_SYSROOT_DIR=$dest
flags=$(pkg-config --cflags --libs mrflow)
check "pkg-config names the installed header and library ($flags)" \
    sh -c 'case "$1" in *"-I$2"*"-L$2"*"-lmrflow"*) ;; *) exit 1 ;; esac' _ "$flags" "$dest"
libdir=$(pkg-config --variable=libdir mrflow) # (the sysroot included)
# shellcheck disable=SC2086
${CC:-cc} ${SAN_CFLAGS:-} -std=c11 -Wall -Wextra -Wno-unused-parameter -Werror \
    "$TOP_SRCDIR/tests/mpi/freqfreq.c" -o "$WORK/freqfreq" $flags -Wl,-rpath,"$libdir" \
    2> "$WORK/cc.log"
check "the example builds with cc and pkg-config alone" [ $? -eq 0 ]
[ -x "$WORK/freqfreq" ] || { cat "$WORK/cc.log"; finish; }
check "the example is under 70 lines" test "$(wc -l < "$TOP_SRCDIR/tests/mpi/freqfreq.c")" -lt 70
check "it links the installed library, not the build tree's" \
    sh -c 'ldd "$1" | grep libmrflow | grep -q "$2"' _ "$WORK/freqfreq" "$dest"

"$MRFLOW" gen text --size 2M --seed 9 --output "$WORK/text" > /dev/null || exit 99
printf 'a  b\tb\r\nc c c\n' >> "$WORK/text"
# words (runs of bytes other than space, tab, CR, newline), counted; then counted by count
tr ' \t\r' '\n\n\n' < "$WORK/text" | sed '/^$/d' | sort | uniq -c | awk '{ print $1 }' | sort -n |
    uniq -c | awk '{ printf "%012d\t%d\n", $2, $1 }' > "$WORK/ref"
for np in $RANKS; do
    timeout 300 "$MPIEXEC" -np "$np" --oversubscribe --mca btl self,tcp "$WORK/freqfreq" \
        --input "$WORK/text" --output "$WORK/out-$np" --quiet
    check "freqfreq, $np ranks: exit 0" [ $? -eq 0 ]
    check "freqfreq, $np ranks: equals coreutils" \
        cmp -s <(cat "$WORK/out-$np"/part-* | sort) "$WORK/ref"
done
finish
