"""The Android integration (export/android) and route (b)'s registration, as far as a desktop
can check them: export/android/check_host_build.sh, one stage per test.

No Android SDK / NDK, Gradle or Bazel is needed (none can be had here); what the stages do:
- tflite-headers: export/tflite compiled against LiteRT's REAL common.h (v1.4.0, v2.2.0, HEAD),
  tflite_abi.h's sizes / offsets / enum values equal to the real ones on x86-64, aarch64 and
  32-bit ARM, and Register_ADDER_CONV2D() run over a hand-made TfLiteContext;
- jni: the JNI glue has the names and signatures javac -h derives from AdderDelegate.java;
- java: AdderDelegate.java compiles against both shapes of org.tensorflow.lite.Delegate;
- cmake / jvm: adder/CMakeLists.txt builds libpkkd_adder.so here and a desktop JVM loads it
  through AdderDelegate;
- cmake-aarch64 / cmake-armv7: the same CMakeLists.txt cross-built for aarch64 (clang, NEON)
  and 32-bit ARM (armeabi-v7a's ISA), run under qemu-user.

A stage whose tools are missing (g++, cmake, a JDK, git and LiteRT's sources, cross compilers)
skips with the script's reason. The work folder (build/android_check) is kept, so a rerun only
rebuilds what changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import ROOT

SCRIPT = os.path.join(str(ROOT), "export", "android", "check_host_build.sh")


def _run_stage(stage, timeout=240):
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    proc = subprocess.run(["bash", SCRIPT, stage], capture_output=True, text=True,
                          timeout=timeout, cwd=str(ROOT))
    out = proc.stdout + proc.stderr
    print(out)
    if proc.returncode == 77:
        reasons = [line for line in out.splitlines() if line.startswith("SKIP ")]
        pytest.skip("; ".join(reasons) or f"{stage}: a tool is missing")
    assert proc.returncode == 0, f"check_host_build.sh {stage} failed:\n{out[-6000:]}"
    return out


def test_tflite_side_against_real_tflite_headers():
    out = _run_stage("tflite-headers")
    assert "sizes / offsets / values equal" in out
    assert "register_adder_test: 27 checks, 0 failed" in out


def test_jni_glue_matches_the_java_class():
    out = _run_stage("jni")
    assert "JNI functions match javac -h" in out


def test_java_class_compiles_against_both_delegate_interfaces():
    out = _run_stage("java")
    assert out.count("AdderDelegate.java compiles against") == 2


def test_cmake_builds_the_library_on_the_host():
    out = _run_stage("cmake")
    assert "exports exactly the 11 JNI / C entry points" in out


def test_desktop_jvm_loads_the_library_through_adder_delegate():
    out = _run_stage("jvm")
    assert "AdderDelegateHostTest: passed" in out


def test_cmake_cross_build_for_aarch64_with_clang():
    out = _run_stage("cmake-aarch64")
    assert "pkkd_adder: aarch64, core versions: neon" in out
    assert "aarch64 library loaded under" in out or "not run" in out


def test_cmake_cross_build_for_32bit_arm():
    out = _run_stage("cmake-armv7")
    assert "pkkd_adder: armv7-a, core versions: scalar" in out
    assert "arm library loaded under" in out or "not run" in out
