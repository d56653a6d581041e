# replay.sh -- every fuzz target over its committed seed corpus and the
# inputs of past crashes (tests/fuzz/crashes/TARGET/), with gcc and, in the
# sanitizer build, ASan and UBSan: a regression test for each crash fixed.
set -u
dir=$TOP_SRCDIR/tests/fuzz
failed=0
for t in options records block lines report decisions zstd; do
    bin=$TOP_BUILDDIR/tests/fuzz/fuzz_$t
    set -- "$dir/corpus/$t"
    [ -d "$dir/crashes/$t" ] && set -- "$@" "$dir/crashes/$t"
    if out=$("$bin" "$@" 2>&1); then
        echo "ok - fuzz_$t: $out"
    else
        echo "not ok - fuzz_$t"
        echo "$out" | tail -20 | sed 's/^/  /'
        failed=$((failed + 1))
    fi
done
[ $failed -eq 0 ] || exit 1
