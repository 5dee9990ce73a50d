#!/usr/bin/env bash
# Compares tflite_abi.h with LiteRT's own headers: sizes and offsets of every structure field
# the delegate uses, compiled against both (needs a LiteRT source checkout, any git ref).
#   export/tflite/check_layout.sh /path/to/LiteRT [git-ref]
# With a bare mirror or checkout, the headers are read at the given ref (default HEAD).
set -euo pipefail
src="${1:?usage: check_layout.sh LITERT_SOURCE_DIR [git-ref]}"
ref="${2:-HEAD}"
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for f in tflite/core/c/common.h tflite/core/c/c_api_types.h tflite/converter/core/c/tflite_types.h; do
  mkdir -p "$tmp/$(dirname "$f")"
  git -C "$src" show "$ref:$f" > "$tmp/$f" 2>/dev/null || cp "$src/$f" "$tmp/$f"
done
CXX="${CXX:-g++}"
"$CXX" -std=c++17 -I"$tmp" -DPKKD_LAYOUT_HEADER='"tflite/core/c/common.h"' \
  "$here/check_layout.cc" -o "$tmp/real"
"$CXX" -std=c++17 -DPKKD_LAYOUT_HEADER="\"$here/tflite_abi.h\"" "$here/check_layout.cc" -o "$tmp/ours"
"$tmp/real" > "$tmp/real.txt"
"$tmp/ours" > "$tmp/ours.txt"
if diff "$tmp/real.txt" "$tmp/ours.txt"; then
  echo "tflite_abi.h matches LiteRT $ref ($(head -1 "$tmp/real.txt"))"
else
  echo "MISMATCH between tflite_abi.h (>) and LiteRT $ref (<)" >&2
  exit 1
fi
