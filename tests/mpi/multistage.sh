# multistage.sh -- multi-stage and iterative jobs (run_job in src/job.c):
# invindex (two stages) against an independent Python index of a folder of
# tricky files, pagerank (load, iterate, format) against an independent
# Python power iteration, at 1, 2 and 4 ranks over TCP; a pagerank
# preempted during iteration 5 resumes at iteration 5 on another number of
# ranks and ends with the uninterrupted run's output.
. "$TOP_SRCDIR/tests/mpi/lib.sh"
PY=${PYTHON:-python3}
command -v "$PY" > /dev/null || { echo "SKIP: no python3 for the references"; exit 77; }

# ---- invindex ----------------------------------------------------------------
D=$WORK/docs
mkdir -p "$D"
printf 'the cat sat\non the mat\n' > "$D/a.txt"
printf 'the dog\r\nate the cat' > "$D/b"                       # CRLF, no final newline
printf 'x\tthe\t\tthe\n\n\n' > "$D/a-b"                         # sorts before a.txt
: > "$D/empty"
printf 'ab\0cd the\n' > "$D/nul"                               # a word with a NUL byte
printf 'caf\303\251 na\357ve \377\376 the\n' > "$D/utf8 name"  # bytes, a space in the name
printf 'skip me\n' > "$D/_skipped"
printf 'hidden\n' > "$D/.hidden"
"$PY" - "$D" << 'EOF' || exit 99
import os, random, sys
d = sys.argv[1]
r = random.Random(5)
vocab = ["w%d" % i for i in range(300)] + ["the", "cat"]
with open(os.path.join(d, "long"), "w") as f:            # one 200 KB line
    f.write(" ".join(r.choice(vocab) for _ in range(40000)))
for i in range(40):                                      # many files: long postings
    with open(os.path.join(d, "f%02d" % i), "w") as f:
        for _ in range(r.randint(1, 60)):
            f.write(" ".join(r.choice(vocab) for _ in range(r.randint(0, 12))) + "\n")
EOF
# the reference: the same words, files and order, computed independently
"$PY" - "$D" > "$WORK/ii.ref" << 'EOF' || exit 99
import os, re, sys
d = os.fsencode(sys.argv[1])
counts = {}
for name in sorted(os.listdir(d)):
    path = d + b"/" + name
    if name.startswith((b".", b"_")) or not os.path.isfile(path):
        continue
    for w in re.split(rb"[ \t\n\v\f\r]+", open(path, "rb").read()):
        if w:
            counts.setdefault(w, {}).setdefault(path, 0)
            counts[w][path] += 1
lines = sorted(w + b"\t" + b",".join(p + b":" + str(c).encode() for p, c in sorted(ps.items()))
               for w, ps in counts.items())
sys.stdout.buffer.write(b"".join(l + b"\n" for l in lines))
EOF
for np in $RANKS; do
    mpi "$np" tcp run invindex --input "$D" --output "$WORK/ii-$np" --quiet 2> "$WORK/ii-$np.log"
    check "invindex, $np ranks: exit 0" [ $? -eq 0 ]
    check "invindex, $np ranks: equals the Python index" \
        cmp -s <(cat "$WORK/ii-$np"/part-* | sort) "$WORK/ii.ref"
    check "invindex, $np ranks: parts sorted" parts_sorted "$WORK/ii-$np"
    check "invindex, $np ranks: no intermediate files left" \
        sh -c '! ls -a "$1" | grep -q mrflow-stages' _ "$WORK"
done

# ---- pagerank ----------------------------------------------------------------
"$MRFLOW" gen graph --vertices 300 --edges 3000 --seed 7 --output "$WORK/g.txt" > /dev/null || exit 99
# a small graph by hand: a dangling vertex (d), a self-loop, a duplicate
# edge, a CRLF line, names that are not numbers
printf 'a\tb\nb\tc\nc\ta\na\tc\na\tc\nc\tc\r\nb\td\nx y\ta\n' > "$WORK/small.txt"

# ref FILE ITERATIONS: vertex<TAB>rank (repr), by an independent power iteration
ref() {
    "$PY" - "$1" "$2" << 'EOF'
import sys
edges = [l.rstrip(b"\r\n").split(b"\t") for l in open(sys.argv[1], "rb") if l.strip()]
out = {}
for s, t in edges:
    out.setdefault(s, []).append(t)
    out.setdefault(t, [])
n = len(out)
r = {v: 1.0 / n for v in out}
for _ in range(int(sys.argv[2])):
    dangling = sum(r[v] for v in out if not out[v])
    inflow = {v: 0.0 for v in out}
    for v, links in out.items():
        for t in links:
            inflow[t] += r[v] / len(links)
    r = {v: 0.15 / n + 0.85 * (inflow[v] + dangling / n) for v in out}
for v in sorted(r):
    sys.stdout.buffer.write(v + b"\t" + repr(r[v]).encode() + b"\n")
EOF
}
# close OUT REF: every rank within 1e-9 relative of the reference, beyond
# the rounding of printing 9 significant digits; every vertex there once
close() {
    "$PY" - "$1" "$2" << 'EOF'
import glob, math, sys
got = {}
for p in glob.glob(sys.argv[1] + "/part-*"):
    for l in open(p, "rb"):
        k, v = l.rstrip(b"\n").split(b"\t")
        if k in got:
            sys.exit("%r twice" % k)
        got[k] = float(v)
want = {l.split(b"\t")[0]: float(l.split(b"\t")[1]) for l in open(sys.argv[2], "rb")}
if set(got) != set(want):
    sys.exit("vertices differ: %d vs %d" % (len(got), len(want)))
worst = 0
for k, w in want.items():
    ulp9 = 10 ** (math.floor(math.log10(w)) - 8)
    err = abs(got[k] - w) - 0.5 * ulp9
    worst = max(worst, err / w)
    if err > 1e-9 * w:
        sys.exit("%r: %r vs %r" % (k, got[k], w))
total = sum(got.values())
if abs(total - 1) > 1e-9:
    sys.exit("ranks sum to %.12f" % total)
print("# worst relative error beyond printing: %.2e, sum - 1 = %.1e" % (worst, total - 1))
EOF
}

first=${RANKS%% *}
lastnp=${RANKS##* }
for g in small g; do
    ref "$WORK/$g.txt" 25 > "$WORK/$g.ref" || exit 99
    for np in $RANKS; do
        mpi "$np" tcp run pagerank --input "$WORK/$g.txt" --output "$WORK/pr-$g-$np" --tol 0 \
            --iterations 25 --quiet 2> "$WORK/pr-$g-$np.log"
        check "pagerank $g, $np ranks, 25 iterations: exit 0" [ $? -eq 0 ]
        check "pagerank $g, $np ranks: matches the power iteration, sums to 1" \
            close "$WORK/pr-$g-$np" "$WORK/$g.ref"
        check "pagerank $g, $np ranks: identical to $first rank(s)'" \
            cmp -s <(cat "$WORK/pr-$g-$np"/part-* | sort) <(cat "$WORK/pr-$g-$first"/part-* | sort)
    done
done

r=$WORK/pr-g-$first/_REPORT.json
check "the report lists the 26 runs before the last (load, 25 iterations) in order" \
    [ "$(grep -o '"name": "pagerank[/0-9.]*"' "$r" | tr '\n' ' ')" = \
      "$(printf '"name": "pagerank" '; for i in $(seq 0 24); do printf '"name": "pagerank/1.%d" ' "$i"; done)" ]
check "its first run read every edge ($(wc -l < "$WORK/g.txt") lines)" \
    grep -q "\"name\": \"pagerank\", \"elapsed_s\": [0-9.]*, \"records_in\": $(wc -l < "$WORK/g.txt")," "$r"
check "pagerank, $lastnp ranks: a placement warning at most once, not per stage run" \
    [ "$(grep -c "placement:" "$WORK/pr-g-$lastnp.log")" -le 1 ]

# until converged (--tol 1e-9, the default): as many iterations as the reference needs
mpi 2 tcp run pagerank --input "$WORK/g.txt" --output "$WORK/pr-conv" --log-level info \
    > "$WORK/conv.log" 2>&1
runs=$(sed -n 's/.*info: stage 1: \([0-9]*\) runs.*/\1/p' "$WORK/conv.log")
check "converged run: exit 0, its iteration count logged ($runs)" [ -n "$runs" ]
ref "$WORK/g.txt" "${runs:-1}" > "$WORK/conv.ref"
check "converged run: matches $runs power iterations" close "$WORK/pr-conv" "$WORK/conv.ref"
mpi 1 tcp run pagerank --input "$WORK/g.txt" --output "$WORK/pr-cap" --iterations 3 \
    --log-level info > "$WORK/cap.log" 2>&1
check "--iterations 3 caps the loop, and says so" grep -q "stage 1: 3 runs (--iterations reached)" \
    "$WORK/cap.log"

# a line that is not an edge: a bad record, named
printf '1\t2\nnot an edge\n' > "$WORK/bad.txt"
mpi 2 tcp run pagerank --input "$WORK/bad.txt" --output "$WORK/pr-bad" --quiet 2> "$WORK/bad.log"
check "a malformed edge: exit 2 naming the file, no output" \
    sh -c '[ $1 -eq 2 ] && grep -q "bad.txt" "$2" && [ ! -e "$3" ]' _ $? "$WORK/bad.log" "$WORK/pr-bad"

# refused before any stage runs; a crashed job's leftovers do not survive the rerun
touch "$WORK/afile"
mpi 2 tcp run pagerank --input "$WORK/small.txt" --output "$WORK/pr-x" --checkpoint-dir \
    "$WORK/afile" --quiet 2> "$WORK/x.log"
check "--checkpoint-dir that is a file: exit 2, named" \
    sh -c '[ $1 -eq 2 ] && grep -q "afile.* not a directory" "$2"' _ $? "$WORK/x.log"
mpi 2 tcp run invindex --input "$D" --output "$WORK/ii-2" --quiet 2> "$WORK/x.log"
check "an existing output: exit 2 before any stage, no intermediate folder" \
    sh -c '[ $1 -eq 2 ] && grep -q "already exists" "$2" && ! ls -a "$3" | grep -q mrflow-stages' \
    _ $? "$WORK/x.log" "$WORK"
mpi 2 tcp run invindex --input "$D" --output "$WORK/ii-crash" --quiet \
    --fault crash:rank=1:phase=reduce > /dev/null 2>&1
check "a rank killed in stage 1: the job fails, no output" \
    sh -c '[ $1 -ne 0 ] && [ ! -e "$2" ]' _ $? "$WORK/ii-crash"
mpi 2 tcp run invindex --input "$D" --output "$WORK/ii-crash" --quiet 2> /dev/null
check "rerun: the right index, the crashed run's intermediate files gone" \
    sh -c 'cmp -s "$1" "$2" && ! ls -a "$3" | grep -q mrflow-stages' _ \
    <(cat "$WORK/ii-crash"/part-* | sort) "$WORK/ii.ref" "$WORK"

# a damaged intermediate file is an error naming it, never a short index:
# stage 1's output in 4 KiB files (MRFLOW_KV_FILE), stage 2 stopped (USR1)
# after each rank's first file, the last file cut short, then resumed
ck2=$WORK/ck2
rm -f "$WORK"/pause.*
MRFLOW_KV_FILE=4K MRFLOW_TEST_PAUSE=map MRFLOW_TEST_PAUSE_FILE=$WORK/pause \
    MRFLOW_TEST_PAUSE_JOB=invindex/1.0 "$MPIEXEC" -np 2 --mca btl self,tcp "$MRFLOW" run \
    invindex --input "$D" --output "$WORK/ii-dmg" --checkpoint-dir "$ck2" --quiet \
    --checkpoint-policy always > "$WORK/dmg.log" 2>&1 &
pid=$!
wait_paused 2 "$pid"
kill -USR1 "$pid" 2> /dev/null
wait_dog "$pid"
last=$(ls "$ck2"/stages/stage-00.0000/part-* 2> /dev/null | tail -n 1)
check "stopped in stage 2 (exit 75) with stage 1's output in many files" \
    sh -c '[ $1 -eq 75 ] && [ "$(ls "$2" | grep -c "^part-")" -ge 4 ]' _ "$rc" \
    "$ck2/stages/stage-00.0000"
# same size and time, bad framing: the map reads it and names it
touch -r "$last" "$WORK/stamp"
printf '\377\377\377\177' | dd of="$last" conv=notrunc status=none
touch -r "$WORK/stamp" "$last"
MRFLOW_KV_FILE=4K mpi 2 tcp run invindex --input "$D" --output "$WORK/ii-dmg" \
    --checkpoint-dir "$ck2" --checkpoint-policy always --quiet 2> "$WORK/dmg2.log"
check "resumed over a damaged intermediate file: exit 1 naming it, no output" \
    sh -c '[ $1 -eq 1 ] && grep -q "${2##*/}.* damaged" "$3" && [ ! -e "$4" ]' _ $? "$last" \
    "$WORK/dmg2.log" "$WORK/ii-dmg"
# cut short: the stage run's checkpoint no longer matches its input files
truncate -s -3 "$last"
MRFLOW_KV_FILE=4K mpi 2 tcp run invindex --input "$D" --output "$WORK/ii-dmg" \
    --checkpoint-dir "$ck2" --checkpoint-policy always --quiet 2> "$WORK/dmg3.log"
check "an intermediate file cut short: refused (exit 2), no output" \
    sh -c '[ $1 -eq 2 ] && grep -q "previous stage run.s files.*damaged or replaced" "$2" &&
           [ ! -e "$3" ]' _ $? \
    "$WORK/dmg3.log" "$WORK/ii-dmg"

# ---- preempted in iteration 5, resumed at iteration 5 ------------------------
ck=$WORK/ck
rm -f "$WORK"/pause.*
MRFLOW_TEST_PAUSE=map MRFLOW_TEST_PAUSE_FILE=$WORK/pause MRFLOW_TEST_PAUSE_JOB=pagerank/1.5 \
    "$MPIEXEC" -np 4 --oversubscribe --mca btl self,tcp "$MRFLOW" run pagerank \
    --input "$WORK/g.txt" --output "$WORK/pr-pre" --tol 0 --iterations 12 --checkpoint-dir "$ck" \
    --checkpoint-policy always --quiet > "$WORK/pre.log" 2>&1 &
pid=$!
wait_paused 4 "$pid"
kill -USR1 "$pid" 2> /dev/null
wait_dog "$pid"
check "USR1 in iteration 5: exit 75, no output" sh -c '[ $1 -eq 75 ] && [ ! -e "$2" ]' _ "$rc" \
    "$WORK/pr-pre"
check "iteration 4's output committed in the checkpoint dir, 5's not" \
    sh -c '[ -e "$1/stage-01.0004/_SUCCESS" ] && [ ! -e "$1/stage-01.0005" ] &&
           [ ! -e "$1/stage-01.0003" ]' _ "$ck/stages"
mpi 2 tcp run pagerank --input "$WORK/g.txt" --output "$WORK/pr-pre" --tol 0 --iterations 12 \
    --checkpoint-dir "$ck" --checkpoint-policy always --log-level info > "$WORK/resume.log" 2>&1
check "resumed on 2 ranks: exit 0" [ $? -eq 0 ]
check "resumed at iteration 5 from its own checkpoint, nothing before it run again" \
    sh -c 'grep -q "after stage 1 run 4" "$1" &&
           grep -q "resuming job .pagerank/1.5. from checkpoint" "$1" &&
           ! grep -q "stage-00\|stage-01.000[0-4].ckpt" "$1"' _ "$WORK/resume.log"
mpi 4 tcp run pagerank --input "$WORK/g.txt" --output "$WORK/pr-12" --tol 0 --iterations 12 \
    --quiet 2> /dev/null
check "resumed: the same ranks as an uninterrupted run" \
    cmp -s <(cat "$WORK/pr-pre"/part-* | sort) <(cat "$WORK/pr-12"/part-* | sort)
check "resumed: its report marks iteration 4 as committed before" \
    grep -q '"name": "pagerank/1.4", "done_before": true' "$WORK/pr-pre/_REPORT.json"
check "resumed: the checkpoint dir emptied" sh -c '[ -z "$(ls -A "$1")" ]' _ "$ck"

# the same stop where no checkpoint of the stage run is worth writing
# (the default policy, MRFLOW_TEST_CKPT_COST making each too dear): the
# stop writes none, and the rerun goes on from iteration 4's committed
# output, doing iteration 5 over
ck=$WORK/ck-auto
rm -f "$WORK"/pause.*
MRFLOW_TEST_CKPT_COST=1e9 MRFLOW_TEST_PAUSE=map MRFLOW_TEST_PAUSE_FILE=$WORK/pause \
    MRFLOW_TEST_PAUSE_JOB=pagerank/1.5 "$MPIEXEC" -np 4 --oversubscribe --mca btl self,tcp \
    "$MRFLOW" run pagerank --input "$WORK/g.txt" --output "$WORK/pr-auto" --tol 0 \
    --iterations 12 --checkpoint-dir "$ck" --quiet > "$WORK/pre-auto.log" 2>&1 &
pid=$!
wait_paused 4 "$pid"
kill -USR1 "$pid" 2> /dev/null
wait_dog "$pid"
check "no checkpoint worth it: USR1 in iteration 5 exits 75 saying so, iteration 4 kept" \
    sh -c '[ $1 -eq 75 ] && grep -q "no checkpoint was worth writing" "$2" &&
           [ -e "$3/stage-01.0004/_SUCCESS" ] && ! ls "$3/.." | grep -q "^epoch"' _ "$rc" \
    "$WORK/pre-auto.log" "$ck/stages"
MRFLOW_TEST_CKPT_COST=1e9 mpi 2 tcp run pagerank --input "$WORK/g.txt" --output "$WORK/pr-auto" \
    --tol 0 --iterations 12 --checkpoint-dir "$ck" --log-level info > "$WORK/resume-auto.log" 2>&1
check "no checkpoint worth it: the rerun goes on after iteration 4 (exit 0)" \
    sh -c '[ $1 -eq 0 ] && grep -q "after stage 1 run 4" "$2" && ! grep -q "from checkpoint" "$2"' \
    _ $? "$WORK/resume-auto.log"
check "no checkpoint worth it: the same ranks as an uninterrupted run" \
    cmp -s <(cat "$WORK/pr-auto"/part-* | sort) <(cat "$WORK/pr-12"/part-* | sort)

# ---- stage 1 stopped mid-reduce, its output in 4 KiB files ------------------
# (MRFLOW_KV_FILE): the files written so far are kept and the epoch records
# which file each rank was writing and its size; the same command continues
# them.  The reference is an uninterrupted run (checked against Python above).
D2=$WORK/docs2
mkdir -p "$D2"
"$MRFLOW" gen text --size 3M --seed 9 --output "$D2/a.txt" 2> /dev/null || exit 99
MRFLOW_KV_FILE=4K mpi 2 tcp run invindex --input "$D2" --output "$WORK/ii2-plain" --quiet \
    2> /dev/null || not_ok "invindex over generated text failed"
rm -f "$WORK"/pause.*
MRFLOW_KV_FILE=4K MRFLOW_TEST_PAUSE=reduce-mid MRFLOW_TEST_PAUSE_FILE=$WORK/pause \
    MRFLOW_TEST_PAUSE_JOB=invindex "$MPIEXEC" -np 2 --mca btl self,tcp "$MRFLOW" run invindex \
    --input "$D2" --output "$WORK/ii2" --checkpoint-dir "$WORK/ck-ii2" --checkpoint-policy always \
    > "$WORK/ii2.log" 2>&1 &
pid=$!
wait_paused 2 "$pid"
kill -USR1 "$pid" 2> /dev/null
wait_dog "$pid"
check "stage 1 stopped mid-reduce: exit 75, its output so far kept" \
    sh -c '[ $1 -eq 75 ] && grep -q "with the reduce.s progress" "$2"' _ "$rc" "$WORK/ii2.log"
MRFLOW_KV_FILE=4K mpi 2 tcp run invindex --input "$D2" --output "$WORK/ii2" \
    --checkpoint-dir "$WORK/ck-ii2" --checkpoint-policy always --log-level info 2> "$WORK/ii2b.log"
rc=$?
cat "$WORK/ii2-plain"/part-* | sort > "$WORK/ii2-plain.sorted"
cat "$WORK/ii2"/part-* 2> /dev/null | sort > "$WORK/ii2.sorted"
check "stage 1 resumed: its files continued, the output of an uninterrupted run" \
    sh -c '[ $1 -eq 0 ] && grep -q "continuing the reduce" "$2" && cmp -s "$3" "$4"' _ "$rc" \
    "$WORK/ii2b.log" "$WORK/ii2-plain.sorted" "$WORK/ii2.sorted"

finish
