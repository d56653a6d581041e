"""blocks.py -- the fenced code blocks of Markdown files, for tests/docs/examples.sh.

  blocks.py check-c TOP FILE.md...   every ```c block is a whole C file of
                                     TOP/tests/mpi or TOP/jobs, or its lines
                                     (blank ones aside) appear in order in
                                     one; prints one line per block
  blocks.py get LANG PATTERN FILE.md the first ```LANG block holding PATTERN
"""
import glob
import os
import sys


def blocks(path):
    out, cur, lang, start = [], None, None, 0
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        s = line.rstrip("\n")
        if cur is None and s.startswith("```"):
            cur, lang, start = [], s[3:].strip(), n
        elif cur is not None and s.startswith("```"):
            out.append((lang, start, cur))
            cur = None
        elif cur is not None:
            cur.append(s)
    return out


def excerpt_of(block, lines):
    want = [l for l in block if l.strip()]
    i = 0
    for l in lines:
        if i < len(want) and l == want[i]:
            i += 1
    return i == len(want)


def check_c(top, mds):
    sources = {}
    for p in sorted(glob.glob(os.path.join(top, "tests/mpi/*.c")) + glob.glob(os.path.join(top, "jobs/*.c"))):
        sources[os.path.relpath(p, top)] = open(p, encoding="utf-8").read().split("\n")
    bad = 0
    for md in mds:
        for lang, start, body in blocks(md):
            if lang != "c":
                continue
            where = "%s:%d" % (os.path.relpath(md, top), start)
            whole = [f for f, l in sources.items() if l[:-1] == body or l == body]
            part = [f for f, l in sources.items() if excerpt_of(body, l)]
            if whole:
                print("ok %s is %s" % (where, whole[0]))
            elif part:
                print("ok %s is an excerpt of %s" % (where, part[0]))
            else:
                print("BAD %s is no file's text and no excerpt of one" % where)
                bad = 1
    return bad


def get(lang, pattern, md):
    for l, _, body in blocks(md):
        if l == lang and any(pattern in s for s in body):
            print("\n".join(body))
            return 0
    return 1


if __name__ == "__main__":
    if sys.argv[1] == "check-c":
        sys.exit(check_c(sys.argv[2], sys.argv[3:]))
    sys.exit(get(sys.argv[2], sys.argv[3], sys.argv[4]))
