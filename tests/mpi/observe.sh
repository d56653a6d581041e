# observe.sh -- the run report, metrics, structured logs, progress and
# dead-letter records, checked against independent counts (awk, grep -b,
# wc) at 1, 2 and 4 ranks.
. "$TOP_SRCDIR/tests/mpi/lib.sh"
export LC_ALL=C

MPICC=${MPICC:-mpicc}
libdir=$TOP_BUILDDIR/.libs
# shellcheck disable=SC2086
"$MPICC" ${SAN_CFLAGS:-} -std=c11 -Wall -Wextra -Werror -I"$TOP_SRCDIR/include" \
    "$TOP_SRCDIR/tests/mpi/reject_job.c" -o "$WORK/kvsum" -L"$libdir" -lmrflow \
    -Wl,-rpath,"$libdir" || { echo "cannot build the test job"; exit 99; }

# input: KEY<TAB>NUMBER lines with some malformed ones mixed in
awk 'BEGIN { srand(3); for (i = 0; i < 200000; i++) {
        r = rand();
        if (r < 0.01) print "broken line " i;            # no tab
        else if (r < 0.015) print "k" i % 50 "\t12x";    # not a number
        else print "k" int(rand() * rand() * 500) "\t" int(rand() * 1000) } }' > "$WORK/in" || exit 99
# references: the sums, and the malformed lines with their byte offsets
awk -F'\t' 'NF == 2 && $2 ~ /^[0-9]+$/ { s[$1] += $2 } END { for (k in s) print k "\t" s[k] }' \
    "$WORK/in" | sort > "$WORK/ref"
grep -b -v -P '^[^\t]*\t[0-9]+$' "$WORK/in" | cut -d: -f1 | sort -n > "$WORK/bad.ref"
nbad=$(wc -l < "$WORK/bad.ref")

# mpix NP BTL PROGRAM ARGS...: a program of ours under mpiexec
mpix() {
    local np=$1 btl=$2; shift 2
    timeout 300 "$MPIEXEC" -np "$np" --oversubscribe --mca btl "self,$btl" "$@"
}


for np in $RANKS; do
    out=$WORK/o-$np
    # a backup copy of a slow rank's task must not set its bad records aside twice
    slow=""
    [ "$np" -gt 1 ] && slow="--fault slow:rank=1:factor=4"
    # (its reduce emits only if mrf_reject refuses to work there, so the sums
    # check that too)
    if mpix "$np" tcp "$WORK/kvsum" --input "$WORK/in" --output "$out" \
        --max-bad-records 100000 --task-size 256K --metrics "$WORK/m-$np.prom" \
        --log-format json --log-level info --progress on --progress-every 0.05 $slow \
        > /dev/null 2> "$WORK/err-$np"; then
        check "np=$np: sums match awk" sh -c "cat '$out'/part-* | sort | cmp -s - '$WORK/ref'"
        check "np=$np: every malformed line set aside once, at its byte offset" \
            sh -c "cut -f2 '$out'/_BAD_RECORDS/part-* | sort -n | cmp -s - '$WORK/bad.ref'"
        check "np=$np: report counts $nbad bad records" \
            test "$(jget "$out/_REPORT.json" bad_records)" = "$nbad"
        check "np=$np: bad record lines name the file and a reason" \
            sh -c "cut -f1,4 '$out'/_BAD_RECORDS/part-* | sort -u | grep -c . | grep -qx 2 &&
                   cut -f1 '$out'/_BAD_RECORDS/part-* | sort -u | grep -qx '$WORK/in'"
        check "np=$np: report status, run id as in _SUCCESS, ranks" \
            sh -c "[ '$(jget "$out/_REPORT.json" status)' = succeeded ] &&
                   grep -q \"\$(jget '$out/_REPORT.json' run_id)\" '$out/_SUCCESS' &&
                   [ '$(jget "$out/_REPORT.json" ranks)' = $np ]"
        check "np=$np: report records_in = input lines" \
            test "$(jget "$out/_REPORT.json" records_in)" = "$(wc -l < "$WORK/in")"
        check "np=$np: report records_out = output lines" \
            test "$(jget "$out/_REPORT.json" records_out)" = "$(cat "$out"/part-* | wc -l)"
        # every log line is one JSON object with time, run id and rank
        check "np=$np: JSON log lines carry time, run_id, rank" \
            sh -c "grep '^{' '$WORK/err-$np' | grep -v -c '^{\"time\": \"[0-9T:.-]*Z\", \"level\": \"[a-z]*\", \"run_id\": \"[^\"]*\", \"rank\": [0-9]*, .*\"msg\": \".*\"}$' | grep -qx 0 &&
                   grep -q '^{' '$WORK/err-$np'"
        check "np=$np: progress lines (off a terminal)" grep -q "^mrflow: progress: map" "$WORK/err-$np"
        # Prometheus text format: HELP/TYPE comments and name{labels} value
        check "np=$np: metrics in Prometheus text format, labels job/stage/rank only" \
            sh -c "grep -v '^#' '$WORK/m-$np.prom' | grep -v -c -E '^mrflow_[a-z_]+\\{job=\"kvsum\"(,stage=\"0\")?(,rank=\"[0-9]+\")?\\} [-+0-9.e]+$' | grep -qx 0"
        check "np=$np: metrics agree with the report" \
            sh -c "grep -qx 'mrflow_stage_bad_records{job=\"kvsum\",stage=\"0\"} $nbad' '$WORK/m-$np.prom' &&
                   grep -qx 'mrflow_job_succeeded{job=\"kvsum\"} 1' '$WORK/m-$np.prom' &&
                   [ \$(grep -c '^mrflow_rank_peak_rss_bytes' '$WORK/m-$np.prom') = $np ]"
        check "np=$np: mrflow report prints it" \
            sh -c "'$MRFLOW' report '$out/_REPORT.json' | grep -q 'bad records $nbad'"
    else
        not_ok "np=$np: run failed"
        sed 's/^/  /' "$WORK/err-$np" | tail -5
    fi
done

# past --max-bad-records: exit 2, no output, the first bad record named
rc=0
mpix 2 tcp "$WORK/kvsum" --input "$WORK/in" --output "$WORK/strict" --max-bad-records 10 \
    2> "$WORK/err" || rc=$?
check "too many bad records: exit 2, no output" test $rc = 2 -a ! -e "$WORK/strict"
check "too many bad records: says how many, the limit and the fix" \
    sh -c "grep -q \"$nbad malformed input records, more than --max-bad-records 10\" '$WORK/err' &&
           grep -q \"the first: '$WORK/in' at byte\" '$WORK/err'"

# a failed run still reports, to --report FILE, with the failing rank's error
rc=0
mpi 2 tcp run wordcount --input "$WORK/in" --output "$WORK/failed" --fault fail:rank=1 \
    --report "$WORK/failed.json" --metrics "$WORK/failed.prom" 2> "$WORK/err" || rc=$?
check "failed run: exit 1, report says failed, names the error" \
    sh -c "[ $rc = 1 ] && [ '$(jget "$WORK/failed.json" status)' = failed ] &&
           grep -q '\"error\": \"injected failure (--fault fail:rank=1)' '$WORK/failed.json'"
check "failed run: metrics say job_succeeded 0" \
    grep -qx 'mrflow_job_succeeded{job="wordcount"} 0' "$WORK/failed.prom"
check "failed run: no output, no report beside it" test ! -e "$WORK/failed"

# terasort: a trailing partial record is a bad record
"$MRFLOW" gen terasort --size 10000 --output "$WORK/tera" 2> /dev/null || exit 99
head -c 37 "$WORK/tera" >> "$WORK/tera"
rc=0
mpi 2 tcp run terasort --input "$WORK/tera" --output "$WORK/t0" --quiet 2> "$WORK/err" || rc=$?
check "terasort partial record, default limit 0: exit 2, named with its offset" \
    sh -c "[ $rc = 2 ] && grep -q \"'$WORK/tera' at byte 10000: a trailing partial record: 37 bytes\" '$WORK/err'"
if mpi 2 tcp run terasort --input "$WORK/tera" --output "$WORK/t1" --max-bad-records 1 --quiet \
    2> "$WORK/err"; then
    head -c 10000 "$WORK/tera" > "$WORK/tera.whole"
    check "terasort partial record allowed: output validates against the whole records" \
        "$MRFLOW" validate terasort "$WORK/t1" --input "$WORK/tera.whole"
    check "terasort partial record allowed: set aside at byte 10000, 37 bytes" \
        sh -c "cut -f2,3 '$WORK/t1'/_BAD_RECORDS/part-* | grep -qx '10000${TAB}37'"
else
    not_ok "terasort --max-bad-records 1: run failed"
fi

# the per-rank profile: where each phase's time went.  The parts of a phase
# must not add up to more than its wall time, CPU time not exceed it, and
# they must account for the reduce (nothing else happens in it); a run that
# spills shows spill time, every run write, fsync and MPI time (checked
# with Python, an independent reader of the JSON)
"$MRFLOW" gen terasort --size 32M --seed 5 --output "$WORK/tera32" 2> /dev/null || exit 99
cat > "$WORK/profile.py" << 'PY'
import json, sys
r = json.load(open(sys.argv[1]))
parts = {"map": ["read_s", "run_s", "spill_s", "wait_s"],
         "shuffle": ["group_s", "pack_s", "mpi_s", "unpack_s"],
         "reduce": ["sort_s", "reduce_s", "write_s", "fsync_s"]}
ok = len(r["ranks_detail"]) == int(sys.argv[2])
for k in r["ranks_detail"]:
    for ph, names in parts.items():
        q, wall = k["profile"][ph], k[ph + "_s"]
        if min(q[n] for n in names + ["cpu_s"]) < 0 or \
                sum(q[n] for n in names) > wall * 1.01 + 0.005 or q["cpu_s"] > wall * 1.01 + 0.005:
            print("rank", k["rank"], ph, "wall", wall, q)
            ok = False
    red = k["profile"]["reduce"]
    if sum(red[n] for n in parts["reduce"]) < 0.8 * k["reduce_s"] - 0.01:
        print("rank", k["rank"], "the reduce's parts do not cover it", k["reduce_s"], red)
        ok = False
    if k["spilled_bytes"] > 0 and k["profile"]["map"]["spill_s"] <= 0:
        print("rank", k["rank"], "spilled but has no spill time")
        ok = False
    if red["write_s"] <= 0 or red["fsync_s"] <= 0 or k["profile"]["shuffle"]["mpi_s"] <= 0:
        print("rank", k["rank"], "no write, fsync or MPI time")
        ok = False
sys.exit(0 if ok else 1)
PY
if mpi 2 tcp run terasort --input "$WORK/tera32" --output "$WORK/prof" --memory 16M --quiet \
    2> "$WORK/err"; then
    check "profile: per rank and phase, consistent with the phase times" \
        python3 "$WORK/profile.py" "$WORK/prof/_REPORT.json" 2
    check "profile: mrflow report prints each rank's reduce parts" \
        sh -c "'$MRFLOW' report '$WORK/prof/_REPORT.json' |
               grep -A2 '^reduce *rank *wall *CPU *waiting *sort *reduce *write *fsync' |
               grep -c '^ *[01] ' | grep -qx 2"
else
    not_ok "terasort with a profile: run failed"
    tail -5 "$WORK/err"
fi

# text logs carry the same context
mpi 2 tcp run wordcount --input "$WORK/in" --output "$WORK/w" --log-level info --quiet \
    2> "$WORK/err" > /dev/null
check "text log lines: time, rank, run id, stage" \
    grep -q '^[0-9-]*T[0-9:.]*Z mrflow\[rank 0 run [0-9A-Za-z-]* stage 0\]: info: ' "$WORK/err"
check "bad --log-format / --progress / --max-bad-records are usage errors" \
    sh -c "! '$MRFLOW' run wordcount --input x --output y --log-format xml 2>/dev/null &&
           ! '$MRFLOW' run wordcount --input x --output y --progress maybe 2>/dev/null &&
           ! '$MRFLOW' run wordcount --input x --output y --max-bad-records -1 2>/dev/null"
check "mrflow report refuses a file that is not a report (exit 2)" \
    sh -c "! '$MRFLOW' report '$WORK/in' 2>/dev/null"

finish
