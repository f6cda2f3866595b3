#!/usr/bin/env python3
"""check_deploy.py: deploy/ checked offline (no cluster, no network).

- Every YAML file under deploy/ parses.
- Every Kubernetes object in deploy/kubernetes/ is validated against the
  Kubernetes API schema of its kind (deploy/schemas/kubernetes.json, from
  the npm package kubernetes-models), strictly: a field the schema does not
  name is an error, as with `kubectl apply --validate=strict`. A kind that
  has no vendored schema is an error too.
- Each kustomization.yaml: only known fields, its resources exist, and its
  JSON 6902 patches apply to their target, the result validated again.
- The check is shown to bite: a misspelled field, a wrong type and a
  missing required field, each put into a copy of the DaemonSet, must be
  rejected.
- The DaemonSet agrees with the rest of the repository: the capabilities
  added to hakmemd are the bounding set of systemd/hakmemd.service.in, the
  exporter's --listen port is its named port "metrics" and the scrape
  annotation, the image of every container is the one kustomization sets,
  and the exporter's supplemental group is the gid deploy/Containerfile
  gives the group hakmemd hands metrics.sock to (metrics_group, as the
  DaemonSet or daemon/config.h's default names it); a copy with another
  gid must fail that check.
- deploy/prometheus/: the rule files have the rule file layout, and every
  hakmem_* name in an expression is a metric hakmemd or the exporter
  exports today (a histogram's _bucket, _sum and _count included);
  `promtool check rules` when promtool is installed.
- deploy/grafana/: the dashboard is JSON with panels whose queries use only
  metrics that exist and no per-process series (hakmem_client_*, served
  only on request), parse as PromQL (`promtool check rules` on them, with
  Grafana's variables filled in), and it has the panels the issue names.

The names that exist are read from the sources that print them
(daemon/control.c, proto/hakmem_proto.h, tools/ctl_exporter.c);
tests/ctl/test_exporter.py compares that list with a live endpoint.
Exit 0, 1, or 77 (python3-yaml or python3-jsonschema missing)."""
import copy
import json
import os
import re
import shutil
import subprocess
import sys

import metricnames

try:
    import jsonschema
    import yaml
except ImportError as e:
    print("SKIP: %s (Debian: python3-yaml python3-jsonschema; tools/setup.sh installs them)" % e)
    sys.exit(77)

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")

failures = checks = 0


def check(cond, what, detail=""):
    global failures, checks
    checks += 1
    print(("ok   " if cond else "FAIL ") + what + ("" if cond or not detail else ": " + str(detail)))
    failures += not cond
    return cond


# --- metric names -------------------------------------------------------------------

def read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


def known_metrics():
    return metricnames.queryable(ROOT)


def names_in(expr):
    return metricnames.names_in(expr)


# --- Kubernetes schemas ----------------------------------------------------------------

SCHEMAS = json.load(open(os.path.join(DEPLOY, "schemas", "kubernetes.json")))


def strict(node):
    """additionalProperties: false wherever properties are listed and
    nothing else is said (kubeconform's -strict does the same)."""
    if isinstance(node, dict):
        out = {k: strict(v) for k, v in node.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


DEFS = strict(SCHEMAS["definitions"])


def validator(obj):
    kind = "%s %s" % (obj.get("apiVersion"), obj.get("kind"))
    ref = SCHEMAS["kinds"].get(kind)
    if not ref:
        return None, kind
    schema = {"$ref": "#/definitions/" + ref, "definitions": DEFS}
    return jsonschema.Draft7Validator(schema), kind


def leaves(e):
    """The errors under a oneOf (a field that may also be null) that say
    what is wrong, rather than "not valid under any of the schemas"."""
    if not e.context:
        yield e
        return
    for c in e.context:
        if c.validator == "type" and c.validator_value == "null":
            continue
        yield from leaves(c)


def errors_of(obj):
    v, kind = validator(obj)
    if v is None:
        return ["no schema for %s (vendor it: deploy/schemas/README.md)" % kind]
    out = ["%s: %s" % ("/".join(str(p) for p in x.absolute_path), x.message)
           for e in v.iter_errors(obj) for x in leaves(e)]
    return sorted(set(out))


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# --- JSON 6902 (replace/add/remove), for kustomize patches ----------------------------

def pointer(doc, path):
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]
    parent = doc
    for p in parts[:-1]:
        parent = parent[int(p)] if isinstance(parent, list) else parent[p]
    return parent, parts[-1]


def json_patch(doc, ops):
    doc = copy.deepcopy(doc)
    for op in ops:
        parent, key = pointer(doc, op["path"])
        if isinstance(parent, list):
            key = len(parent) if key == "-" else int(key)
        if op["op"] == "replace":
            if isinstance(parent, list):
                parent[key] = op["value"]
            else:
                if key not in parent:
                    raise KeyError("replace: %s is not there" % op["path"])
                parent[key] = op["value"]
        elif op["op"] == "add":
            if isinstance(parent, list):
                parent.insert(key, op["value"])
            else:
                parent[key] = op["value"]
        elif op["op"] == "remove":
            del parent[key]
        else:
            raise ValueError("op %s not handled" % op["op"])
    return doc


KUSTOMIZE_FIELDS = {"apiVersion", "kind", "namespace", "resources", "images", "patches",
                    "labels", "commonAnnotations", "namePrefix", "nameSuffix", "components"}


def kustomize(dirpath):
    """The objects kustomization.yaml in dirpath makes (resources and JSON
    6902 patches only), checking its fields on the way."""
    k = load_docs(os.path.join(dirpath, "kustomization.yaml"))[0]
    rel = os.path.relpath(dirpath, ROOT)
    check(k.get("apiVersion") == "kustomize.config.k8s.io/v1beta1" and k.get("kind") == "Kustomization",
          "%s/kustomization.yaml: a Kustomization" % rel)
    check(set(k) <= KUSTOMIZE_FIELDS, "%s/kustomization.yaml: only known fields" % rel,
          set(k) - KUSTOMIZE_FIELDS)
    objs = []
    for r in k.get("resources", []):
        p = os.path.normpath(os.path.join(dirpath, r))
        if os.path.isdir(p):
            objs += kustomize(p)
        elif check(os.path.isfile(p), "%s: resource %s exists" % (rel, r)):
            objs += load_docs(p)
    if k.get("namespace"):
        for o in objs:
            if o.get("kind") != "Namespace":
                o.setdefault("metadata", {})["namespace"] = k["namespace"]
    for p in k.get("patches", []):
        t = p.get("target", {})
        hits = [o for o in objs if o.get("kind") == t.get("kind")
                and o.get("metadata", {}).get("name") == t.get("name")
                and o.get("apiVersion") == ("%s/%s" % (t["group"], t["version"]) if t.get("group")
                                            else t.get("version"))]
        check(len(hits) == 1, "%s: patch target %s/%s found" % (rel, t.get("kind"), t.get("name")))
        for h in hits:
            try:
                patched = json_patch(h, yaml.safe_load(p["patch"]))
            except (KeyError, IndexError, ValueError, TypeError) as e:
                check(False, "%s: patch applies" % rel, e)
                continue
            objs[objs.index(h)] = patched
    return objs


# --- the checks ------------------------------------------------------------------------

def check_yaml_parses():
    n, seen = 0, set()
    for d, _, files in os.walk(DEPLOY):
        for f in sorted(files):
            if f.endswith((".yaml", ".yml")):
                p = os.path.join(d, f)
                try:
                    load_docs(p)
                    ok, err = True, ""
                except yaml.YAMLError as e:
                    ok, err = False, e
                check(ok, "%s parses" % os.path.relpath(p, ROOT), err)
                n += 1
                seen.add(os.path.relpath(p, DEPLOY))
    # the manifests and rules the README lists are all there (and so checked)
    want = {"kubernetes/namespace.yaml", "kubernetes/serviceaccount.yaml",
            "kubernetes/daemonset.yaml", "kubernetes/example-workload.yaml",
            "kubernetes/kustomization.yaml", "prometheus/hakmem-rules.yaml"}
    check(want <= seen, "%d YAML files under deploy/, the %d listed among them" % (n, len(want)),
          "missing: %s" % ", ".join(sorted(want - seen)))


def check_kubernetes():
    kdir = os.path.join(DEPLOY, "kubernetes")
    for f in sorted(os.listdir(kdir)):
        if not f.endswith(".yaml") or f == "kustomization.yaml":
            continue
        for o in load_docs(os.path.join(kdir, f)):
            e = errors_of(o)
            check(not e, "deploy/kubernetes/%s: %s %s valid against the API schema"
                  % (f, o.get("kind"), o.get("metadata", {}).get("name")), "\n  ".join(e))
    objs = kustomize(kdir)
    for o in objs:
        e = errors_of(o)
        check(not e, "kustomize: %s %s valid" % (o["kind"], o["metadata"]["name"]), "\n  ".join(e))
    ds = [o for o in objs if o["kind"] == "DaemonSet"][0]
    c = ds["spec"]["template"]["spec"]["containers"][0]
    check(c["name"] == "hakmemd" and not c["securityContext"].get("privileged"),
          "the hakmemd container is not privileged (hakmemd places cgroups from its own "
          "cgroup namespace)")


def daemonset():
    return [o for o in load_docs(os.path.join(DEPLOY, "kubernetes", "daemonset.yaml"))
            if o["kind"] == "DaemonSet"][0]


def metrics_gid_problems(ds, containerfile, config_h):
    """Why the exporter of DaemonSet ds would not be in the group of
    metrics.sock (empty: it is): the group hakmemd gives the socket to
    (--set metrics_group=... in its args, else config.h's default) must be
    made by the Containerfile's final stage with a fixed gid, and that gid
    must be a supplemental group of the pod."""
    spec = ds["spec"]["template"]["spec"]
    cs = {c["name"]: c for c in spec["containers"]}
    args = cs["hakmemd"].get("args", [])
    group = re.search(r'X\(metrics_group, NAME, "([^"]+)"', config_h).group(1)
    for i, arg in enumerate(args[:-1]):
        if arg == "--set" and args[i + 1].startswith("metrics_group="):
            group = args[i + 1].split("=", 1)[1]
    final = containerfile.split("\nFROM ")[-1]
    m = re.search(r"^RUN groupadd\b[^\n]*--gid (\d+)[^\n]* %s$" % re.escape(group), final, re.M)
    if not m:
        return ["the Containerfile's final stage makes no group %s with a fixed gid" % group]
    gid = int(m.group(1))
    sup = spec.get("securityContext", {}).get("supplementalGroups", [])
    ex = cs["exporter"]["securityContext"]
    out = []
    if gid not in sup:
        out.append("the pod's supplementalGroups %s lack %s's gid %d" % (sup, group, gid))
    if ex.get("runAsGroup") == gid or ex.get("runAsUser") == 0:
        out.append("the exporter should run as nobody, with the group as a supplemental one")
    return out


def check_bites():
    ds = daemonset()
    check(not errors_of(ds), "the DaemonSet as written is valid (so the rejections below are real)")
    cases = []
    bad = copy.deepcopy(ds)
    bad["spec"]["template"]["spec"]["hostPid"] = bad["spec"]["template"]["spec"].pop("hostPID")
    cases.append(("a misspelled field (hostPid)", bad, "hostPid"))
    bad = copy.deepcopy(ds)
    bad["spec"]["template"]["spec"]["containers"][1]["ports"][0]["containerPort"] = "9477"
    cases.append(("a wrong type (containerPort: \"9477\")", bad, "is not of type 'integer'"))
    bad = copy.deepcopy(ds)
    bad["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] = ["128Mi"]
    cases.append(("a wrong type (memory limit a list)", bad, "memory"))
    bad = copy.deepcopy(ds)
    del bad["spec"]["template"]["spec"]["containers"][0]["name"]
    cases.append(("a missing required field (container name)", bad, "'name' is a required property"))
    bad = copy.deepcopy(ds)
    bad["apiVersion"] = "apps/v1beta2"
    cases.append(("a kind without a vendored schema (apps/v1beta2)", bad, "no schema"))
    for what, obj, expect in cases:
        e = errors_of(obj)
        check(any(expect in x for x in e), "rejected: %s" % what, e or "accepted")
    bad = copy.deepcopy(ds)
    bad["spec"]["template"]["spec"]["securityContext"]["supplementalGroups"] = [9478]
    check(metrics_gid_problems(bad, read("deploy", "Containerfile"), read("daemon", "config.h")),
          "rejected: an exporter in another group than the Containerfile's hakmem-metrics")


def check_consistency():
    ds = daemonset()
    spec = ds["spec"]["template"]["spec"]
    cs = {c["name"]: c for c in spec["containers"]}
    unit = read("systemd", "hakmemd.service.in")
    bset = re.search(r"^CapabilityBoundingSet=(.*)$", unit, re.M).group(1).split()
    added = cs["hakmemd"]["securityContext"]["capabilities"]["add"]
    check(sorted("CAP_" + c for c in added) == sorted(bset),
          "hakmemd's capabilities %s are hakmemd.service's bounding set" % added, bset)
    check(cs["hakmemd"]["securityContext"]["capabilities"]["drop"] == ["ALL"]
          and cs["exporter"]["securityContext"]["capabilities"]["drop"] == ["ALL"]
          and "add" not in cs["exporter"]["securityContext"]["capabilities"],
          "every other capability dropped; the exporter has none")
    check(cs["exporter"]["securityContext"].get("runAsNonRoot") is True,
          "the exporter runs as a user other than root")
    check(spec.get("hostPID") is True and spec.get("tolerations") == [{"operator": "Exists"}],
          "hostPID, and tolerations that let it run on every node")
    args = cs["exporter"]["args"]
    port = int(args[args.index("--listen") + 1].rsplit(":", 1)[1])
    named = {p["name"]: p["containerPort"] for p in cs["exporter"]["ports"]}
    ann = ds["spec"]["template"]["metadata"]["annotations"]
    check(named.get("metrics") == port == int(ann["prometheus.io/port"]),
          "exporter: --listen port %d = named port metrics = prometheus.io/port" % port,
          "%r %r" % (named, ann))
    mounts = {m["mountPath"]: m for m in cs["hakmemd"].get("volumeMounts", [])}
    check("/run/hakmem" in mounts and "/sys/fs/cgroup" in mounts and
          mounts["/run/hakmem"].get("readOnly") is not True,
          "hakmemd mounts /run/hakmem (writable) and /sys/fs/cgroup")
    p = metrics_gid_problems(ds, read("deploy", "Containerfile"), read("daemon", "config.h"))
    check(not p, "the exporter is in the group of metrics.sock: the Containerfile's gid for "
          "hakmem-metrics is the pod's supplemental group", "; ".join(p))
    k = load_docs(os.path.join(DEPLOY, "kubernetes", "kustomization.yaml"))[0]
    img = {i["name"] for i in k.get("images", [])}
    used = {c["image"].split(":")[0] for c in spec["containers"] + spec.get("initContainers", [])}
    check(used <= img, "every container's image is set by kustomization's images", used - img)
    ex = [o for o in load_docs(os.path.join(DEPLOY, "kubernetes", "example-workload.yaml"))
          if o["kind"] == "Pod"][0]
    c = ex["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    vols = {v["name"]: v for v in ex["spec"]["volumes"]}
    mounted = {m["mountPath"]: vols[m["name"]]["hostPath"]["path"] for m in c["volumeMounts"]}
    lib = env.get("LD_PRELOAD", "")
    check(os.path.dirname(lib) in mounted and mounted[os.path.dirname(lib)] ==
          [v["hostPath"]["path"] for v in spec["volumes"] if v["name"] == "shim-lib"][0],
          "example workload: LD_PRELOAD=%s from the directory the DaemonSet installs it to" % lib)
    check(mounted.get(env.get("HAKMEM_RUNTIME_DIR")) == "/run/hakmem",
          "example workload: HAKMEM_RUNTIME_DIR is the node's /run/hakmem")


def check_prometheus(known):
    pdir = os.path.join(DEPLOY, "prometheus")
    seen = 0
    for f in sorted(os.listdir(pdir)):
        if not f.endswith(".yaml"):
            continue
        doc = load_docs(os.path.join(pdir, f))[0]
        for g in doc["groups"]:
            for r in g["rules"]:
                seen += 1
                what = "deploy/prometheus/%s: %s" % (f, r.get("alert") or r.get("record"))
                check(set(r) <= {"alert", "record", "expr", "for", "labels", "annotations",
                                 "keep_firing_for"} and "expr" in r
                      and ("alert" in r) != ("record" in r), what + ": a rule's fields")
                names = names_in(r["expr"])
                check(names and names <= known, what + ": uses existing metrics %s"
                      % sorted(names), sorted(names - known))
    check(seen >= 5, "%d alert rules" % seen)
    main = " ".join(r["alert"] for g in load_docs(os.path.join(pdir, "hakmem-rules.yaml"))[0]["groups"]
                    for r in g["rules"])
    check(all(a in main for a in ("Critical", "Rejected", "DaemonDown", "RingBufferDrops",
                                  "TableFull")),
          "rules for a cgroup stuck at CRITICAL, shims hakmemd refuses, hakmemd down, BPF losses")
    promtool = shutil.which("promtool")
    if promtool:
        files = sorted(os.path.join(pdir, f) for f in os.listdir(pdir) if f.endswith(".yaml"))
        p = subprocess.run([promtool, "check", "rules"] + files, capture_output=True, text=True)
        check(p.returncode == 0, "promtool check rules deploy/prometheus/*.yaml", p.stdout + p.stderr)
        bad = os.path.join(os.environ.get("TMPDIR", "/tmp"), "hakmem-bad-rules-%d.yaml" % os.getpid())
        with open(bad, "w") as fh:
            fh.write("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: hakmem_up ==\n")
        p = subprocess.run([promtool, "check", "rules", bad], capture_output=True, text=True)
        os.unlink(bad)
        check(p.returncode != 0, "promtool check rules rejects a broken expression (the check bites)")
    else:
        print("(promtool not installed: rules checked by this script only)")


def check_grafana(known):
    path = os.path.join(DEPLOY, "grafana", "hakmem-dashboard.json")
    try:
        dash = json.load(open(path))
    except ValueError as e:
        check(False, "deploy/grafana/hakmem-dashboard.json is JSON", e)
        return
    check(True, "deploy/grafana/hakmem-dashboard.json is JSON")
    panels = dash.get("panels", [])
    check(dash.get("title") and dash.get("uid") and isinstance(dash.get("schemaVersion"), int),
          "dashboard: title, uid, schemaVersion")
    ids = [p.get("id") for p in panels]
    check(len(ids) == len(set(ids)), "dashboard: panel ids unique")
    for p in panels:
        exprs = [t.get("expr", "") for t in p.get("targets", [])]
        names = set().union(*map(names_in, exprs)) if exprs else set()
        check(exprs and names and names <= known, "panel %r: queries use existing metrics %s"
              % (p.get("title"), sorted(names)), sorted(names - known))
        gp = p.get("gridPos", {})
        check(all(isinstance(gp.get(k), int) for k in "hwxy") and gp["x"] + gp["w"] <= 24,
              "panel %r: on the 24-column grid" % p.get("title"))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("definition", "")
        check(names_in(q) <= known, "variable %s: existing metrics" % v.get("name"))
    titles = " ".join(p.get("title", "").lower() for p in panels)
    for want in ("level", "decommitted", "by mode", "time to release", "level changes"):
        check(want in titles, "dashboard has a panel for %r" % want)
    exprs = [t.get("expr", "") for p in panels for t in p.get("targets", [])]
    per_process = sorted(n for e in exprs for n in names_in(e) if n.startswith("hakmem_client_"))
    check(not per_process, "no panel needs the per-process series (--per-process)", per_process)
    release = [e for e in exprs if "hakmem_release_seconds_bucket" in e]
    check(any("histogram_quantile(0.5," in e for e in release)
          and any("histogram_quantile(0.99," in e for e in release),
          "time to release: p50 and p99 from the histogram")
    promtool = shutil.which("promtool")
    if promtool:
        # each query as a recording rule, Grafana's variables filled in
        filled = [e.replace("$__rate_interval", "5m").replace("$instance", ".*") for e in exprs]
        doc = {"groups": [{"name": "dashboard", "rules": [{"record": "hakmem:q%d" % i, "expr": e}
                                                          for i, e in enumerate(filled)]}]}
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "hakmem-dash-%d.yaml" % os.getpid())
        with open(path, "w") as fh:
            yaml.safe_dump(doc, fh)
        pr = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
        os.unlink(path)
        check(pr.returncode == 0, "every dashboard query parses as PromQL (promtool, %d queries)"
              % len(filled), pr.stdout + pr.stderr)


def main():
    known = known_metrics()
    check(len(known) >= 20 and "hakmem_up" in known and "hakmem_cgroup_level" in known,
          "%d metric names read from daemon/control.c, proto/ and tools/ctl_exporter.c" % len(known))
    check_yaml_parses()
    check_kubernetes()
    check_bites()
    check_consistency()
    check_prometheus(known)
    check_grafana(known)
    print("%d checks, %d failed" % (checks, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
