"""metricnames.py: the names of the metrics hakmemd and the exporter
print, read from the sources that print them: daemon/control.c (its
metric_head() calls, and hakmem_client_NAME[_total] for every shim
counter by its HAKMEM_COUNTER_KIND_ in proto/hakmem_proto.h)
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
    # hakmem_client_NAME[_total] for every shim counter, by its kind in
    # proto/hakmem_proto.h (TOTAL: a counter, GAUGE: a gauge, STATE: shown
    # as hakmem_client_mode instead)
    proto = read(root, "proto", "hakmem_proto.h")
    kinds = re.findall(r"#define HAKMEM_COUNTER_KIND_(\w+)\s+HAKMEM_KIND_(\w+)", proto)
    if "hakmem_client_%s%s" in control:
        for name, kind in kinds:
            if kind != "STATE":
                names.add("hakmem_client_" + name + ("_total" if kind == "TOTAL" else ""))
    names |= set(re.findall(r"# TYPE (hakmem_[a-z0-9_]+) ", read(root, "tools", "ctl_exporter.c")))
    return names


def names_in(expr):
    """The hakmem_* names in a PromQL expression."""
    return set(re.findall(r"\bhakmem_[a-z0-9_]+\b", expr))
