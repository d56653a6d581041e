# mpistart.sh -- what mrflow asks of Open MPI before MPI_Init
# (src/mpistart.c): on a machine without fabric hardware, where nobody chose
# a pml, the ob1 pml (Open MPI then does not open its "cm" layer, whose
# fabric probe costs 0.2 s of every start); a pml the user or an MCA
# parameter file chose stands, and MRFLOW_MPI_DEFAULTS=0 turns it off.  The
# effect is read from Open MPI's own pml selection log, and every run's
# output equals a coreutils count.  1 and 2 ranks, over TCP.
. "$TOP_SRCDIR/tests/mpi/lib.sh"

if [ -e /sys/class/infiniband ] || ls /dev/hfi1_* /dev/ipath* /dev/cxi* > /dev/null 2>&1; then
    echo "SKIP: this machine has fabric hardware, where mrflow leaves the pml to Open MPI"
    exit 77
fi
"$MRFLOW" gen text --size 1M --output "$WORK/in.txt" > /dev/null || exit 99
ref_wordcount "$WORK/in.txt" > "$WORK/ref" || exit 99
mkdir -p "$WORK/home-choice/.openmpi" "$WORK/home-excl/.openmpi"
echo "pml = ob1" > "$WORK/home-choice/.openmpi/mca-params.conf"
printf '# a comment\npml = ^ucx\n' > "$WORK/home-excl/.openmpi/mca-params.conf"

# started TAG NP ENV...: wordcount with Open MPI's pml selection logged;
# the log in $WORK/TAG.log, the status in rc
started() {
    local tag=$1 np=$2
    shift 2
    rm -rf "$WORK/$tag.out"
    env "$@" OMPI_MCA_pml_base_verbose=10 timeout 120 "$MPIEXEC" -np "$np" --oversubscribe \
        --mca btl self,tcp "$MRFLOW" run wordcount --input "$WORK/in.txt" --output "$WORK/$tag.out" \
        --log-level debug > "$WORK/$tag.log" 2>&1
    rc=$?
}
# expect TAG NAME SAID CM: the run went right, said SAID, and opened the cm
# layer (CM=yes: its fabric probe ran) or not (no)
expect() {
    local tag=$1 name=$2 said=$3 cm=$4 opened=no
    grep -q "components_open: found loaded component cm" "$WORK/$tag.log" && opened=yes
    if [ "$rc" = 0 ] && cat "$WORK/$tag.out"/part-* | sort | cmp -s - "$WORK/ref" &&
        grep -q "MPI start-up: $said" "$WORK/$tag.log" && [ "$opened" = "$cm" ]; then
        ok "$name"
    else
        not_ok "$name (exit $rc, cm opened: $opened)"
        grep -E "MPI start|error" "$WORK/$tag.log" | head -5 | sed 's/^/  /'
    fi
}

for np in 1 2; do
    started default-$np $np
    expect default-$np "np=$np, no fabric, no pml chosen: ob1 set, cm not opened, output right" \
        "no fabric device and no pml chosen" no
done
started off 2 MRFLOW_MPI_DEFAULTS=0
expect off "MRFLOW_MPI_DEFAULTS=0: Open MPI chooses (cm opened), output right" \
    "MRFLOW_MPI_DEFAULTS=0" yes
started given 2 OMPI_MCA_pml=ob1
expect given "OMPI_MCA_pml given: left as it is" "OMPI_MCA_pml given" no
started choice 2 HOME="$WORK/home-choice"
expect choice "~/.openmpi/mca-params.conf 'pml = ob1': the file's choice stands" \
    "an MCA parameter file chooses" no
started excl 2 HOME="$WORK/home-excl"
expect excl "~/.openmpi/mca-params.conf 'pml = ^ucx' (an exclusion, not a choice): ob1 set" \
    "no fabric device and no pml chosen" no
finish
