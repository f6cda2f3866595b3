"""metricnames.py: the names of the metrics hakmemd and the exporter
print, read from the sources that print them: daemon/control.c (its
metric_head() calls, its table of per-cgroup sums, and
hakmem_client_NAME[_total] for every shim counter by its
HAKMEM_COUNTER_KIND_ in proto/hakmem_proto.h)
and tools/ctl_exporter.c (its # TYPE lines). tests/deploy checks alert
rules and the dashboard against them; tests/ctl/test_exporter.py checks
them against a live endpoint, so that this reading cannot drift.

known(): the families, as a # TYPE line names them. queryable(): what a
PromQL expression may name: the families, and for a histogram its
NAME_bucket, NAME_sum and NAME_count series. exporter(): the exporter's
own families. in_deploy(): the names deploy/'s alert rules and dashboard
write (tests/ctl/test_metrics.py checks that a live hakmemd gives each a
sample)."""
import os
import re


def read(root, *parts):
    with open(os.path.join(root, *parts)) as f:
        return f.read()


def types(root):
    """{family: type} for every family printed."""
    control = read(root, "daemon", "control.c")
    out = dict(re.findall(r'metric_head\(r, "(hakmem_[a-z0-9_]+)",\s*"([a-z]+)"', control))
    # the per-cgroup sums of shim counters: a table of counters (sum_families)
    out.update((n, "counter") for n in
               re.findall(r'\{ "(hakmem_[a-z0-9_]+)", HAKMEM_COUNTER_ID\(', control))
    # hakmem_client_NAME[_total] for every shim counter, by its kind in
    # proto/hakmem_proto.h (TOTAL: a counter, GAUGE: a gauge, STATE: shown
    # as hakmem_client_mode instead)
    proto = read(root, "proto", "hakmem_proto.h")
    kinds = re.findall(r"#define HAKMEM_COUNTER_KIND_(\w+)\s+HAKMEM_KIND_(\w+)", proto)
    if "hakmem_client_%s%s" in control:
        for name, kind in kinds:
            if kind != "STATE":
                total = kind == "TOTAL"
                out["hakmem_client_" + name + ("_total" if total else "")] = \
                    "counter" if total else "gauge"
    out.update(re.findall(r"# TYPE (hakmem_[a-z0-9_]+) ([a-z]+)", read(root, "tools",
                                                                         "ctl_exporter.c")))
    return out


def known(root):
    return set(types(root))


def queryable(root):
    out = set()
    for name, kind in types(root).items():
        out.add(name)
        if kind in ("histogram", "summary"):
            out |= {name + "_sum", name + "_count"}
        if kind == "histogram":
            out.add(name + "_bucket")
    return out


def exporter(root):
    return set(re.findall(r"# TYPE (hakmem_[a-z0-9_]+) ", read(root, "tools", "ctl_exporter.c")))


def in_deploy(root):
    out = set()
    pdir = os.path.join(root, "deploy", "prometheus")
    for f in sorted(os.listdir(pdir)):
        if f.endswith(".yaml"):
            out |= names_in(read(pdir, f))
    return out | names_in(read(root, "deploy", "grafana", "hakmem-dashboard.json"))


def names_in(expr):
    """The hakmem_* names in a PromQL expression."""
    return set(re.findall(r"\bhakmem_[a-z0-9_]+\b", expr))
