#!/usr/bin/env python3
"""promcheck.py: a small checker of the Prometheus text exposition format
(version 0.0.4) with the lint rules of `promtool check metrics`, for
machines without promtool (Debian's prometheus package installs ~100 MB;
tests use promtool as well when it is there).

Checks: line grammar (names, label names and escaped values, float values
with NaN/+Inf/-Inf, optional integer timestamp), the final newline, one
HELP and one TYPE per family, both before the family's samples, families
not interleaved, no duplicate series, type suffixes (_total only on
counters; _bucket/_sum/_count only within histograms and summaries), and
promtool's lint: HELP present, snake_case, no colons, no type name in the
metric name, base units, no abbreviated units. Plus hakmem's own rule:
every name starts with hakmem_.

Use: promcheck.py FILE (or - for stdin): prints the problems, exits 1 if any.
"""
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(\{(?:%s=%s(?:,%s=%s)*,?)?\})? ([^ ]+)(?: (-?[0-9]+))?$"
                    % (NAME, LABEL, VALUE, LABEL, VALUE))
LABEL_PAIR = re.compile(r"(%s)=(%s)" % (LABEL, VALUE))
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
# promlint: units that are not base units, and abbreviations
NON_BASE = ["milliseconds", "microseconds", "nanoseconds", "minutes", "hours", "days", "weeks",
            "kilobytes", "megabytes", "gigabytes", "terabytes", "kibibytes", "mebibytes",
            "gibibytes", "percent", "celsius", "fahrenheit", "grams", "millimeters",
            "centimeters", "kilometers", "miles", "feet", "inches"]
ABBREV = ["ms", "us", "ns", "sec", "secs", "min", "mins", "hr", "hrs", "kb", "mb", "gb", "pct",
          "perc", "temp", "cnt", "ctr", "msec", "usec", "nsec"]


def parse_float(s):
    if s in ("NaN", "+Inf", "-Inf", "Inf"):
        return True
    try:
        float(s)
    except ValueError:
        return False
    return not s.lower().lstrip("+-").startswith(("nan", "inf"))


def family_of(name, types):
    for suf in ("_bucket", "_sum", "_count", "_created"):
        base = name[:-len(suf)] if name.endswith(suf) else None
        if base and types.get(base) in ("histogram", "summary"):
            return base
    return name


def problems(text):
    out = []
    if text and not text.endswith("\n"):
        out.append("the text does not end with a newline")
    helps, types, seen_samples, series, order = {}, {}, set(), set(), []
    for n, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"), 1):
        where = "line %d" % n
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not re.fullmatch(NAME, name):
                    out.append("%s: bad metric name %r" % (where, name))
                if name in seen_samples:
                    out.append("%s: %s for %s after its samples" % (where, parts[1], name))
                if parts[1] == "HELP":
                    if name in helps:
                        out.append("%s: second HELP for %s" % (where, name))
                    helps[name] = parts[3] if len(parts) > 3 else ""
                    if not helps[name]:
                        out.append("%s: empty HELP for %s" % (where, name))
                else:
                    t = parts[3] if len(parts) > 3 else ""
                    if t not in TYPES:
                        out.append("%s: unknown TYPE %r" % (where, t))
                    if name in types:
                        out.append("%s: second TYPE for %s" % (where, name))
                    types[name] = t
            continue
        m = SAMPLE.match(line)
        if not m:
            out.append("%s: not a sample line: %r" % (where, line))
            continue
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        if not parse_float(value):
            out.append("%s: bad value %r" % (where, value))
        pairs = LABEL_PAIR.findall(labels)
        lnames = [p[0] for p in pairs]
        if len(set(lnames)) != len(lnames):
            out.append("%s: a label repeated" % where)
        for ln in lnames:
            if ln.startswith("__"):
                out.append("%s: reserved label name %s" % (where, ln))
            if re.search(r"[a-z][A-Z]", ln):
                out.append("%s: label %s is camelCase" % (where, ln))
        fam = family_of(name, types)
        key = (name, tuple(sorted(pairs)))
        if key in series:
            out.append("%s: duplicate series %s%s" % (where, name, labels))
        series.add(key)
        if fam not in order:
            order.append(fam)
        elif order[-1] != fam:
            out.append("%s: samples of %s not together" % (where, fam))
        seen_samples.add(fam)
        seen_samples.add(name)

    for fam in order:
        t = types.get(fam, "untyped")
        if fam not in helps:
            out.append("%s: no HELP" % fam)
        if not fam.startswith("hakmem_"):
            out.append("%s: not in the hakmem_ namespace" % fam)
        if ":" in fam:
            out.append("%s: colons are for recording rules" % fam)
        if re.search(r"[a-z][A-Z]", fam):
            out.append("%s: camelCase" % fam)
        if t == "counter" and not fam.endswith("_total"):
            out.append('%s: counter metrics should have "_total" suffix' % fam)
        if t != "counter" and fam.endswith("_total"):
            out.append('%s: non-counter metrics should not have "_total" suffix' % fam)
        words = fam.split("_")
        for w in ("counter", "gauge", "histogram", "summary"):
            if w in words:
                out.append("%s: metric name should not include type %r" % (fam, w))
        for u in NON_BASE:
            if u in words:
                out.append("%s: use base units, not %r" % (fam, u))
        for u in ABBREV:
            if u in words:
                out.append("%s: abbreviated unit %r" % (fam, u))
        if t not in ("histogram", "summary"):
            for suf in ("_bucket", "_count", "_sum"):
                if fam.endswith(suf):
                    out.append("%s: %s is reserved for histograms and summaries" % (fam, suf))
    return out


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "-"
    text = sys.stdin.read() if src == "-" else open(src).read()
    p = problems(text)
    for x in p:
        print(x)
    sys.exit(1 if p else 0)


if __name__ == "__main__":
    main()
