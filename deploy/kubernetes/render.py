#!/usr/bin/env python3
"""Renders the manifests in this directory: every ``${NAME}`` is replaced by the value given as
``NAME=value`` on the command line or, failing that, by the environment variable ``NAME``.
Kubernetes' own ``$(NAME)`` references, the gateway config's ``$NAME`` and KServe's
``{{.Name}}`` are left for Kubernetes, the gateway and KServe to fill in.

    deploy/kubernetes/render.py IMAGE=registry.example/mlox:0.1.0 NAMESPACE=ml ... | kubectl apply -f -

A name with no value stops the rendering with the list of what is missing, so a manifest
is never applied half-filled."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFESTS = ("tracking.yaml", "gateway.yaml", "serving-runtime.yaml")
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


def placeholders() -> set[str]:
    return {name for m in MANIFESTS for name in PLACEHOLDER.findall((HERE / m).read_text())}


def render(values: dict[str, str]) -> str:
    missing = sorted(name for name in placeholders() if name not in values)
    if missing:
        raise SystemExit(f"no value for: {', '.join(missing)} (give NAME=value or set the variable)")
    docs = [PLACEHOLDER.sub(lambda m: values[m.group(1)], (HERE / m).read_text()).strip() for m in MANIFESTS]
    return "\n---\n".join(docs) + "\n"


def main(argv: list[str]) -> None:
    given = dict(arg.split("=", 1) for arg in argv if "=" in arg)
    values = {name: given.get(name, os.environ.get(name)) for name in placeholders()}
    sys.stdout.write(render({k: v for k, v in values.items() if v is not None}))


if __name__ == "__main__":
    main(sys.argv[1:])
