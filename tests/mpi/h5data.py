"""h5data.py -- HDF5 inputs for tests/mpi/dataset_input.sh, and numpy's
answers for them.

  h5data.py make FILE N     writes FILE: compound datasets (a big-endian
                            int64 'key' with skewed and negative values, a
                            float64 'val', a 3-byte string), chunked and
                            gzip-filtered with N rows (not a multiple of the
                            chunk), and contiguous; 1-D float64 with NaNs;
                            a 2-D int16 of N // 3 rows; and datasets mrflow
                            refuses (empty, 3-D, variable-length strings).
  h5data.py ref FILE DSET...  prints what tests/mpi/h5group.c should over
                            the datasets together: per key, KEY<TAB>COUNT
                            SUM MIN MAX FIRST (%.17g; FIRST the smallest
                            index in any of them), sorted as sort(1) sorts
                            them; NaNs left out.

Values are multiples of 1/4 well under 2^40, so every sum is exact in
double whatever order the ranks add in.
"""
import sys

import h5py
import numpy as np


def make(path, n):
    rng = np.random.default_rng(7)
    keys = (rng.zipf(1.5, n) % 2000).astype(np.int64) - 300
    vals = rng.integers(-1000, 1000, n) / 2.0
    ct = np.dtype([("key", ">i8"), ("val", "<f8"), ("tag", "S3")])
    rec = np.zeros(n, ct)
    rec["key"], rec["val"], rec["tag"] = keys, vals, b"abc"
    floats = rng.integers(-5000, 5000, n) / 4.0
    floats[::997] = np.nan
    mat = rng.integers(-300, 300, (n // 3, 3)).astype(np.int16)
    with h5py.File(path, "w") as f:
        f.create_dataset("grp/chunked", data=rec, chunks=(1000,), compression="gzip")
        f.create_dataset("contig", data=rec)
        f.create_dataset("floats", data=floats, chunks=(4096,), compression="gzip")
        f.create_dataset("mat", data=mat)
        f.create_dataset("empty", shape=(0,), dtype="i4")
        f.create_dataset("cube", data=np.zeros((4, 4, 4), "i4"))
        f.create_dataset("strings", data=np.array(["a", "bb"], dtype=h5py.string_dtype()))


def columns(path, name):
    """keys, values and indices of one dataset, as h5group.c maps them"""
    with h5py.File(path, "r") as f:
        d = f[name][...]
    if d.dtype.names:
        return d["key"].astype(np.int64), d["val"].astype(np.float64), np.arange(len(d))
    rows = d.reshape(len(d), -1)  # numbers: every column, keyed by its value
    vals = rows.astype(np.float64).ravel()
    index = np.repeat(np.arange(len(rows)), rows.shape[1])
    keep = ~np.isnan(vals)
    vals, index = vals[keep], index[keep]
    return np.trunc(vals).astype(np.int64), vals, index


def ref(path, names):
    cols = [columns(path, n) for n in names]
    keys, vals, index = (np.concatenate([c[i] for c in cols]) for i in range(3))
    out = []
    for k in np.unique(keys):
        m = keys == k
        v = vals[m]
        out.append("%d\t%.17g %.17g %.17g %.17g %.17g" % (
            k, m.sum(), v.sum(), v.min(), v.max(), index[m].min()))
    # sort(1) in the C locale: bytewise
    for line in sorted(out, key=lambda s: s.encode()):
        print(line)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], int(sys.argv[3]))
    else:
        ref(sys.argv[2], sys.argv[3:])
