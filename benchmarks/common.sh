# common.sh -- sourced by the benchmark runners: the shared setup (root-safe
# Open MPI, C locale), the corpus and terasort inputs generated once into
# bench-out/ (seed 1) and read once to warm the page cache, and helpers.
#   TEXT_SIZE (512M) TERA_SIZE (1G); sets $text and $tera
TEXT_SIZE=${TEXT_SIZE:-512M}
TERA_SIZE=${TERA_SIZE:-1G}
export LC_ALL=C OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p bench-out
text=bench-out/text-$TEXT_SIZE.txt
tera=bench-out/tera-$TERA_SIZE.dat
[ -f "$text" ] || ./mrflow gen text --size "$TEXT_SIZE" --seed 1 --output "$text"
[ -f "$tera" ] || ./mrflow gen terasort --size "$TERA_SIZE" --seed 1 --output "$tera" 2>/dev/null
cat "$text" "$tera" > /dev/null

now() { date +%s.%N; }
since() { awk -v s="$1" -v e="$(now)" 'BEGIN { print e - s }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
