# shellcheck shell=bash
# Shared by the action's scripts (sourced, not run).

# A CDPATH from the environment would send `cd reports/…` elsewhere and make it print.
unset CDPATH

# What each goldgate exit code means (README "Exit codes"); the wording of the action's annotation.
exit_meaning() {
  case "$1" in
    0) echo "every gate passed" ;;
    1) echo "a promotion gate failed" ;;
    2) echo "bad configuration or input: nothing was run" ;;
    3) echo "the run could not complete" ;;
    4) echo "inconclusive: more items or repeats needed" ;;
    127) echo "goldgate was not found on PATH" ;;
    130) echo "interrupted" ;;
    *) echo "unexpected exit code $1" ;;
  esac
}

# Append one `name=value` line to $GITHUB_OUTPUT (values here never hold a newline).
set_output() {
  printf '%s=%s\n' "$1" "$2" >>"${GITHUB_OUTPUT:-/dev/null}"
}
