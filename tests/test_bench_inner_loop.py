"""benchmarks/bench_inner_loop.cc builds, runs and reports every loop (a smoke test: the
numbers themselves belong to `make bench-loop`, not to assertions)."""

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "benchmarks", "bench_inner_loop.cc")
LOOPS = ["conv", "fwd", "fwd-mem", "fwd-add", "dx", "dx-range"]


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    cxx = shutil.which(os.environ.get("CXX", "g++"))
    if cxx is None:
        pytest.skip("no C++ compiler (g++) on PATH")
    out = tmp_path_factory.mktemp("bench") / "bench_inner_loop"
    subprocess.run([cxx, "-O2", "-std=c++17", "-mavx512f", "-mavx512dq", "-mfma", "-o",
                    str(out), SOURCE], check=True, capture_output=True, text=True)
    return str(out)


def _has_avx512():
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return " avx512f" in flags and " avx512dq" in flags


def test_reports_every_loop_with_conv_as_the_unit(binary):
    run = subprocess.run([binary, "--iters=2000"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    if not _has_avx512():
        assert "no AVX-512" in run.stdout
        return
    rows = {line.split()[0]: line.split()[1:] for line in run.stdout.splitlines()[1:]
            if line and line.split()[0] in LOOPS}
    assert list(rows) == LOOPS, run.stdout
    assert float(rows["conv"][1]) == 1.0
    for name, (ns, ratio) in rows.items():
        assert float(ns) > 0 and float(ratio) > 0, (name, ns, ratio)


@pytest.mark.parametrize("arg", ["--iters=0", "--bogus"])
def test_bad_arguments_exit_2(binary, arg):
    run = subprocess.run([binary, arg], capture_output=True, text=True, timeout=60)
    if not _has_avx512():
        pytest.skip("the CPU check comes first on CPUs without AVX-512")
    assert run.returncode == 2
    assert "iters" in run.stderr or "unknown argument" in run.stderr
