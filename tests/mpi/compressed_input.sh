# compressed_input.sh -- zstd- and gzip-compressed line files read as they
# are decompressed, made by the real zstd and gzip tools: a single zstd
# frame (one task, streamed in pieces of --task-size), many frames cut
# anywhere in a line (several tasks, lines crossing frames read once),
# frames cut at line ends, zstd writing a pipe (no declared sizes: one
# task), a gzip file and a gzip file of three members (one task each),
# plain and compressed files together; each at 1, 2 and 4 ranks over TCP,
# equal to a coreutils count of the plain text.  A truncated file is exit 2
# (zstd: seen when planning) or 1 (gzip: seen when read) and a damaged one
# exit 1, each naming the file, with no output; a records job is refused
# naming the fix.
. "$TOP_SRCDIR/tests/mpi/lib.sh"
for tool in zstd gzip; do
    command -v $tool > /dev/null ||
        { echo "SKIP: $tool is not installed (scripts/setup.sh installs it)"; exit 77; }
done

"$MRFLOW" gen text --size 6M --seed 21 --output "$WORK/text" > /dev/null || exit 99
printf 'a line without its newline' >> "$WORK/text"
ref_wordcount "$WORK/text" > "$WORK/ref"
zstd -q -c "$WORK/text" > "$WORK/one.zst" || exit 99
# many frames, cut every 300001 bytes (inside lines)
split -b 300001 -d -a 3 "$WORK/text" "$WORK/piece-"
for p in "$WORK"/piece-*; do zstd -q -c "$p"; done > "$WORK/many.zst"
rm -f "$WORK"/piece-*
# frames cut at line ends (each frame's last byte a newline)
split -l 5000 -d -a 3 "$WORK/text" "$WORK/piece-"
for p in "$WORK"/piece-*; do zstd -q -c "$p"; done > "$WORK/lines.zst"
rm -f "$WORK"/piece-*
# zstd writing a pipe: frames that do not declare their sizes
cat "$WORK/text" | zstd -q -c > "$WORK/piped.zst"
gzip -c "$WORK/text" > "$WORK/one.gz" || exit 99
# gzip of concatenated files: three members, cut inside lines
split -n 3 -d -a 1 "$WORK/text" "$WORK/piece-"
for p in "$WORK"/piece-*; do gzip -c "$p"; done > "$WORK/members.gz"
rm -f "$WORK"/piece-*
mkdir "$WORK/mixed"
# (files are separate: a's and b's last lines end with them)
{ head -c 2000000 "$WORK/text"; printf '\n'; } > "$WORK/mixed/a"
{ head -c 4000000 "$WORK/text" | tail -c +2000001; printf '\n'; } > "$WORK/mixed/b"
tail -c +4000001 "$WORK/text" > "$WORK/mixed/c"
cat "$WORK/mixed/a" "$WORK/mixed/b" "$WORK/mixed/c" > "$WORK/mixed.txt"
zstd -q --rm "$WORK/mixed/b" && gzip "$WORK/mixed/c" || exit 99
ref_wordcount "$WORK/mixed.txt" > "$WORK/ref-mixed"

tasks() { jget "$1/_REPORT.json" tasks; }
for np in $RANKS; do
    for f in one.zst many.zst lines.zst piped.zst one.gz members.gz; do
        out=$WORK/$f-$np
        mpi "$np" tcp run wordcount --input "$WORK/$f" --output "$out" --task-size 1M --quiet
        check "$f, $np ranks: exit 0" [ $? -eq 0 ]
        check "$f, $np ranks: counts equal coreutils' on the plain text" \
            cmp -s "$WORK/ref" <(cat "$out"/part-* 2> /dev/null | sort)
        check "$f, $np ranks: records in = lines ($(jget "$out/_REPORT.json" records_in))" \
            [ "$(jget "$out/_REPORT.json" records_in)" = "$(($(wc -l < "$WORK/text") + 1))" ]
        case $f in
        one.zst | piped.zst | *.gz) check "$f: one task ($(tasks "$out"))" [ "$(tasks "$out")" = 1 ] ;;
        *) check "$f: several tasks ($(tasks "$out"))" [ "$(tasks "$out")" -ge 5 ] ;;
        esac
    done
    mpi "$np" tcp run wordcount --input "$WORK/mixed" --output "$WORK/mixed-$np" --task-size 1M --quiet
    check "plain, zstd and gzip files in one folder, $np ranks: equal coreutils'" \
        cmp -s "$WORK/ref-mixed" <(cat "$WORK/mixed-$np"/part-* 2> /dev/null | sort)
done
mpi 2 tcp run wordcount --input "$WORK/many.zst" --output "$WORK/slow" --task-size 1M --quiet \
    --fault slow:rank=1:factor=4
check "many.zst with a slow rank (backups may run): equal coreutils'" \
    cmp -s "$WORK/ref" <(cat "$WORK/slow"/part-* 2> /dev/null | sort)

# preempted in the map (USR1 while every rank is paused after its first
# task), resumed on another rank count: the tasks of whole frames are
# planned again alike and the output is the uninterrupted one
usr1_in_map "$MRFLOW" run wordcount --input "$WORK/many.zst" --output "$WORK/ck-out" \
    --checkpoint-dir "$WORK/ck" --checkpoint-policy always --task-size 1M --quiet
check "USR1 in the map of many.zst: exit 75 ($rc), no output" [ "$rc" -eq 75 ] && [ ! -e "$WORK/ck-out" ]
mpi 4 tcp run wordcount --input "$WORK/many.zst" --output "$WORK/ck-out" --checkpoint-dir "$WORK/ck" \
    --checkpoint-policy always --task-size 1M > "$WORK/resume.log" 2>&1
check "resumed on 4 ranks: exit 0, says it resumed" \
    sh -c '[ $1 -eq 0 ] && grep -qi "resum" "$2"' _ $? "$WORK/resume.log"
check "resumed: counts equal coreutils'" cmp -s "$WORK/ref" <(cat "$WORK/ck-out"/part-* 2> /dev/null | sort)

# refused or failing, naming the file; no output
head -c -5000 "$WORK/many.zst" > "$WORK/trunc.zst"
mpi 2 tcp run wordcount --input "$WORK/trunc.zst" --output "$WORK/o" --quiet 2> "$WORK/err"
rc=$?
check "truncated: exit 2 ($rc)" [ $rc -eq 2 ]
check "truncated: the message names the file and says truncated" \
    sh -c 'grep -q "trunc.zst" "$1" && grep -q "truncated" "$1"' _ "$WORK/err"
check "truncated: no output" [ ! -e "$WORK/o" ]
cat "$WORK/err"
cp "$WORK/many.zst" "$WORK/bad.zst"
# four bytes inside a frame in the middle of the file
printf '\377\377\377\377' | dd of="$WORK/bad.zst" bs=1 seek=$((3 * 170000)) conv=notrunc 2> /dev/null
mpi 2 tcp run wordcount --input "$WORK/bad.zst" --output "$WORK/o" --quiet 2> "$WORK/err"
rc=$?
check "damaged: exit 1 or 2 ($rc)" [ $rc -eq 1 ] || [ $rc -eq 2 ]
check "damaged: the message names the file" grep -q "bad.zst" "$WORK/err"
check "damaged: no output" [ ! -e "$WORK/o" ]
cat "$WORK/err"
# gzip: truncated (seen when read: exit 1), damaged in the middle (the
# deflate data or the trailer's CRC fails), bytes after the last member
for bad in trunc damaged trailing; do
    case $bad in
    trunc) head -c -5000 "$WORK/members.gz" > "$WORK/$bad.gz" ;;
    damaged)
        cp "$WORK/members.gz" "$WORK/$bad.gz"
        printf '\377\377\377\377' |
            dd of="$WORK/$bad.gz" bs=1 seek=$((3 * 170000)) conv=notrunc 2> /dev/null
        ;;
    trailing) { cat "$WORK/one.gz"; printf 'not gzip\n'; } > "$WORK/$bad.gz" ;;
    esac
    mpi 2 tcp run wordcount --input "$WORK/$bad.gz" --output "$WORK/o" --quiet 2> "$WORK/err"
    rc=$?
    check "gzip $bad: exit 1 ($rc)" [ $rc -eq 1 ]
    check "gzip $bad: the message names the file and gzip -t" \
        sh -c 'grep -q "$2.gz" "$1" && grep -q "gzip -t" "$1"' _ "$WORK/err" "$bad"
    check "gzip $bad: no output" [ ! -e "$WORK/o" ]
    cat "$WORK/err"
done
"$MRFLOW" gen terasort --size 1M --output "$WORK/recs" > /dev/null || exit 99
zstd -q -c "$WORK/recs" > "$WORK/recs.zst"
mpi 2 tcp run terasort --input "$WORK/recs.zst" --output "$WORK/o" --quiet 2> "$WORK/err"
rc=$?
check "terasort on zstd records: exit 2 naming the file and zstd -d" \
    sh -c '[ $1 -eq 2 ] && grep -q "recs.zst" "$2" && grep -q "zstd -d" "$2"' _ $rc "$WORK/err"
gzip -c "$WORK/recs" > "$WORK/recs.gz"
mpi 2 tcp run terasort --input "$WORK/recs.gz" --output "$WORK/o" --quiet 2> "$WORK/err"
rc=$?
check "terasort on gzip records: exit 2 naming the file and gzip -d" \
    sh -c '[ $1 -eq 2 ] && grep -q "recs.gz" "$2" && grep -q "gzip -d" "$2"' _ $rc "$WORK/err"
finish
