# examples.sh -- the code in the README and the manual is the code that runs:
# every ```c block of README.md and docs/*.md (docs/DESIGN.md's API sketch
# aside) is a C file of tests/mpi or jobs, or an excerpt of one in order; the
# README's job is built with the README's own build line (mpicc and
# pkg-config against an installed mrflow) and run with its own run line at 2
# ranks over TCP, its output compared with coreutils; the README's quick
# start commands run as written, on a smaller corpus; the user guide's h5py
# lines read a real output.h5.  (tests/slurm/slurm.sh submits the README's
# sbatch line on a real Slurm cluster.)
. "$TOP_SRCDIR/tests/mpi/lib.sh"
# Debian's python3, which has python3-h5py (not another python3 earlier in PATH)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
command -v "$PY" > /dev/null || { echo "SKIP: python3 is not installed"; exit 77; }
command -v pkg-config > /dev/null || { echo "SKIP: pkg-config is not installed"; exit 77; }
blocks() { "$PY" "$TOP_SRCDIR/tests/docs/blocks.py" "$@"; }

docs=$(ls "$TOP_SRCDIR"/README.md "$TOP_SRCDIR"/docs/*.md | grep -v '/docs/DESIGN\.md$')
# shellcheck disable=SC2086
blocks check-c "$TOP_SRCDIR" $docs > "$WORK/c.txt"
check "every C block in README.md and docs/ is a tested file or an excerpt of one" [ $? -eq 0 ]
cat "$WORK/c.txt"
check "the README shows tests/mpi/user_job.c whole" grep -q '^ok README.md:[0-9]* is tests/mpi/user_job.c$' "$WORK/c.txt"

# the README's job, built as the README says, against an installed copy
dest=$WORK/dest
install_dest "$dest"
pc=$(find "$dest" -name mrflow.pc | head -n 1)
export PKG_CONFIG_PATH=${pc%/*} PKG_CONFIG_SYSROOT_DIR=$dest
LD_LIBRARY_PATH=$(pkg-config --variable=libdir mrflow)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
blocks get c 'mrf_main(argc, argv, &logcount)' "$TOP_SRCDIR/README.md" > "$WORK/logcount.c"
blocks get sh 'pkg-config --cflags --libs mrflow' "$TOP_SRCDIR/README.md" > "$WORK/build.sh"
build=$(grep '^mpicc ' "$WORK/build.sh")
run=$(grep '^mpirun ' "$WORK/build.sh")
check "the README has a build line and a run line for its job" [ -n "$build" ] && [ -n "$run" ]
# the README's line as written; mpicc gets the build's sanitizer flags, if any
# (a sanitized libmrflow needs its runtime in the program too)
# shellcheck disable=SC2086
mpicc() { command "${MPICC:-mpicc}" ${SAN_CFLAGS:-} "$@"; }
(cd "$WORK" && eval "$build") > "$WORK/build.log" 2>&1
check "the README's build line builds the README's job: $build" [ $? -eq 0 ] && [ -x "$WORK/logcount" ]
cat "$WORK/build.log"
check "it links the installed library" sh -c 'ldd "$1" | grep libmrflow | grep -q "$2"' _ "$WORK/logcount" "$dest"

"$MRFLOW" gen text --size 1M --seed 3 --output "$WORK/app" > /dev/null || exit 99
printf 'solo\n\n two\nx y\n' >> "$WORK/app"
cut -d' ' -f1 "$WORK/app" | sed '/^$/d' | sort | uniq -c | sed -E 's/^ *([0-9]+) (.*)$/\2\t\1/' |
    sort > "$WORK/ref"
# the README's run line, with this test's input and 2 ranks over TCP
run=$(echo "$run" | sed "s#^mpirun -np [0-9]*#mpirun -np 2 --oversubscribe --mca btl self,tcp#;
    s#--input /var/log/app#--input $WORK/app#; s#--output counts#--output $WORK/counts#")
(cd "$WORK" && eval "timeout 300 $run --quiet") > "$WORK/run.log" 2>&1
check "the README's run line runs it: $run" [ $? -eq 0 ]
cat "$WORK/run.log"
check "its counts equal coreutils'" cmp -s "$WORK/ref" <(cat "$WORK"/counts/part-* 2> /dev/null | sort)

# the quick start's commands, as written but for the corpus size and 2 ranks over TCP
blocks get sh './mrflow gen text' "$TOP_SRCDIR/README.md" > "$WORK/quick.sh"
check "the README has the quick start's run commands" [ "$(grep -c '^\(\./mrflow\|mpirun\|head\) ' "$WORK/quick.sh")" -eq 3 ]
mkdir -p "$WORK/quick"
ln -s "$MRFLOW" "$WORK/quick/mrflow"
sed -i 's/--size 1G/--size 2M/; s/^mpirun -np [0-9]*/mpirun -np 2 --oversubscribe --mca btl self,tcp/' "$WORK/quick.sh"
(cd "$WORK/quick" && timeout 300 sh -e ./../quick.sh) > "$WORK/quick.log" 2>&1
check "the quick start's commands run" [ $? -eq 0 ]
check "... and count the corpus' words as coreutils does" \
    cmp -s <(ref_wordcount "$WORK/quick/corpus.txt") <(cat "$WORK"/quick/counts/part-* | sort)

# the user guide's h5py lines, on a real output.h5 (DIR: the output directory)
if "$PY" -c 'import h5py' 2> /dev/null; then
    mpi 2 tcp run wordcount --input "$WORK/app" --output "$WORK/h5" --format hdf5 --quiet ||
        not_ok "wordcount --format hdf5 failed"
    blocks get python 'h5py.File(' "$TOP_SRCDIR/docs/user-guide.md" | sed "s#\"DIR/#\"$WORK/h5/#" > "$WORK/read.py"
    got=$("$PY" "$WORK/read.py" 2>&1)
    # part-00000's first record, as the text output would hold it
    first=$("$PY" "$TOP_SRCDIR/tests/mpi/h5cat.py" "$WORK/h5/output.h5" 2> /dev/null | head -n 1)
    check "the user guide's h5py lines print part-00000's first key and value ($got; $first)" \
        "$PY" -c 'import sys; k, v = sys.argv[2].split("\t"); sys.exit(sys.argv[1] != repr(k.encode()) + " " + repr(v.encode()))' \
        "$got" "$first"
    # the typed-output lines, on groupby's output.h5 ("per-species": its DIR)
    "$PY" "$TOP_SRCDIR/tests/mpi/h5data.py" make "$WORK/d.h5" 5001 || exit 99
    mpi 2 tcp run groupby --input "$WORK/d.h5:/contig" --key key --value val --format hdf5 \
        --output "$WORK/per-species" --quiet || not_ok "groupby --format hdf5 failed"
    { blocks get python 'np.concatenate' "$TOP_SRCDIR/docs/user-guide.md" |
        sed "s#\"per-species/#\"$WORK/per-species/#"
      echo 'print(keys.dtype, vals.dtype.names, len(keys), int(vals["count"].sum()))'; } > "$WORK/typed.py"
    got=$("$PY" "$WORK/typed.py" 2>&1)
    check "the user guide's typed-output lines read int64 keys and count, sum, min, max ($got)" \
        [ "$got" = "int64 ('count', 'sum', 'min', 'max') $(cut -f1 <("$PY" "$TOP_SRCDIR/tests/mpi/h5data.py" groupby "$WORK/d.h5" /contig key val) | wc -l) 5001" ]
else
    echo "# h5py lines not run: python3-h5py is not installed (scripts/setup.sh installs it)"
fi
finish
