#!/usr/bin/env python3
"""Lints and renders the pricing chart with real Helm (v4, the helm-python-sdk
package: Helm's Go SDK as a library), for tests/helm_chart.rs and by hand.

  python3 helm/tools/helm_chart.py lint   CHART [VALUES.yaml ...]
  python3 helm/tools/helm_chart.py render CHART [VALUES.yaml ...] [--set-json K=JSON ...]
  python3 helm/tools/helm_chart.py yaml   CHART [VALUES.yaml ...] [--set-json K=JSON ...]

`lint` prints one line per finding ("LEVEL<TAB>path<TAB>message") and exits 1
on an error. `render` prints every rendered object flattened, one leaf per
line: "Kind/name<TAB>path<TAB>JSON value" (path like
spec.template.spec.containers[0].name), so a test can assert on exact fields
without a YAML parser. `yaml` prints the manifests as `helm template` would.
Values files are merged in order, then --set-json expressions. Exit code 2:
helm-python-sdk is not installed (`pip install helm-python-sdk`); 3: the
chart failed to render (the message is on stderr).
"""

import json
import sys

try:
    import helm_python as helm
except ImportError:
    print("helm-python-sdk is not installed: pip install helm-python-sdk", file=sys.stderr)
    sys.exit(2)

SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def merge(base, extra):
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def values_from(args):
    values = {}
    i = 0
    while i < len(args):
        if args[i] == "--set-json":
            merge(values, helm.parse_set_json(args[i + 1]))
            i += 2
        else:
            with open(args[i], encoding="utf-8") as f:
                merge(values, helm.values_from_yaml(f.read()))
            i += 1
    return values


def flatten(prefix, node, out):
    if isinstance(node, dict):
        for key, value in node.items():
            flatten(f"{prefix}.{key}" if prefix else key, value, out)
        if not node:
            out.append((prefix, "{}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            flatten(f"{prefix}[{i}]", value, out)
        if not node:
            out.append((prefix, "[]"))
    else:
        out.append((prefix, json.dumps(node)))


def documents(manifests):
    for path in sorted(manifests):
        if path.endswith("NOTES.txt"):
            continue
        for doc in manifests[path].split("\n---"):
            body = "\n".join(l for l in doc.splitlines() if not l.startswith("# Source:"))
            obj = helm.values_from_yaml(body) if body.strip() else None
            if obj:
                yield path, doc, obj


def main(argv):
    if len(argv) < 2 or argv[0] not in ("lint", "render", "yaml"):
        print(__doc__, file=sys.stderr)
        return 64
    command, chart, rest = argv[0], argv[1], argv[2:]
    values = values_from(rest)
    if command == "lint":
        report = helm.lint(chart, values, strict=True)
        failed = bool(report.get("errors"))
        for message in report.get("messages") or []:
            level = SEVERITY.get(message.get("severity"), "UNKNOWN")
            failed |= level == "ERROR"
            print(f"{level}\t{message.get('path')}\t{message.get('error')}")
        for error in report.get("errors") or []:
            print(f"ERROR\t-\t{error}")
        return 1 if failed else 0
    try:
        manifests = helm.Chart.load(chart).render(values, name="pricing", namespace="pricing", is_install=True)
    except helm.HelmError as error:
        print(f"render failed: {error}", file=sys.stderr)
        return 3
    for path, doc, obj in documents(manifests):
        if command == "yaml":
            print(f"---\n# Source: {path}\n{doc.strip()}")
            continue
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        leaves = []
        flatten("", obj, leaves)
        for leaf, value in leaves:
            print(f"{name}\t{leaf}\t{value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
