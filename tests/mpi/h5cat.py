"""h5cat.py OUTPUT.h5 -- an mrflow output.h5 as the text parts it replaces:
every part in order, each record as key TAB value NEWLINE (text_format
"text") or key then value ("raw"), on stdout.  Checks each part's records
attribute against its offsets.  Needs h5py (Debian: python3-h5py)."""
import sys

import h5py

f = h5py.File(sys.argv[1], "r")
raw = f.attrs["text_format"] in (b"raw", "raw")
out = sys.stdout.buffer
parts = int(f.attrs["parts"])
total = 0
for p in range(parts):
    g = f["part-%05d" % p]
    keys, koff = g["keys"][:].tobytes(), g["key_offsets"][:]
    vals, voff = g["values"][:].tobytes(), g["value_offsets"][:]
    n = len(koff) - 1
    if int(g.attrs["records"]) != n or len(voff) != n + 1:
        sys.exit("part-%05d: records attribute %d, offsets say %d" % (p, g.attrs["records"], n))
    for i in range(n):
        out.write(keys[koff[i]:koff[i + 1]])
        if not raw:
            out.write(b"\t")
        out.write(vals[voff[i]:voff[i + 1]])
        if not raw:
            out.write(b"\n")
    total += n
if total != int(f.attrs["records"]):
    sys.exit("file records attribute %d, parts hold %d" % (f.attrs["records"], total))
