"""h5data.py -- HDF5 inputs for tests/mpi/dataset_input.sh, and numpy's
answers for them.

  h5data.py make FILE N     writes FILE: compound datasets (a big-endian
                            int64 'key' with skewed and negative values, a
                            float64 'val', a 3-byte string), chunked and
                            gzip-filtered with N rows (not a multiple of the
                            chunk), and contiguous; 1-D float64 with NaNs;
                            a 2-D int16 of N // 3 rows; a compound of a
                            uint16 'id' and a float32 'x' with NaNs; and
                            datasets mrflow
                            refuses (empty, 3-D, variable-length strings).
  h5data.py ref FILE DSET...  prints what tests/mpi/h5group.c should over
                            the datasets together: per key, KEY<TAB>COUNT
                            SUM MIN MAX FIRST (%.17g; FIRST the smallest
                            index in any of them), sorted as sort(1) sorts
                            them; NaNs left out.

  h5data.py hist FILE DSET FIELD LO HI N   the histogram job's answer
                            (FIELD "" for the element; every column of a
                            2-D row), BIN<TAB>COUNT sorted by sort(1)
  h5data.py groupby FILE DSET KEY VALUE    the groupby job's answer,
                            KEY<TAB>COUNT<TAB>SUM<TAB>MIN<TAB>MAX (%.17g)
  h5data.py typed OUTPUT.h5 a typed --format hdf5 output read as numpy
                            reads it (f['part-NNNNN/keys'][:]), printed as
                            the text output would be; "dtypes: ..." first

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
    # unsigned keys, float32 values with NaNs, little-endian
    nt = np.dtype([("id", "<u2"), ("x", "<f4")])
    nanrec = np.zeros(n, nt)
    nanrec["id"] = rng.zipf(2.0, n) % 500
    nanrec["x"] = rng.integers(-64, 64, n) / 8.0
    nanrec["x"][::501] = np.nan
    with h5py.File(path, "w") as f:
        f.create_dataset("grp/chunked", data=rec, chunks=(1000,), compression="gzip")
        f.create_dataset("contig", data=rec)
        f.create_dataset("floats", data=floats, chunks=(4096,), compression="gzip")
        f.create_dataset("mat", data=mat)
        f.create_dataset("nanrec", data=nanrec, chunks=(777,), compression="gzip")
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


def hist(path, name, field, lo, hi, n):
    with h5py.File(path, "r") as f:
        d = f[name][...]
    x = (d[field] if field else d).astype(np.float64).ravel()
    x = x[~np.isnan(x)]
    b = np.floor((x - lo) / (hi - lo) * n)
    b = np.where(x < lo, -1, np.where(x >= hi, n, np.clip(b, 0, n - 1))).astype(np.int64)
    keys, counts = np.unique(b, return_counts=True)
    lines = ["%d\t%d" % kc for kc in zip(keys, counts)]
    for line in sorted(lines, key=lambda s: s.encode()):
        print(line)


def groupby(path, name, key, value):
    with h5py.File(path, "r") as f:
        d = f[name][...]
    k, v = d[key].astype(np.int64), d[value].astype(np.float64)
    keep = ~np.isnan(v)
    k, v = k[keep], v[keep]
    lines = []
    for u in np.unique(k):
        w = v[k == u]
        lines.append("%d\t%d\t%.17g\t%.17g\t%.17g" % (u, len(w), w.sum(), w.min(), w.max()))
    for line in sorted(lines, key=lambda s: s.encode()):
        print(line)


def typed(path):
    def show(x):
        return "%.17g" % x if isinstance(x, (float, np.floating)) else "%d" % x

    lines, dtypes = [], set()
    with h5py.File(path, "r") as f:
        assert f.attrs["layout"] == b"typed", f.attrs["layout"]
        for name in sorted(f):
            keys, vals = f[name]["keys"][:], f[name]["values"][:]
            dtypes.add("%s %s" % (keys.dtype, vals.dtype.descr if vals.dtype.names else vals.dtype))
            for k, v in zip(keys, vals):
                cols = [show(c) for c in v] if vals.dtype.names else [show(v)]
                lines.append("\t".join([show(k)] + cols))
    print("dtypes: " + "; ".join(sorted(dtypes)))
    for line in sorted(lines, key=lambda s: s.encode()):
        print(line)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "hist":
        hist(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), float(sys.argv[6]),
             int(sys.argv[7]))
    elif sys.argv[1] == "groupby":
        groupby(*sys.argv[2:6])
    elif sys.argv[1] == "typed":
        typed(sys.argv[2])
    else:
        ref(sys.argv[2], sys.argv[3:])
