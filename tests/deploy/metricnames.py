"""metricnames.py: the names of the metrics hakmemd and the exporter
print, read from the sources that print them: daemon/control.c (its
metric_head() calls, and hakmem_client_NAME[_total] for every stats-page
counter of proto/hakmem_proto.h, _total for those stat_is_counter names)
and tools/ctl_exporter.c (its # TYPE lines). tests/deploy checks alert
rules and the dashboard against them; tests/ctl/test_exporter.py checks
them against a live endpoint, so that this reading cannot drift."""
import os
import re


def read(root, *parts):
    with open(os.path.join(root, *parts)) as f:
        return f.read()


def known(root):
    control = read(root, "daemon", "control.c")
    names = set(re.findall(r'metric_head\(r, "(hakmem_[a-z0-9_]+)"', control))
    proto = read(root, "proto", "hakmem_proto.h")
    macro = re.search(r"#define HAKMEM_STATS_COUNTERS\(X\)((?:.*\\\n)*.*)", proto)
    stats = re.findall(r'X\((\w+), "([a-z0-9_]+)"\)', macro.group(1)) if macro else []
    body = re.search(r"static bool stat_is_counter\(unsigned i\)\s*\{(.*?)\n\}", control, re.S)
    counters = set(re.findall(r"HAKMEM_STAT_(\w+)", body.group(1))) if body else set()
    if "hakmem_client_%s%s" in control:
        for ident, name in stats:
            names.add("hakmem_client_" + name + ("_total" if ident in counters else ""))
    names |= set(re.findall(r"# TYPE (hakmem_[a-z0-9_]+) ", read(root, "tools", "ctl_exporter.c")))
    return names


def names_in(expr):
    """The hakmem_* names in a PromQL expression."""
    return set(re.findall(r"\bhakmem_[a-z0-9_]+\b", expr))
