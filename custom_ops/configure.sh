#!/usr/bin/env bash
# Writes .bazelrc at the repository root for the Bazel build of the adder-op library, in the
# style of tensorflow/custom-op's configure.sh. Usage:
#     custom_ops/configure.sh [PYTHON]      # default: .venv/bin/python, else python3
# The Python must have the TensorFlow the library is for: @local_config_tf
# (custom_ops/bazel/tf_configure.bzl) asks it for tf.sysconfig.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${1:-}"
if [[ -z "$PYTHON" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
PYTHON="$(command -v "$PYTHON")"
TF_VERSION="$(TF_CPP_MIN_LOG_LEVEL=3 "$PYTHON" -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null)" || {
  echo "configure.sh: $PYTHON cannot import tensorflow" >&2; exit 1; }

{
  echo "# Written by custom_ops/configure.sh for TensorFlow $TF_VERSION ($PYTHON)."
  echo "build --repo_env=PYTHON_BIN_PATH=$PYTHON"
  echo "build -c opt"
  echo "build --cxxopt=-std=c++17"
  # Bazel 8 reads the WORKSPACE file only with --enable_workspace (a flag Bazel 6 lacks).
  if command -v bazel >/dev/null 2>&1; then
    version="$(bazel --version 2>/dev/null | awk '{print $2}')"
    major="${version%%.*}"; rest="${version#*.}"; minor="${rest%%.*}"
    if [[ "$major" =~ ^[0-9]+$ ]] && { (( major > 7 )) || { (( major == 7 )) && [[ "$minor" =~ ^[0-9]+$ ]] && (( minor >= 1 )); }; }; then
      echo "common --enable_workspace"
    fi
  fi
} > "$ROOT/.bazelrc"
echo "wrote $ROOT/.bazelrc for TensorFlow $TF_VERSION"
echo "next: bazel build //custom_ops/adder:adder_ops"
