"""The adder compute core on aarch64 (NEON, under qemu) and on this machine, without TensorFlow.

custom_ops/adder/cc/tests/adder_core_test.cc compares AdderForward and AdderBackpropInput of the
version the dispatch picks with a naive float64 reference and with the portable scalar version
over ~170 geometries (strides 1-3, dilation 1-2, SAME / VALID, non-square and oversized
kernels, odd sizes, channel counts on and off the vector width, batch 1-3, threaded splits).
It is built
- with Debian's aarch64 cross compiler (-O2 -static, so qemu needs no sysroot) into
  build/aarch64/ and run under qemu-aarch64: the NEON path, then KERAS_PKKD_ISA=scalar;
- natively into build/core_test_native/ with the per-file ISA flags of custom_ops/build.py, and
  run once per x86 path (avx512, avx2, scalar), like tests/test_isa_paths.py does for the op.
export/tflite/adder_int8_test.cc does the same for the int8 kernel (NEON under qemu; scalar,
AVX2 and AVX-512 natively), against its own naive reference of the int8 scheme.
The aarch64 tests skip only when the cross compiler or qemu is missing (.ci/run installs them:
apt-get install g++-aarch64-linux-gnu qemu-user). Objects are rebuilt only when a source, a
kernel header or the command changed.
"""

import concurrent.futures
import glob
import importlib.util
import os
import platform
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNELS = os.path.join(ROOT, "custom_ops", "adder", "cc", "kernels")
TFLITE = os.path.join(ROOT, "export", "tflite")
INT8 = [os.path.join(TFLITE, "adder_int8.cc"), os.path.join(TFLITE, "adder_int8_test.cc")]
TEST_SRC = os.path.join(ROOT, "custom_ops", "adder", "cc", "tests", "adder_core_test.cc")
IS_X86 = platform.machine().lower() in ("x86_64", "amd64")
CORE = ["adder_core.cc", "adder_core_scalar.cc"]
COMMON = ["-std=c++17", "-O2", "-DNDEBUG", "-Wall", "-Wno-sign-compare"]
CROSS_CXX = "aarch64-linux-gnu-g++"
INSTALL_HINT = ("apt-get install -y --no-install-recommends g++-aarch64-linux-gnu qemu-user "
                "(.ci/run does this where apt-get is usable)")


def _isa_flags():
    """custom_ops/build.py's per-file flags (-mavx2 -mfma, -mavx512f ...), read from it."""
    spec = importlib.util.spec_from_file_location(
        "_pkkd_build", os.path.join(ROOT, "custom_ops", "build.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ISA_FLAGS


def _stale(obj, cmd, deps):
    try:
        with open(obj + ".cmd") as f:
            if f.read() != " ".join(cmd):
                return True
        t = os.path.getmtime(obj)
    except OSError:
        return True
    return any(os.path.getmtime(d) > t for d in deps)


def _compile(cmd, obj):
    # Written under a private name, then renamed: two test runs may share the build folder.
    tmp = f"{obj}.{os.getpid()}.tmp"
    proc = subprocess.run(cmd[:-1] + [tmp], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"compile failed: {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    os.replace(tmp, obj)
    with open(obj + ".cmd", "w") as f:
        f.write(" ".join(cmd))


def _build(cxx, out_dir, units, link_flags, name="adder_core_test"):
    """Compiles [(source, extra flags)] into out_dir (2 jobs) and links `name`."""
    os.makedirs(out_dir, exist_ok=True)
    deps = glob.glob(os.path.join(KERNELS, "*.h")) + glob.glob(os.path.join(TFLITE, "*.h"))
    objs, jobs = [], []
    for src, flags in units:
        obj = os.path.join(out_dir, os.path.basename(src) + ".o")
        cmd = [cxx] + COMMON + flags + ["-I", KERNELS, "-I", TFLITE, "-c", src, "-o", obj]
        objs.append(obj)
        if _stale(obj, cmd, [src] + deps):
            jobs.append((cmd, obj))
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for job in [pool.submit(_compile, cmd, obj) for cmd, obj in jobs]:
            job.result()
    exe = os.path.join(out_dir, name)
    tmp = f"{exe}.{os.getpid()}.tmp"
    proc = subprocess.run([cxx] + objs + link_flags + ["-o", tmp], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"link failed\n{proc.stdout}{proc.stderr}"
    os.replace(tmp, exe)
    return exe


def _run(cmd, isa_cap, expect):
    env = dict(os.environ)
    env.pop("KERAS_PKKD_ISA", None)
    if isa_cap is not None:
        env["KERAS_PKKD_ISA"] = isa_cap
    proc = subprocess.run(cmd + ["--expect-isa", expect], capture_output=True, text=True,
                          env=env, timeout=300)
    out = proc.stdout + proc.stderr
    print(out)  # the worst errors, shown with -s / -rP
    return proc.returncode, out


def _reported_isa(out):
    for line in out.splitlines():
        if line.startswith("isa "):
            return line.split()[1]
    return None


@pytest.fixture(scope="module")
def aarch64_test():
    cxx = shutil.which(CROSS_CXX)
    qemu = shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static")
    missing = [name for name, path in ((CROSS_CXX, cxx), ("qemu-aarch64", qemu)) if not path]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not found, so the NEON core cannot be built and "
                    f"run here; install with: {INSTALL_HINT}")
    units = [(os.path.join(KERNELS, f), []) for f in CORE + ["adder_core_neon.cc"]]
    out = os.path.join(ROOT, "build", "aarch64")
    exe = _build(cxx, out, units + [(TEST_SRC, [])], ["-static", "-pthread"])
    int8 = _build(cxx, out, units + [(src, []) for src in INT8], ["-static", "-pthread"],
                  name="adder_int8_test")
    return {"core": [qemu, exe], "int8": [qemu, int8]}


@pytest.fixture(scope="module")
def native_test():
    if shutil.which("g++") is None:
        pytest.skip("no C++ compiler (g++) on PATH")
    units = [(os.path.join(KERNELS, f), []) for f in CORE]
    if IS_X86:
        units += [(os.path.join(KERNELS, f), flags) for f, flags in _isa_flags().items()]
    out = os.path.join(ROOT, "build", "core_test_native")
    exe = _build("g++", out, units + [(TEST_SRC, [])], ["-pthread"])
    int8 = _build("g++", out, units + [(src, []) for src in INT8], ["-pthread"],
                  name="adder_int8_test")
    return {"core": [exe], "int8": [int8]}


@pytest.mark.parametrize("isa", ["neon", "scalar"])
def test_core_on_aarch64_under_qemu(aarch64_test, isa):
    rc, out = _run(aarch64_test["core"], "scalar" if isa == "scalar" else None, isa)
    assert _reported_isa(out) == isa, out[-3000:]
    assert rc == 0 and "PASSED" in out, out[-3000:]


@pytest.mark.parametrize("isa", ["avx512", "avx2", "scalar"])
def test_core_natively(native_test, isa):
    if isa != "scalar" and not IS_X86:
        pytest.skip(f"{isa} is an x86-64 path; this host is {platform.machine()}")
    # KERAS_PKKD_ISA can only cap the choice: "avx512" is no cap, so the CPU's best runs.
    rc, out = _run(native_test["core"], isa, isa)
    assert _reported_isa(out) is not None, out[-3000:]
    if _reported_isa(out) != isa:
        pytest.skip(f"this CPU has no {isa} path (the core runs on {_reported_isa(out)})")
    assert rc == 0 and "PASSED" in out, out[-3000:]


def _run_int8(cmd):
    env = dict(os.environ)
    env.pop("KERAS_PKKD_ISA", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    out = proc.stdout + proc.stderr
    print(out)
    return proc.returncode, out


def test_int8_kernel_on_aarch64_under_qemu(aarch64_test):
    """export/tflite/adder_int8_test.cc: NEON and scalar int8 kernels against its naive
    reference (random geometries, affines, activations, threaded splits), bit for bit."""
    rc, out = _run_int8(aarch64_test["int8"])
    assert _reported_isa(out) == "neon", out[-3000:]
    assert "versions: scalar neon" in out, out[-3000:]
    assert rc == 0 and "PASSED" in out, out[-3000:]


def test_int8_kernel_natively(native_test):
    """The same test on this machine: every int8 version the CPU runs (x86: scalar, AVX2,
    AVX-512 when present), each against the reference."""
    rc, out = _run_int8(native_test["int8"])
    assert rc == 0 and "PASSED" in out, out[-3000:]
    if IS_X86:
        assert "avx2" in out.split("versions:")[1].splitlines()[0], out[-3000:]
