# manpage.sh -- doc/mrflow.1 cannot drift from the program: every command of
# `mrflow --help`, every option that `mrflow run JOB --help` (each built-in
# job), `mrflow gen --help` and `mrflow topo --help` list, every built-in
# job, every MRFLOW_* variable the code or the sbatch template reads and
# every exit status must be in the page; `make install` puts it in
# share/man/man1, where `man -l` renders it and groff finds nothing to warn
# about.
MRFLOW_TEST_ANY_MPI=1 # launches no MPI job
. "$TOP_SRCDIR/tests/mpi/lib.sh"
command -v man > /dev/null || { echo "SKIP: man is not installed (apt-get install man-db)"; exit 77; }

dest=$WORK/dest
install_dest "$dest"
page=$(find "$dest" -path '*/man1/mrflow.1' | head -n 1)
check "make install puts mrflow.1 in share/man/man1" [ -n "$page" ]
[ -n "$page" ] || page=$TOP_SRCDIR/doc/mrflow.1
check "the installed page is doc/mrflow.1" cmp -s "$page" "$TOP_SRCDIR/doc/mrflow.1"
# the page as a reader sees it: plain ASCII, no hyphenation, wide lines
LC_ALL=C MANWIDTH=200 man -l "$page" 2> "$WORK/man.err" | col -b > "$WORK/man.txt"
check "man -l renders it without errors" sh -c '[ -s "$1" ] && [ ! -s "$2" ]' _ "$WORK/man.txt" "$WORK/man.err"
cat "$WORK/man.err"
check "groff -ww finds nothing to warn about" sh -c '[ -z "$(groff -man -ww -z "$1" 2>&1)" ]' _ "$page"
for s in NAME SYNOPSIS DESCRIPTION COMMANDS "RUN OPTIONS" "EXIT STATUS" ENVIRONMENT FILES EXAMPLES; do
    check "section $s" grep -q "^$s\$" "$WORK/man.txt"
done

# section NAME: the page's section NAME; tags NAME: the words its entries
# (indented 7 columns, the rest 14) name, one per line
section() { sed -n "/^$1\$/,/^[A-Z][A-Z ]*\$/p" "$WORK/man.txt"; }
tags() { section "$1" | grep '^       [^ ]' | grep -oE -- '--[a-z][a-z0-9-]*|MRFLOW_[A-Z0-9_]+|^ +[a-z][a-z]*' |
    tr -d ' ' | sort -u; }
missing() { # missing SECTION TOKEN...: fails naming each TOKEN no entry of SECTION names
    local sec=$1 t bad=0
    shift
    tags "$sec" > "$WORK/tags"
    for t in "$@"; do
        grep -qxF -e "$t" "$WORK/tags" || { echo "  $t has no entry under $sec in doc/mrflow.1" >&2; bad=1; }
    done
    return $bad
}
# entries MIN SECTION TOKEN...: at least MIN tokens, each with an entry
entries() { local min=$1; shift; [ $# -ge $((min + 1)) ] && missing "$@"; }
# options: the tokens in the first column of a help text's option lines
opts() { sed -n 's/^  \(--[a-z]\)/\1/p' | cut -c1-22 | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u; }

cmds=$("$MRFLOW" --help | sed -n 's/^  \([a-z][a-z]*\) .*/\1/p; s/^  \([a-z][a-z]*\)$/\1/p' | sort -u)
check "mrflow --help lists commands ($(echo $cmds))" [ "$(echo "$cmds" | wc -w)" -ge 7 ]
for c in $cmds; do
    check "command $c in the synopsis" grep -q "^ *\(mpirun.*\)\?mrflow $c\b" "$WORK/man.txt"
done
jobs=$("$MRFLOW" jobs | awk '{ print $1 }')
check "mrflow jobs lists the built-in jobs" [ "$(echo "$jobs" | wc -w)" -ge 5 ]
for j in $jobs; do
    check "job $j described under JOBS" missing JOBS "$j"
    o=$("$MRFLOW" run "$j" --help | opts)
    # shellcheck disable=SC2086
    check "every option of mrflow run $j --help ($(echo $o | wc -w)) has an entry" entries 30 "RUN OPTIONS" $o
done
o=$("$MRFLOW" gen --help | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
# shellcheck disable=SC2086
check "every option of mrflow gen --help ($(echo $o | wc -w)) has an entry" entries 9 "GEN OPTIONS" $o
o=$("$MRFLOW" topo --help | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
# shellcheck disable=SC2086
check "every option of mrflow topo --help has an entry" missing "TOPO OPTIONS" $o
vars=$( (cat "$TOP_SRCDIR"/src/*.c "$TOP_SRCDIR"/jobs/*.c | grep -oE 'getenv\("MRFLOW_[A-Z0-9_]+"\)' |
    grep -oE 'MRFLOW_[A-Z0-9_]+'
    grep -oE '\$\{?MRFLOW_[A-Z0-9_]+' "$TOP_SRCDIR/slurm/mrflow.sbatch" | tr -d '${') | sort -u)
check "the code reads MRFLOW_* variables ($(echo "$vars" | wc -w))" [ "$(echo "$vars" | wc -w)" -ge 10 ]
# shellcheck disable=SC2086
check "every MRFLOW_* variable the code and the sbatch template read is under ENVIRONMENT" \
    missing ENVIRONMENT $vars
exits=$(section "EXIT STATUS" | sed -n 's/^       \([0-9][0-9]*\)\( .*\)\{0,1\}$/\1/p' | tr '\n' ' ')
check "EXIT STATUS lists 0 1 2 75 ($exits)" [ "$exits" = "0 1 2 75 " ]
finish
