"""Structural check of action.yml, the metadata actionlint does not lint by itself.

actionlint checks a composite action's step keys only when a workflow uses it (ci.yml's `uses: ./`),
and never looks at the expressions and scripts inside it. This adds what matters here: the shape of
the metadata, no `${{ }}` spliced into a `run:` (script injection), every `inputs.X` and
`steps.ID.outputs.Y` that is read is defined, and every script a step runs exists.
Usage: python3 .ci/check_action.py action.yml [other YAML files to parse, every document of each]
"""

import re
import sys
from pathlib import Path

import yaml

TOP = {"name", "author", "description", "inputs", "outputs", "runs", "branding"}
INPUT_KEYS = {"description", "required", "default", "deprecationMessage"}
OUTPUT_KEYS = {"description", "value"}
STEP_KEYS = {"id", "if", "name", "uses", "with", "run", "shell", "env", "working-directory", "continue-on-error"}
COLORS = {"white", "black", "yellow", "blue", "green", "orange", "red", "purple", "gray-dark"}
EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)


def check(path: Path) -> list[str]:
    errors = []
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict):
        return [f"{path}: not a mapping"]
    errors += [f"{path}: unknown top-level key {k!r}" for k in doc.keys() - TOP]
    errors += [f"{path}: missing {k!r}" for k in ("name", "description", "runs") if k not in doc]
    color = (doc.get("branding") or {}).get("color")
    if color is not None and color not in COLORS:
        errors.append(f"{path}: branding.color {color!r} is not one of {sorted(COLORS)}")

    inputs = doc.get("inputs") or {}
    for name, spec in inputs.items():
        if not isinstance(spec, dict) or "description" not in spec:
            errors.append(f"{path}: input {name!r} has no description")
            continue
        errors += [f"{path}: input {name!r}: unknown key {k!r}" for k in spec.keys() - INPUT_KEYS]
        if "default" in spec and not isinstance(spec["default"], str):
            errors.append(f"{path}: input {name!r}: quote the default (inputs are strings)")
    for name, spec in (doc.get("outputs") or {}).items():
        if not isinstance(spec, dict) or not {"description", "value"} <= spec.keys():
            errors.append(f"{path}: output {name!r} needs description and value")
        else:
            errors += [f"{path}: output {name!r}: unknown key {k!r}" for k in spec.keys() - OUTPUT_KEYS]

    runs = doc.get("runs") or {}
    if runs.get("using") != "composite":
        errors.append(f"{path}: runs.using is {runs.get('using')!r}, expected 'composite'")
    steps = runs.get("steps") or []
    if not steps:
        errors.append(f"{path}: runs.steps is empty")
    ids = []
    for i, step in enumerate(steps, 1):
        where = f"{path}: step {i} ({step.get('name') or step.get('id') or '?'})"
        errors += [f"{where}: unknown key {k!r}" for k in step.keys() - STEP_KEYS]
        if ("run" in step) == ("uses" in step):
            errors.append(f"{where}: needs exactly one of run and uses")
        if "run" in step:
            if "shell" not in step:
                errors.append(f"{where}: a run step needs shell")
            if "${{" in step["run"]:
                errors.append(f"{where}: `${{{{ }}}}` inside run: pass it through env: instead")
            for script in re.findall(r"\$GITHUB_ACTION_PATH/(\S+?\.sh)", step["run"]):
                if not (path.parent / script).is_file():
                    errors.append(f"{where}: runs {script}, which does not exist")
        # Every expression of this step may read only inputs that exist and steps that ran before it.
        for text in strings({k: v for k, v in step.items() if k != "run"}):
            for expr in EXPR.findall(text):
                errors += [
                    f"{where}: reads undefined input {n!r}"
                    for n in re.findall(r"\binputs\.([A-Za-z0-9_-]+)", expr)
                    if n not in inputs
                ]
                errors += [
                    f"{where}: reads step {s!r}, which has not run before it"
                    for s in re.findall(r"\bsteps\.([A-Za-z0-9_-]+)\.", expr)
                    if s not in ids
                ]
        if "id" in step:
            ids.append(step["id"])
    for name, spec in (doc.get("outputs") or {}).items():
        for s in re.findall(r"\bsteps\.([A-Za-z0-9_-]+)\.", str(spec.get("value", ""))):
            if s not in ids:
                errors.append(f"{path}: output {name!r} reads step {s!r}, which does not exist")
    return errors


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    errors = check(Path(sys.argv[1]))
    for other in sys.argv[2:]:
        try:
            # All of a file's documents (a Kubernetes manifest holds several).
            list(yaml.safe_load_all(Path(other).read_text()))
        except yaml.YAMLError as e:
            errors.append(f"{other}: {e}")
    for e in errors:
        print(e)
    if not errors:
        print(f"ok: {sys.argv[1]}" + (f" and {len(sys.argv) - 2} more YAML file(s) parse" if sys.argv[2:] else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
