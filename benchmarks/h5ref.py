"""h5ref.py -- the HDF5 benchmark's file and its numpy yardsticks
(benchmarks/datasets).

  h5ref.py make FILE ROWS      a chunked (1 Mi rows) compound dataset /events
                               of int64 'key' (Zipf-skewed, ~2,000 values,
                               some negative) and float64 'val' (uniform in
                               [-1000, 1000)), 16 bytes a row, written in
                               slabs
  h5ref.py read FILE           h5py reading every slab, nothing else: the
                               I/O limit of a Python reader
  h5ref.py hist FILE LO HI N   numpy: val counted into N bins over [LO, HI)
                               (bin -1 below, N at or above), slab by slab
  h5ref.py groupby FILE        numpy: count, sum, min, max of val per key,
                               slab by slab (sort by key, reduceat)

Each prints one line (rows, or the number of groups) so a run can be
checked; the slabs are 8 Mi rows (128 MiB), the size a careful numpy
program would use to stay within memory.
"""
import sys

import h5py
import numpy as np

SLAB = 8 << 20


def make(path, rows):
    rng = np.random.default_rng(1)
    t = np.dtype([("key", "<i8"), ("val", "<f8")])
    with h5py.File(path, "w") as f:
        d = f.create_dataset("events", shape=(rows,), dtype=t, chunks=(1 << 20,))
        for at in range(0, rows, SLAB):
            n = min(SLAB, rows - at)
            s = np.empty(n, t)
            s["key"] = rng.zipf(1.3, n) % 2000 - 100
            s["val"] = rng.uniform(-1000, 1000, n)
            d[at:at + n] = s


def slabs(path):
    with h5py.File(path, "r") as f:
        d = f["events"]
        for at in range(0, d.shape[0], SLAB):
            yield d[at:at + SLAB]


def read(path):
    print(sum(len(s) for s in slabs(path)))


def hist(path, lo, hi, n):
    counts = np.zeros(n + 2, np.int64)  # bins -1 .. n
    for s in slabs(path):
        x = s["val"]
        b = np.floor((x - lo) / (hi - lo) * n)
        b = np.where(x < lo, -1, np.where(x >= hi, n, np.clip(b, 0, n - 1))).astype(np.int64)
        counts += np.bincount(b + 1, minlength=n + 2)
    print(int(counts.sum()))


def groupby(path):
    acc = {}
    for s in slabs(path):
        order = np.argsort(s["key"], kind="stable")
        k, v = s["key"][order], s["val"][order]
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        cnt = np.diff(np.r_[starts, len(k)])
        sums = np.add.reduceat(v, starts)
        mins = np.minimum.reduceat(v, starts)
        maxs = np.maximum.reduceat(v, starts)
        for key, c, su, mi, ma in zip(k[starts], cnt, sums, mins, maxs):
            a = acc.get(key)
            acc[key] = (c, su, mi, ma) if a is None else (
                a[0] + c, a[1] + su, min(a[2], mi), max(a[3], ma))
    print(len(acc))


if __name__ == "__main__":
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "make":
        make(path, int(sys.argv[3]))
    elif cmd == "read":
        read(path)
    elif cmd == "hist":
        hist(path, float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
    else:
        groupby(path)
