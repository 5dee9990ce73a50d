#!/usr/bin/env bash
# What can be checked of export/android (route (a)) and export/tflite's plain registration
# (route (b)) on a desktop, without an Android SDK / NDK, Gradle or Bazel.
#
#   export/android/check_host_build.sh [STAGE...]      (default: every stage)
#
# Stages:
#   tflite-headers  the TFLite side against the REAL TFLite C headers of LiteRT releases
#                   (PKKD_LITERT_REFS, default "v1.4.0 v2.2.0 HEAD"): every export/tflite
#                   source compiles with -DPKKD_USE_TFLITE_HEADERS -Wall -Wextra -Werror; the
#                   sizes / offsets / enum values of tflite_abi.h's own declarations equal the
#                   real ones (host_check/layout_probe.cc), on x86-64 and, with cross compilers,
#                   aarch64 and 32-bit ARM; host_check/register_adder_test.cc runs
#                   Register_ADDER_CONV2D() over a hand-made TfLiteContext (real and own
#                   structs) against a float64 reference.
#   jni             adder_delegate_jni.cc matches the JNI header javac -h generates from
#                   AdderDelegate.java (same names, same signatures), -Wall -Wextra -Werror.
#   java            AdderDelegate.java compiles (--release 8) against org.tensorflow.lite.Delegate
#                   as of TFLite 2.16 / LiteRT 1.4 (extends Closeable, default close()) and as
#                   of older TFLite (getNativeHandle() only); stubs written to the work folder.
#   cmake           adder/CMakeLists.txt configures and builds libpkkd_adder.so on this host
#                   (x86-64: AVX-512 + AVX2 + scalar) with -DPKKD_WERROR=ON; its exported
#                   symbols are the JNI and C entry points and nothing of C++.
#   jvm             host_check/AdderDelegateHostTest.java loads that library in a desktop JVM
#                   through AdderDelegate (System.loadLibrary, JNI binding, create / close).
#   cmake-aarch64   the same CMakeLists.txt cross-built for aarch64 with clang (the NDK's
#                   compiler; NEON version) and, with qemu-user, the library loaded and run.
#   cmake-armv7     the same for 32-bit ARM (armeabi-v7a's ISA; portable version), with g++.
#
# Environment: PKKD_CHECK_DIR (work folder, default build/android_check; kept between runs, so
# a rerun only rebuilds what changed), PKKD_LITERT_SRC (a clone or bare mirror of
# google-ai-edge/LiteRT; default: ../LiteRT beside the repository, then the read-only mirror some
# of the project's machines carry), JAVA_HOME, CXX (default g++).
#
# Exit status: 0 every stage run passed; 1 a check failed; 77 nothing failed but a stage was
# skipped for a missing tool (one line "SKIP <stage>: <reason>" each).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
KERNELS="$ROOT/custom_ops/adder/cc/kernels"
TFLITE="$ROOT/export/tflite"
CHECK="$HERE/host_check"
WORK="${PKKD_CHECK_DIR:-$ROOT/build/android_check}"
CXX="${CXX:-g++}"
REFS="${PKKD_LITERT_REFS:-v1.4.0 v2.2.0 HEAD}"
TFLITE_SOURCES=(register_adder.cc adder_int8.cc adder_kernel.cc adder_options.cc thread_pool.cc adder_delegate.cc)
mkdir -p "$WORK"

FAILED=0
SKIPPED=0
have() { command -v "$1" >/dev/null 2>&1; }
say() { printf '%s\n' "$*"; }
fail() { say "FAIL $STAGE: $*"; FAILED=1; }
skip() { say "SKIP $STAGE: $*"; SKIPPED=1; }
# Runs a command quietly; on failure prints it and its output.
run() {
  local out
  if ! out="$("$@" 2>&1)"; then
    say "  \$ $*"
    say "$out" | tail -n 40 | sed 's/^/    /'
    return 1
  fi
  [ -n "${VERBOSE:-}" ] && say "$out"
  return 0
}
# True when $1 is missing or older than any of the other files.
stale() {
  local target="$1" dep
  shift
  [ -e "$target" ] || return 0
  for dep in "$@"; do [ "$dep" -nt "$target" ] && return 0; done
  return 1
}
# Every header a compile of the kernel or the TFLite side may read.
HEADERS=("$KERNELS"/*.h "$TFLITE"/*.h)

# ----- JDK ---------------------------------------------------------------------------------
find_jdk() {
  local javac_path
  if [ -n "${JAVA_HOME:-}" ] && [ -f "$JAVA_HOME/include/jni.h" ]; then
    JDK="$JAVA_HOME"
  elif have javac; then
    javac_path="$(readlink -f "$(command -v javac)")"
    JDK="$(dirname "$(dirname "$javac_path")")"
  else
    JDK=""
  fi
  if [ -z "$JDK" ] || [ ! -f "$JDK/include/jni.h" ] || [ ! -x "$JDK/bin/javac" ]; then
    JDK=""
    return 1
  fi
  JNI_INCLUDES=("$JDK/include" "$JDK/include/linux")
  return 0
}

# org.tensorflow.lite.Delegate stubs: $WORK/stubs/{v216,old}/org/tensorflow/lite/Delegate.java
write_stubs() {
  mkdir -p "$WORK/stubs/v216/org/tensorflow/lite" "$WORK/stubs/old/org/tensorflow/lite"
  cat >"$WORK/stubs/v216/org/tensorflow/lite/Delegate.java" <<'EOF'
package org.tensorflow.lite;

/** Stub of the interface as of TensorFlow Lite 2.16 / LiteRT 1.4. */
public interface Delegate extends java.io.Closeable {
  long getNativeHandle();

  @Override
  default void close() {}
}
EOF
  cat >"$WORK/stubs/old/org/tensorflow/lite/Delegate.java" <<'EOF'
package org.tensorflow.lite;

/** Stub of the interface of older TensorFlow Lite releases. */
public interface Delegate {
  long getNativeHandle();
}
EOF
}

JAVA_SRC="$HERE/adder/src/main/java/io/github/keraspkkd/adder/AdderDelegate.java"
JNI_SRC="$HERE/adder/src/main/cpp/adder_delegate_jni.cc"

# ----- LiteRT headers ----------------------------------------------------------------------
find_litert() {
  local c
  for c in "${PKKD_LITERT_SRC:-}" "$ROOT/../LiteRT" "/work/.mirror/google-ai-edge+LiteRT/repo"; do
    [ -n "$c" ] || continue
    if git -C "$c" rev-parse --git-dir >/dev/null 2>&1 &&
        git -C "$c" cat-file -e HEAD:tflite/core/c/common.h 2>/dev/null; then
      LITERT="$c"
      return 0
    fi
  done
  LITERT=""
  return 1
}

# Extracts common.h, c_api_types.h and tflite_types.h of LiteRT ref $1 into $2, under the
# paths they include one another by and the one tflite_abi.h includes
# (tensorflow/lite/core/c/common.h).
extract_headers() {
  local ref="$1" inc="$2" types_ref="$1" r sha
  sha="$(git -C "$LITERT" rev-parse "$ref^{commit}" 2>/dev/null)" || return 1
  # Kept from an earlier run when the ref has not moved (its files' times then stay too).
  [ -f "$inc/.pkkd-ref" ] && [ "$(cat "$inc/.pkkd-ref")" = "$sha" ] && return 0
  rm -rf "$inc"
  mkdir -p "$inc/tflite/core/c" "$inc/tflite/converter/core/c" \
    "$inc/tensorflow/compiler/mlir/lite/core/c" "$inc/tensorflow"
  git -C "$LITERT" show "$ref:tflite/core/c/common.h" >"$inc/tflite/core/c/common.h" || return 1
  git -C "$LITERT" show "$ref:tflite/core/c/c_api_types.h" >"$inc/tflite/core/c/c_api_types.h" ||
    return 1
  # Older releases include TfLiteType's header from TensorFlow's tree (not in LiteRT's): the
  # enum is taken from the first ref that has it.
  if ! git -C "$LITERT" cat-file -e "$ref:tflite/converter/core/c/tflite_types.h" 2>/dev/null; then
    types_ref=""
    for r in $REFS HEAD; do
      if git -C "$LITERT" cat-file -e "$r:tflite/converter/core/c/tflite_types.h" 2>/dev/null; then
        types_ref="$r"
        break
      fi
    done
    [ -n "$types_ref" ] || return 1
    say "  ($ref has no tflite_types.h: TfLiteType from $types_ref)"
  fi
  git -C "$LITERT" show "$types_ref:tflite/converter/core/c/tflite_types.h" \
    >"$inc/tflite/converter/core/c/tflite_types.h" || return 1
  cp "$inc/tflite/converter/core/c/tflite_types.h" "$inc/tensorflow/compiler/mlir/lite/core/c/"
  ln -s ../tflite "$inc/tensorflow/lite"
  echo "$sha" >"$inc/.pkkd-ref"
}

# The layout table of layout_probe.cc from a compiler's assembly: the values between the markers.
probe_values() {
  awk '/^_?pkkd_layout:/ { on = 1; next }
       on && /\.(word|long|4byte)/ { v = $2; sub(/,$/, "", v); if (v == "2137746277") exit; print v }' "$1"
}

# Background jobs, two at a time (the checks are many small compiles): bg NAME CMD... runs CMD
# with its output in $WORK/logs/NAME.log; bg_wait waits for all and fails with the logs of
# those that failed.
JOBS=()
bg() {
  local name="$1"
  shift
  mkdir -p "$WORK/logs"
  rm -f "$WORK/logs/$name.failed"
  while [ "$(jobs -rp | wc -l)" -ge "${PKKD_CHECK_JOBS:-2}" ]; do wait -n 2>/dev/null || true; done
  ( "$@" >"$WORK/logs/$name.log" 2>&1 || { echo "\$ $*" >>"$WORK/logs/$name.log"; touch "$WORK/logs/$name.failed"; } ) &
  JOBS+=("$name")
}
bg_wait() {
  local name bad=0
  wait
  for name in "${JOBS[@]}"; do
    if [ -f "$WORK/logs/$name.failed" ]; then
      say "  job $name failed:"
      tail -n 30 "$WORK/logs/$name.log" | sed 's/^/    /'
      bad=1
    fi
  done
  JOBS=()
  return "$bad"
}
# bg, unless OUTPUT is newer than every DEP: bg_if_stale NAME OUTPUT "DEPS..." CMD...
bg_if_stale() {
  local name="$1" output="$2" deps="$3"
  shift 3
  # shellcheck disable=SC2086
  stale "$output" $deps || return 0
  bg "$name" "$@"
}

# Host objects of the compute core at -O0 (register_adder_test only needs them to be right).
queue_host_core() {
  local out="$WORK/core-host" f flags
  mkdir -p "$out"
  CORE_OBJECTS=()
  for f in adder_core adder_core_scalar adder_core_avx2 adder_core_avx512; do
    flags=""
    case "$f" in
      adder_core_avx2) flags="-mavx2 -mfma" ;;
      adder_core_avx512) flags="-mavx512f -mavx512dq -mavx2 -mfma" ;;
    esac
    # shellcheck disable=SC2086
    bg_if_stale "core-$f" "$out/$f.o" "$KERNELS/$f.cc ${HEADERS[*]}" \
      "$CXX" -std=c++17 -O0 -fPIC $flags -I"$KERNELS" -c "$KERNELS/$f.cc" -o "$out/$f.o"
    CORE_OBJECTS+=("$out/$f.o")
  done
}

stage_tflite_headers() {
  have "$CXX" || { skip "no C++ compiler ($CXX)"; return; }
  have git || { skip "no git"; return; }
  find_litert || {
    skip "no LiteRT sources (set PKKD_LITERT_SRC to a clone or bare mirror of google-ai-edge/LiteRT)"
    return
  }
  [ "$(uname -m)" = x86_64 ] || { skip "the host part expects an x86-64 host"; return; }
  say "LiteRT sources: $LITERT"
  local probe="$CHECK/layout_probe.cc" ref inc src first="" out c tag obj refs_ok=()
  local own_txt="$WORK/layout-own.txt" tfl_deps="${TFLITE_SOURCES[*]/#/$TFLITE/} ${HEADERS[*]}"
  # Cross compilers for the table of other ABIs (their assembly; nothing is run).
  local cross=()
  have aarch64-linux-gnu-g++ && cross+=("aarch64-linux-gnu-g++")
  have arm-linux-gnueabihf-g++ && cross+=("arm-linux-gnueabihf-g++")
  if have clang++; then
    have aarch64-linux-gnu-g++ && cross+=("clang++ --target=aarch64-linux-gnu")
    have arm-linux-gnueabihf-g++ && cross+=("clang++ --target=armv7a-linux-gnueabihf")
  fi
  [ ${#cross[@]} -gt 0 ] || say "  (no aarch64 / arm cross compiler: layouts checked on x86-64 only)"

  # 1. Compiles, in the background: the probe with the project's declarations (host, each
  # cross compiler); per ref every TFLite-side source and the probe against the real header.
  mkdir -p "$WORK/layout" "$WORK/tflite-objects"
  bg_if_stale probe-own "$WORK/layout/own" "$probe ${HEADERS[*]}" \
    "$CXX" -std=c++17 -I"$TFLITE" "$probe" -o "$WORK/layout/own"
  for c in "${cross[@]}"; do
    tag="$(echo "$c" | tr ' =' '__')"
    # shellcheck disable=SC2086
    bg_if_stale "probe-own-$tag" "$WORK/layout/own-$tag.s" "$probe ${HEADERS[*]}" \
      $c -std=c++17 -S -O1 -DPKKD_PROBE_TABLE_ONLY -I"$TFLITE" "$probe" -o "$WORK/layout/own-$tag.s"
  done
  for ref in $REFS; do
    inc="$WORK/litert-headers/$ref"
    if ! extract_headers "$ref" "$inc"; then
      fail "could not extract the headers of LiteRT $ref from $LITERT"
      continue
    fi
    [ -n "$first" ] || first="$ref"
    refs_ok+=("$ref")
    mkdir -p "$WORK/tflite-objects/$ref"
    for src in "${TFLITE_SOURCES[@]}"; do
      obj="$WORK/tflite-objects/$ref/${src%.cc}.o"
      bg_if_stale "$ref-$src" "$obj" "$TFLITE/$src ${HEADERS[*]} $inc/.pkkd-ref" \
        "$CXX" -std=c++17 -O0 -Wall -Wextra -Werror -DPKKD_USE_TFLITE_HEADERS -isystem "$inc" \
        -I"$KERNELS" -I"$TFLITE" -c "$TFLITE/$src" -o "$obj"
    done
    bg_if_stale "probe-$ref" "$WORK/layout/$ref" "$probe ${HEADERS[*]} $inc/.pkkd-ref" \
      "$CXX" -std=c++17 -DPKKD_USE_TFLITE_HEADERS -isystem "$inc" -I"$TFLITE" "$probe" \
      -o "$WORK/layout/$ref"
    for c in "${cross[@]}"; do
      tag="$(echo "$c" | tr ' =' '__')"
      # shellcheck disable=SC2086
      bg_if_stale "probe-$ref-$tag" "$WORK/layout/$ref-$tag.s" \
        "$probe ${HEADERS[*]} $inc/.pkkd-ref" \
        $c -std=c++17 -S -O1 -DPKKD_PROBE_TABLE_ONLY -DPKKD_USE_TFLITE_HEADERS -isystem "$inc" \
        -I"$TFLITE" "$probe" -o "$WORK/layout/$ref-$tag.s"
    done
  done
  queue_host_core
  bg_wait || { fail "compiles against the real headers (above)"; return; }

  # 2. Layouts: the project's declarations against the real ones.
  "$WORK/layout/own" >"$own_txt"
  for ref in "${refs_ok[@]}"; do
    local sha
    sha="$(git -C "$LITERT" rev-parse --short "$ref^{commit}" 2>/dev/null || echo "?")"
    say "  LiteRT $ref ($sha): ${TFLITE_SOURCES[*]} compile against its common.h (-Werror)"
    "$WORK/layout/$ref" >"$WORK/layout/$ref.txt"
    if cmp -s "$own_txt" "$WORK/layout/$ref.txt"; then
      say "  LiteRT $ref x86-64: all $(wc -l <"$own_txt") sizes / offsets / values equal"
    else
      fail "LiteRT $ref x86-64 layout differs from tflite_abi.h (own < > real):"
      diff "$own_txt" "$WORK/layout/$ref.txt" | sed 's/^/    /'
    fi
    for c in "${cross[@]}"; do
      tag="$(echo "$c" | tr ' =' '__')"
      probe_values "$WORK/layout/own-$tag.s" >"$WORK/layout/own-$tag.v"
      probe_values "$WORK/layout/$ref-$tag.s" >"$WORK/layout/$ref-$tag.v"
      if [ "$(wc -l <"$WORK/layout/own-$tag.v")" -ne "$(($(wc -l <"$own_txt") + 1))" ]; then
        fail "could not read the layout table from $c's assembly"
      elif cmp -s "$WORK/layout/own-$tag.v" "$WORK/layout/$ref-$tag.v"; then
        say "  LiteRT $ref $c: all sizes / offsets / values equal"
      else
        fail "LiteRT $ref layout for $c differs from tflite_abi.h (name own real):"
        paste -d' ' <(cut -d' ' -f1 "$own_txt") <(tail -n +2 "$WORK/layout/own-$tag.v") \
          <(tail -n +2 "$WORK/layout/$ref-$tag.v") | awk '$2 != $3' | sed 's/^/    /'
      fi
    done
  done
  [ -n "$first" ] || return

  # 3. Route (b)'s registration, run: real structs (first ref) and the project's own.
  local mode bin flags
  for mode in "$first" own; do
    bin="$WORK/register_adder_test-$mode"
    flags=""
    [ "$mode" = own ] || flags="-DPKKD_USE_TFLITE_HEADERS -isystem $WORK/litert-headers/$mode"
    # shellcheck disable=SC2086
    bg_if_stale "register-test-$mode" "$bin" \
      "$CHECK/register_adder_test.cc $tfl_deps ${CORE_OBJECTS[*]} $WORK/litert-headers/$first/.pkkd-ref" \
      "$CXX" -std=c++17 -O0 -g -Wall -Wextra -Werror $flags -I"$KERNELS" -I"$TFLITE" \
      "$CHECK/register_adder_test.cc" "$TFLITE/register_adder.cc" "$TFLITE/adder_kernel.cc" \
      "$TFLITE/adder_int8.cc" \
      "$TFLITE/adder_options.cc" "$TFLITE/thread_pool.cc" "${CORE_OBJECTS[@]}" -pthread -o "$bin"
  done
  bg_wait || { fail "register_adder_test does not build"; return; }
  for mode in "$first" own; do
    if out="$(timeout 120 "$WORK/register_adder_test-$mode" 2>&1)"; then
      say "$out" | sed 's/^/  /'
    else
      say "$out" | sed 's/^/  /'
      fail "register_adder_test ($mode) failed or timed out"
    fi
  done
}

stage_jni() {
  have "$CXX" || { skip "no C++ compiler ($CXX)"; return; }
  find_jdk || { skip "no JDK (javac and include/jni.h; set JAVA_HOME)"; return; }
  write_stubs
  local gen="$WORK/jni-header" header
  rm -rf "$gen" && mkdir -p "$gen/classes"
  run "$JDK/bin/javac" --release 8 -Xlint:-options -h "$gen" -d "$gen/classes" \
    -sourcepath "$WORK/stubs/v216" "$JAVA_SRC" || { fail "javac -h"; return; }
  header="$gen/io_github_keraspkkd_adder_AdderDelegate.h"
  [ -f "$header" ] || { fail "javac -h wrote no $header"; return; }
  # Same signatures: the generated declarations come first; a mismatch is a conflicting
  # declaration of an extern "C" function.
  run "$CXX" -std=c++17 -fsyntax-only -Wall -Wextra -Werror -I"${JNI_INCLUDES[0]}" \
    -I"${JNI_INCLUDES[1]}" -include "$header" "$JNI_SRC" ||
    { fail "adder_delegate_jni.cc does not match the generated JNI header"; return; }
  # Same set of functions.
  local declared defined
  declared="$(grep -o 'Java_[A-Za-z0-9_]*' "$header" | sort -u)"
  defined="$(grep -o 'Java_[A-Za-z0-9_]*' "$JNI_SRC" | sort -u)"
  if [ "$declared" != "$defined" ]; then
    fail "native methods and JNI functions differ:"
    diff <(echo "$declared") <(echo "$defined") | sed 's/^/    /'
    return
  fi
  say "  JNI functions match javac -h: $(echo "$declared" | tr '\n' ' ')"
}

stage_java() {
  find_jdk || { skip "no JDK (javac; set JAVA_HOME)"; return; }
  write_stubs
  local v out
  for v in v216 old; do
    out="$WORK/java-$v"
    rm -rf "$out" && mkdir -p "$out"
    if run "$JDK/bin/javac" --release 8 -Xlint:all -Xlint:-options -Werror -d "$out" \
        -sourcepath "$WORK/stubs/$v" "$JAVA_SRC"; then
      say "  AdderDelegate.java compiles against the $v Delegate interface (--release 8)"
    else
      fail "AdderDelegate.java against the $v Delegate interface"
    fi
  done
}

# CMake configure + build of adder/CMakeLists.txt into $WORK/cmake-$1; extra arguments follow.
cmake_build() {
  local name="$1" dir="$WORK/cmake-$1" log
  shift
  local gen=()
  have ninja && gen=(-G Ninja)
  # A folder configured by another generator or compiler is started over.
  if [ -f "$dir/CMakeCache.txt" ] && [ ! -f "$dir/.pkkd-args" ] ||
      { [ -f "$dir/.pkkd-args" ] && [ "$(cat "$dir/.pkkd-args")" != "${gen[*]} $*" ]; }; then
    rm -rf "$dir"
  fi
  mkdir -p "$dir"
  log="$dir/configure.log"
  if ! cmake -S "$HERE/adder" -B "$dir" "${gen[@]}" "$@" >"$log" 2>&1; then
    say "  cmake configure ($name) failed:"
    tail -n 30 "$log" | sed 's/^/    /'
    return 1
  fi
  echo "${gen[*]} $*" >"$dir/.pkkd-args"
  grep 'pkkd_adder:' "$log" | sed 's/^-- /  /'
  if ! cmake --build "$dir" -j 2 >"$dir/build.log" 2>&1; then
    say "  cmake build ($name) failed:"
    grep -E 'error|Error' "$dir/build.log" | head -n 30 | sed 's/^/    /'
    tail -n 10 "$dir/build.log" | sed 's/^/    /'
    return 1
  fi
  [ -f "$dir/libpkkd_adder.so" ] || { say "  no $dir/libpkkd_adder.so"; return 1; }
}

EXPECTED_SYMBOLS="Java_io_github_keraspkkd_adder_AdderDelegate_nativeCreate
Java_io_github_keraspkkd_adder_AdderDelegate_nativeDestroy
Java_io_github_keraspkkd_adder_AdderDelegate_nativeIsa
pkkd_adder_delegate_create
pkkd_adder_delegate_destroy
pkkd_adder_delegate_isa
pkkd_adder_parse_options
pkkd_adder_int8_forward
pkkd_adder_int8_isa
tflite_plugin_create_delegate
tflite_plugin_destroy_delegate"

# The library's exported functions ($2: an nm for its architecture) are the expected ones.
check_exports() {
  local lib="$1" nm="$2" exported missing extra
  exported="$($nm -D --defined-only "$lib" | awk '$2 == "T" { print $3 }' | sort -u)"
  missing="$(comm -23 <(echo "$EXPECTED_SYMBOLS" | sort) <(echo "$exported"))"
  extra="$(comm -13 <(echo "$EXPECTED_SYMBOLS" | sort) <(echo "$exported"))"
  [ -z "$missing" ] || { fail "$(basename "$lib") does not export: $missing"; return 1; }
  [ -z "$extra" ] || { fail "$(basename "$lib") also exports: $(echo "$extra" | head -n 5)"; return 1; }
  say "  exports exactly the $(echo "$EXPECTED_SYMBOLS" | wc -l) JNI / C entry points"
}

stage_cmake() {
  have cmake || { skip "no cmake"; return; }
  have "$CXX" || { skip "no C++ compiler ($CXX)"; return; }
  find_jdk || { skip "no JDK (include/jni.h; set JAVA_HOME)"; return; }
  local machine
  machine="$(uname -m)"
  cmake_build host -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER="$(command -v "$CXX")" \
    -DPKKD_WERROR=ON -DPKKD_OPT=-O0 \
    "-DJNI_INCLUDE_DIRS=${JNI_INCLUDES[0]};${JNI_INCLUDES[1]}" ||
    { fail "host CMake build"; return; }
  local log="$WORK/cmake-host/configure.log"
  case "$machine" in
    x86_64) grep -q 'core versions: avx512/avx2/scalar' "$log" ||
      fail "the x86-64 build does not carry the AVX-512 and AVX2 versions" ;;
    aarch64) grep -q 'core versions: neon' "$log" || fail "the aarch64 build has no NEON version" ;;
  esac
  check_exports "$WORK/cmake-host/libpkkd_adder.so" nm || return
  say "  built $WORK/cmake-host/libpkkd_adder.so ($machine)"
}

stage_jvm() {
  find_jdk || { skip "no JDK (javac, java; set JAVA_HOME)"; return; }
  [ -x "$JDK/bin/java" ] || { skip "no java launcher in $JDK"; return; }
  if [ ! -f "$WORK/cmake-host/libpkkd_adder.so" ] ||
      [ -n "$(find "$KERNELS" "$TFLITE" "$HERE/adder" -newer "$WORK/cmake-host/libpkkd_adder.so" \
               -type f | head -n 1)" ]; then
    stage_cmake
    [ -f "$WORK/cmake-host/libpkkd_adder.so" ] || { fail "no host library to load"; return; }
  fi
  write_stubs
  local out="$WORK/jvm"
  rm -rf "$out" && mkdir -p "$out"
  run "$JDK/bin/javac" --release 8 -Xlint:-options -d "$out" -sourcepath "$WORK/stubs/v216" \
    "$JAVA_SRC" "$CHECK/AdderDelegateHostTest.java" || { fail "javac of the host test"; return; }
  local result
  if result="$(timeout 60 "$JDK/bin/java" -Djava.library.path="$WORK/cmake-host" -cp "$out" \
      AdderDelegateHostTest 2>&1)"; then
    say "$result" | sed 's/^/  /'
  else
    say "$result" | sed 's/^/  /'
    fail "AdderDelegateHostTest"
  fi
}

# arm64-v8a's ISA: clang (the NDK's compiler) for aarch64, with the cross GCC's sysroot.
stage_cmake_aarch64() {
  have cmake || { skip "no cmake"; return; }
  find_jdk || { skip "no JDK (include/jni.h; set JAVA_HOME)"; return; }
  if ! have clang++ || ! have aarch64-linux-gnu-g++; then
    skip "needs clang++ and aarch64-linux-gnu-g++ (apt-get install clang g++-aarch64-linux-gnu)"
    return
  fi
  local dir="$WORK/cmake-aarch64-clang"
  cmake_build aarch64-clang -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
    -DCMAKE_CXX_COMPILER="$(command -v clang++)" -DCMAKE_CXX_COMPILER_TARGET=aarch64-linux-gnu \
    -DCMAKE_BUILD_TYPE=Debug -DPKKD_WERROR=ON -DPKKD_OPT=-O0 \
    "-DJNI_INCLUDE_DIRS=${JNI_INCLUDES[0]};${JNI_INCLUDES[1]}" ||
    { fail "aarch64 (clang) CMake build"; return; }
  grep -q 'core versions: neon' "$dir/configure.log" ||
    fail "the aarch64 build does not carry the NEON version"
  check_exports "$dir/libpkkd_adder.so" aarch64-linux-gnu-nm
  run_cross "$dir" aarch64 "clang --target=aarch64-linux-gnu" neon
}

# armeabi-v7a's ISA: 32-bit ARM, portable version only.
stage_cmake_armv7() {
  have cmake || { skip "no cmake"; return; }
  find_jdk || { skip "no JDK (include/jni.h; set JAVA_HOME)"; return; }
  have arm-linux-gnueabihf-g++ ||
    { skip "needs arm-linux-gnueabihf-g++ (apt-get install g++-arm-linux-gnueabihf)"; return; }
  local dir="$WORK/cmake-armv7-gcc"
  cmake_build armv7-gcc -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=armv7-a \
    -DCMAKE_CXX_COMPILER="$(command -v arm-linux-gnueabihf-g++)" -DCMAKE_BUILD_TYPE=Debug \
    -DPKKD_WERROR=ON -DPKKD_OPT=-O0 "-DJNI_INCLUDE_DIRS=${JNI_INCLUDES[0]};${JNI_INCLUDES[1]}" ||
    { fail "32-bit ARM CMake build"; return; }
  grep -q 'core versions: scalar' "$dir/configure.log" ||
    fail "the 32-bit ARM build should carry the portable version only"
  check_exports "$dir/libpkkd_adder.so" arm-linux-gnueabihf-nm
  run_cross "$dir" arm "arm-linux-gnueabihf-gcc" scalar
}

# Links host_check/isa_main.c against the cross-built library and runs it under qemu-user.
run_cross() {
  local dir="$1" arch="$2" cc="$3" want="$4" qemu sysroot got
  qemu="qemu-$arch"
  have "$qemu" || qemu="qemu-$arch-static"
  have "$qemu" || { say "  ($arch: no qemu-user, not run)"; return; }
  case "$arch" in
    aarch64) sysroot=/usr/aarch64-linux-gnu ;;
    arm) sysroot=/usr/arm-linux-gnueabihf ;;
  esac
  # shellcheck disable=SC2086
  run $cc -O1 "$CHECK/isa_main.c" -L"$dir" -lpkkd_adder -o "$dir/isa_main" ||
    { fail "$arch: linking isa_main"; return; }
  if got="$(LD_LIBRARY_PATH="$dir" timeout 120 "$qemu" -L "$sysroot" "$dir/isa_main" 2>&1)"; then
    if [ "$got" = "$want" ]; then
      say "  $arch library loaded under $qemu: delegate created / destroyed, core version $got"
    else
      fail "$arch: core version '$got', expected '$want'"
    fi
  else
    fail "$arch: isa_main under $qemu: $got"
  fi
}

ALL_STAGES="tflite-headers jni java cmake jvm cmake-aarch64 cmake-armv7"
STAGES="${*:-$ALL_STAGES}"
for STAGE in $STAGES; do
  say "== $STAGE"
  case "$STAGE" in
    tflite-headers) stage_tflite_headers ;;
    jni) stage_jni ;;
    java) stage_java ;;
    cmake) stage_cmake ;;
    jvm) stage_jvm ;;
    cmake-aarch64) stage_cmake_aarch64 ;;
    cmake-armv7) stage_cmake_armv7 ;;
    *) say "unknown stage '$STAGE' (stages: $ALL_STAGES)"; exit 2 ;;
  esac
done

if [ "$FAILED" != 0 ]; then
  say "check_host_build: FAILED"
  exit 1
fi
if [ "$SKIPPED" != 0 ]; then
  say "check_host_build: passed, some checks skipped"
  exit 77
fi
say "check_host_build: passed"
exit 0
