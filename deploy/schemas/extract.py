#!/usr/bin/env python3
"""extract.py: makes kubernetes.json, the JSON schemas of the Kubernetes
kinds deploy/ uses, from the npm packages kubernetes-models and
@kubernetes-models/apimachinery (which carry the Kubernetes OpenAPI
definitions as JSON Schema, one file per definition). Run it only to
change the kinds or the version (see README.md):

    npm pack kubernetes-models@3.1.0 @kubernetes-models/apimachinery@0.2.0
    for f in *.tgz; do mkdir "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done
    deploy/schemas/extract.py kubernetes-models-3.1.0/package \
        kubernetes-models-apimachinery-0.2.0/package > deploy/schemas/kubernetes.json

Output: {"source": ..., "kinds": {"apps/v1 DaemonSet": "io.k8s.api.apps.v1.DaemonSet", ...},
"definitions": {ID: schema}} with every "$ref": "ID#" rewritten to
"#/definitions/ID", only the definitions the kinds reach."""
import json
import os
import re
import sys

KINDS = {
    "v1 Namespace": "io.k8s.api.core.v1.Namespace",
    "v1 ServiceAccount": "io.k8s.api.core.v1.ServiceAccount",
    "v1 Pod": "io.k8s.api.core.v1.Pod",
    "apps/v1 DaemonSet": "io.k8s.api.apps.v1.DaemonSet",
}


def load(pkgs):
    """{definition id: schema} from every _schemas/*.mjs of the packages."""
    defs = {}
    for pkg in pkgs:
        d = os.path.join(pkg, "_schemas")
        for name in sorted(os.listdir(d)):
            if not name.endswith(".mjs"):
                continue
            text = open(os.path.join(d, name)).read()
            m = re.search(r'register\("([^"]+)", schema\)', text)
            s = re.search(r"const schema = (\{.*?\n\});\n", text, re.S)
            if m and s:
                defs[m.group(1)] = json.loads(s.group(1))
    return defs


def refs(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                out.add(v.rstrip("#"))
            else:
                refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)


def rewrite(node):
    if isinstance(node, dict):
        return {k: ("#/definitions/" + v.rstrip("#") if k == "$ref" else rewrite(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [rewrite(v) for v in node]
    return node


def main():
    pkgs = sys.argv[1:]
    defs = load(pkgs)
    need, todo = set(), list(KINDS.values())
    while todo:
        i = todo.pop()
        if i in need:
            continue
        if i not in defs:
            sys.exit("extract.py: no schema for %s" % i)
        need.add(i)
        r = set()
        refs(defs[i], r)
        todo += sorted(r)
    versions = []
    for pkg in pkgs:
        meta = json.load(open(os.path.join(pkg, "package.json")))
        versions.append("%s@%s (%s)" % (meta["name"], meta["version"], meta["license"]))
    json.dump({"source": "npm: " + ", ".join(versions), "kinds": KINDS,
               "definitions": {i: rewrite(defs[i]) for i in sorted(need)}},
              sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
