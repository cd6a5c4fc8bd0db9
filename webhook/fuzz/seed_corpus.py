#!/usr/bin/env python3
"""Writes a fuzz target's seed corpus from the webhook's testdata, as JSON request bodies.

usage: seed_corpus.py <target> <testdata dir> <corpus dir>

handle_inject_body: every testdata/inject case (bare Pods wrapped in a CREATE AdmissionReview,
harness-only TestCase documents dropped). handle_validate_body: every testdata/validation
object wrapped in a CREATE AdmissionReview. validate_value: the validation objects themselves.
"""
import json
import pathlib
import sys

import yaml


def review(obj, group, version, kind):
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "seed",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
            "namespace": "demo",
            "operation": "CREATE",
            "userInfo": {"username": "seed"},
            "object": obj,
        },
    }


def main():
    target, testdata, out = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    bodies = []
    if target == "handle_inject_body":
        for path in sorted((testdata / "inject").glob("*.yaml")):
            if path.name.endswith(".golden.yaml"):
                continue
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc or doc.get("kind") == "TestCase":
                    continue
                if doc.get("kind") == "Pod":
                    doc = review(doc, "", "v1", "Pod")
                bodies.append((path.stem, doc))
    else:
        for path in sorted((testdata / "validation").rglob("*.yaml")):
            for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
                if not isinstance(doc, dict):
                    continue
                name = f"{path.parent.name}-{path.stem}-{i}"
                if target == "validate_value":
                    bodies.append((name, doc))
                else:
                    group, _, version = str(doc.get("apiVersion", "")).rpartition("/")
                    bodies.append((name, review(doc, group, version, str(doc.get("kind", "")))))
    for name, body in bodies:
        (out / f"{name}.json").write_text(json.dumps(body, separators=(",", ":")))
    print(f"seeded {len(bodies)} inputs into {out}")


if __name__ == "__main__":
    main()
