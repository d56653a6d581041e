#!/bin/sh
# setup.sh -- install mrflow's build dependencies (Debian 12; as root or with
# sudo), then configure and build.  Safe to run again: it does only what is
# missing.  Extra configure flags: MRFLOW_CONFIGURE_FLAGS="--enable-sanitizers"
# (or "--with-mpi=mpich", which also installs MPICH and its parallel HDF5).
set -eu
cd "$(dirname "$0")/.."

pkgs="build-essential autoconf automake libtool pkg-config libopenmpi-dev openmpi-bin
      libhdf5-openmpi-dev hdf5-tools libhwloc-dev hwloc libzstd-dev zlib1g-dev libxxhash-dev
      libcunit1-dev python3-h5py man-db
      gzip zstd xz-utils bzip2 lz4"  # the last line: tests feed their files in
flags=${MRFLOW_CONFIGURE_FLAGS:-}
case " $flags " in
*" --with-mpi=mpich "*) pkgs="$pkgs mpich libmpich-dev libhdf5-mpich-dev" ;;
esac
missing=
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    sudo=
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "setup: need root or sudo to install:$missing" >&2; exit 1; }
        sudo=sudo
    fi
    echo "setup: installing$missing"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

[ -x configure ] || autoreconf -fi
if [ ! -f Makefile ] || [ "$(cat .configure-flags 2>/dev/null)" != "$flags" ]; then
    # shellcheck disable=SC2086
    ./configure -q $flags
    printf '%s' "$flags" > .configure-flags
fi
make -j"$(nproc)" -s
