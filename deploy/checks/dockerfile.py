#!/usr/bin/env python3
"""Check the Dockerfile without a Docker daemon (none in CI): it must parse (dockerfile-parse, the parser
behind OpenShift's and Fedora's image build tooling), use only known instructions with JSON exec forms that
are valid JSON, and keep the portal's rules: a multi-stage build whose builder compiles the wheels (psycopg2
against libpq-dev) and whose final stage has no compiler, runs as a non-root user, has a HEALTHCHECK, and
copies from the builder. Building the image itself is not possible here.

    python3 deploy/checks/dockerfile.py [Dockerfile]
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parent.parent.parent
INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER", "WORKDIR",
    "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "COMMENT",
}  # fmt: skip
EXEC_FORM = {"CMD", "ENTRYPOINT", "SHELL"}


def problems(path: Path) -> list[str]:
    # A file object, so that any file name works (given a path, the parser expects a "Dockerfile").
    parser = DockerfileParser(fileobj=io.BytesIO(path.read_bytes()))
    structure: list[dict[str, Any]] = parser.structure
    errors: list[str] = []
    if not structure:
        return ["empty Dockerfile"]
    if structure[0]["instruction"] not in ("FROM", "ARG", "COMMENT"):
        errors.append("must begin with FROM (or ARG before FROM)")
    stages: list[tuple[str, list[dict[str, Any]]]] = []
    for item in structure:
        instruction, value = item["instruction"], item["value"]
        line = item["startline"] + 1
        if instruction not in INSTRUCTIONS:
            errors.append(f"line {line}: unknown instruction {instruction}")
        if instruction == "FROM":
            words = value.split()
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append((alias, []))
        elif stages:
            stages[-1][1].append(item)
        if instruction in EXEC_FORM or (instruction == "HEALTHCHECK" and "CMD [" in value):
            body = value[value.index("[") :] if "[" in value else ""
            if body:
                try:
                    json.loads(body)
                except ValueError:
                    errors.append(f"line {line}: {instruction} exec form is not valid JSON")
        if instruction == "ADD" and "://" in value:
            errors.append(f"line {line}: ADD from a URL (unpinned download)")
    if len(stages) < 2:
        return [*errors, "not a multi-stage build"]
    names = [alias for alias, _ in stages]
    if "builder" not in names:
        errors.append("no stage named builder")
    builder = dict(stages).get("builder", [])
    final_alias, final = stages[-1]
    builder_runs = " ".join(i["value"] for i in builder if i["instruction"] == "RUN")
    if "libpq-dev" not in builder_runs or "pip wheel" not in builder_runs:
        errors.append("the builder must install libpq-dev and build wheels (pip wheel)")
    final_runs = " ".join(i["value"] for i in final if i["instruction"] == "RUN")
    for tool in ("build-essential", "libpq-dev", "gcc"):
        if tool in final_runs:
            errors.append(f"final stage {final_alias or '(unnamed)'} installs {tool}")
    if not any(i["instruction"] == "COPY" and "--from=builder" in i["value"] for i in final):
        errors.append("final stage does not copy the wheels from the builder")
    users = [i["value"].split(":")[0] for i in final if i["instruction"] == "USER"]
    if not users or users[-1] in ("root", "0"):
        errors.append("final stage must end as a non-root USER")
    if not any(i["instruction"] == "HEALTHCHECK" for i in final):
        errors.append("final stage has no HEALTHCHECK")
    return errors


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else ROOT / "Dockerfile"
    found = problems(path)
    for problem in found:
        print(f"{path}: {problem}", file=sys.stderr)
    if not found:
        print(
            f"ok: {path} parses (dockerfile-parse) and follows the portal's rules; not built (no daemon here)"
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
