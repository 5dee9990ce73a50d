"""Builds keras_pkkd/ops/_adder_ops.so with g++ (and nvcc when usable); no Bazel needed.

    python custom_ops/build.py            # incremental build
    python custom_ops/build.py --clean    # rebuild everything
    KERAS_PKKD_CUDA=0 python custom_ops/build.py   # never try nvcc
    KERAS_PKKD_CUDA_ARCHS="80;90" python custom_ops/build.py   # GPU architectures (SASS)

Compile and link flags come from tf.sysconfig, so the library matches the installed
TensorFlow; the version is recorded in keras_pkkd/ops/_adder_ops.json and checked at load time.
The x86-64 build holds an AVX2 and an AVX-512 version of the kernels, picked at run time
(no -march=native): it runs on any x86-64 CPU with AVX2, and falls back to portable code on
others.

CUDA: when nvcc is found (PATH, $CUDA_HOME, /usr/local/cuda) and KERAS_PKKD_CUDA is not 0, the
GPU kernels (adder_conv2d_op_gpu.cu.cc) are compiled too and the CUDA runtime is linked
statically with its symbols hidden, so the library needs no libcudart at load time. The linked
library is then loaded in a fresh Python process and run once on the CPU (and compared on the GPU
when one is visible); if that fails, it is relinked CPU-only and the reason goes into the
"cuda_note" of keras_pkkd/ops/_adder_ops.json. A CUDA build needs, at run time, a driver that
supports the CUDA version of the nvcc that built it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KERNELS = os.path.join(HERE, "adder", "cc", "kernels")
OPS = os.path.join(HERE, "adder", "cc", "ops")
BUILD_DIR = os.path.join(ROOT, "build", "custom_ops")
OUT_DIR = os.path.join(ROOT, "keras_pkkd", "ops")
LIBRARY = os.path.join(OUT_DIR, "_adder_ops.so")
METADATA = os.path.join(OUT_DIR, "_adder_ops.json")

IS_X86 = platform.machine().lower() in ("x86_64", "amd64")
ISA_FLAGS = {
    "adder_core_avx2.cc": ["-mavx2", "-mfma"],
    "adder_core_avx512.cc": ["-mavx512f", "-mavx512dq", "-mavx2", "-mfma"],
}


def log(msg):
    print(f"[build] {msg}", flush=True)


def tf_flags():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's start-up chatter out
    import tensorflow as tf  # Imported here: `--help` should not need TensorFlow.

    return tf.__version__, tf.sysconfig.get_compile_flags(), tf.sysconfig.get_link_flags()


def headers():
    found = []
    for d in (KERNELS, OPS):
        found += [os.path.join(d, f) for f in os.listdir(d) if f.endswith(".h")]
    return found


def stale(obj, sources):
    if not os.path.exists(obj):
        return True
    t = os.path.getmtime(obj)
    return any(os.path.getmtime(s) > t for s in sources)


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
                           f"{proc.stdout}{proc.stderr}")
    return proc


def cpu_sources():
    files = ["adder_core.cc", "adder_core_scalar.cc", "adder_conv2d_op.cc"]
    if IS_X86:
        files += ["adder_core_avx2.cc", "adder_core_avx512.cc"]
    if platform.machine().lower() in ("aarch64", "arm64"):
        files += ["adder_core_neon.cc"]  # NEON is baseline there: no extra -m flags
    return [os.path.join(KERNELS, f) for f in files] + [os.path.join(OPS, "adder_conv2d_ops.cc")]


# GPU architectures compiled to SASS by default (those this nvcc knows: CUDA 13 dropped
# sm_50..sm_72), plus PTX of the newest one up to compute_90, which the driver JIT-compiles for
# the GPUs not listed (sm_120...). Each architecture adds ~10 s of nvcc time.
DEFAULT_CUDA_ARCHS = ["75", "80", "86", "89", "90", "100"]
CUDA_DIAG_SUPPRESS = "68,69,554,611,970,2810"  # noise from TF/absl/protobuf headers


def find_nvcc():
    for cand in (shutil.which("nvcc"),
                 *(os.path.join(os.environ[v], "bin", "nvcc")
                   for v in ("CUDA_HOME", "CUDA_PATH") if os.environ.get(v)),
                 "/usr/local/cuda/bin/nvcc"):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def cuda_usable(compile_flags):
    """(nvcc path or None, reason)."""
    if os.environ.get("KERAS_PKKD_CUDA", "1").strip().lower() in ("0", "no", "off", "false"):
        return None, "KERAS_PKKD_CUDA=0"
    if not IS_X86 or platform.system() != "Linux":
        return None, "CUDA build only set up for Linux x86-64"
    nvcc = find_nvcc()
    if nvcc is None:
        return None, "nvcc not found (PATH, $CUDA_HOME, /usr/local/cuda)"
    return nvcc, "nvcc found"


def nvcc_info(nvcc):
    """(release string like '13.0', the sm_XX codes it can target)."""
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
    release = ""
    for line in out.splitlines():
        if "release" in line:
            release = line.split("release", 1)[1].split(",")[0].strip()
    proc = subprocess.run([nvcc, "--list-gpu-code"], capture_output=True, text=True)
    codes = proc.stdout.split() if proc.returncode == 0 else []
    return release, codes


def cuda_arch_flags(nvcc):
    """-gencode flags and the list of SASS archs, from KERAS_PKKD_CUDA_ARCHS or the defaults."""
    release, codes = nvcc_info(nvcc)
    wanted = os.environ.get("KERAS_PKKD_CUDA_ARCHS", "")
    wanted = [a.strip().replace("sm_", "").replace(".", "") for a in
              wanted.replace(",", ";").split(";") if a.strip()] or DEFAULT_CUDA_ARCHS
    archs = [a for a in wanted if not codes or f"sm_{a}" in codes]
    if not archs:
        raise RuntimeError(f"none of the CUDA architectures {wanted} is supported by {nvcc} "
                           f"(it offers {' '.join(codes)})")
    flags = []
    for a in archs:
        flags += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
    ptx = max((a for a in archs if int(a) <= 90), key=int, default=archs[0])
    flags += ["-gencode", f"arch=compute_{ptx},code=compute_{ptx}"]
    return flags, archs, release


def cuda_home(nvcc):
    """The toolkit root: nvcc's own TOP (nvcc may be a wrapper script), else ../ of nvcc."""
    proc = subprocess.run([nvcc, "--dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull],
                          capture_output=True, text=True)
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.startswith("#$ TOP="):
            return os.path.realpath(line.split("=", 1)[1].strip())
    return os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))


def cuda_lib_dir(nvcc):
    home = cuda_home(nvcc)
    for d in ("lib64", "lib", os.path.join("targets", "x86_64-linux", "lib")):
        if os.path.exists(os.path.join(home, d, "libcudart_static.a")):
            return os.path.join(home, d)
    raise RuntimeError(f"libcudart_static.a not found under {home}")


def compile_gpu(nvcc, compile_flags, obj, arch_flags):
    """nvcc-compiles the CUDA kernels, their functors and the GPU kernel registrations.

    Everything GPU-side (including the float <-> half/bfloat16 staging) lives in that one nvcc
    translation unit, so the g++-compiled CPU objects are the same with and without CUDA.
    """
    src = os.path.join(KERNELS, "adder_conv2d_op_gpu.cu.cc")
    cmd = [nvcc, "-c", "-o", obj, src, "-x", "cu", "-O3", "-std=c++17",
           "-DGOOGLE_CUDA=1", "-DNDEBUG", "--expt-relaxed-constexpr",
           f"--diag-suppress={CUDA_DIAG_SUPPRESS}", "-Xcompiler", "-fPIC",
           "-I", KERNELS] + arch_flags + [f for f in compile_flags if f != "--std=c++17"]
    if os.environ.get("CXX"):
        cmd += ["-ccbin", os.environ["CXX"]]
    # Rebuild when the sources or the command (archs, TF flags) change.
    stamp = obj + ".cmd"
    try:
        with open(stamp) as f:
            same_cmd = f.read() == " ".join(cmd)
    except OSError:
        same_cmd = False
    if same_cmd and not stale(obj, [src] + headers()):
        return
    log(f"compiling {os.path.basename(src)} with {nvcc} "
        f"({' '.join(a for a in arch_flags if a.startswith('arch='))})")
    run(cmd)
    with open(stamp, "w") as f:
        f.write(" ".join(cmd))


def cuda_link_flags(nvcc):
    """Static CUDA runtime, its symbols kept inside the library.

    Hidden so that they neither clash with nor bind to the CUDA runtime entry points that
    libtensorflow_framework.so exports (TF's own lazily loaded CUDA 12 stub): the kernels in
    this library were compiled by this nvcc and must be registered with its runtime.
    """
    return [f"-L{cuda_lib_dir(nvcc)}", "-l:libcudart_static.a", "-ldl", "-lpthread", "-lrt",
            "-Wl,--exclude-libs,libcudart_static.a"]


LOAD_TEST = r"""
import sys
import numpy as np
import tensorflow as tf
mod = tf.load_op_library(sys.argv[1])
x = np.arange(2 * 5 * 6 * 3, dtype=np.float32).reshape(2, 5, 6, 3) / 50.0 - 1.0
w = np.linspace(-1.5, 1.5, 3 * 3 * 3 * 4, dtype=np.float32).reshape(3, 3, 3, 4)
dy = np.ones((2, 3, 3, 4), np.float32)
attrs = dict(strides=[2, 2], padding="SAME", dilations=[1, 1])
with tf.device("/CPU:0"):
    y = mod.pkkd_adder_conv2d(x, w, **attrs).numpy()
    dx = mod.pkkd_adder_conv2d_backprop_input(x, w, dy, **attrs).numpy()
assert y.shape == (2, 3, 3, 4) and np.isfinite(y).all() and (y <= 0).all(), y
# Pixel (0, 0) of image 0: SAME with stride 2 and k=3 on 5x6 pads 1 row on top and 0 columns
# on the left (TF puts the odd one after).
ref = -np.abs(np.pad(x, [(0, 0), (1, 1), (0, 1), (0, 0)])[0, 0:3, 0:3, :, None] - w).sum((0, 1, 2))
assert np.allclose(y[0, 0, 0], ref, rtol=1e-5, atol=1e-4), (y[0, 0, 0], ref)
gpus = tf.config.list_physical_devices("GPU")
if gpus:
    for dtype, tol in ((tf.float32, 1e-4), (tf.float16, 3e-2)):
        with tf.device("/GPU:0"):
            yg = mod.pkkd_adder_conv2d(tf.cast(x, dtype), tf.cast(w, dtype), **attrs)
            dxg = mod.pkkd_adder_conv2d_backprop_input(
                tf.cast(x, dtype), tf.cast(w, dtype), tf.cast(dy, dtype), **attrs)
        yg = tf.cast(yg, tf.float32).numpy()
        dxg = tf.cast(dxg, tf.float32).numpy()
        assert np.allclose(yg, y, rtol=tol, atol=tol * np.abs(y).max()), ("GPU forward", dtype)
        assert np.allclose(dxg, dx, rtol=tol, atol=tol * max(1.0, np.abs(dx).max())), (
            "GPU input gradient", dtype)
print("ok", len(gpus))
"""


def load_test(library):
    """Loads `library` in a fresh Python and runs it; returns None or why it failed."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    try:
        proc = subprocess.run([sys.executable, "-c", LOAD_TEST, library], capture_output=True,
                              text=True, env=env, timeout=600)
    except subprocess.TimeoutExpired:
        return "the load test timed out"
    if proc.returncode == 0 and proc.stdout.strip().startswith("ok"):
        return None
    lines = [l for l in (proc.stdout + proc.stderr).splitlines() if l.strip()]
    return " | ".join(lines[-3:]) or f"exit status {proc.returncode}"


def build(clean=False, jobs=2):
    version, compile_flags, link_flags = tf_flags()
    if clean and os.path.isdir(BUILD_DIR):
        shutil.rmtree(BUILD_DIR)
    os.makedirs(BUILD_DIR, exist_ok=True)
    cxx = os.environ.get("CXX", "g++")
    base = [cxx, "-c", "-O3", "-fPIC", "-DNDEBUG", "-Wall", "-Wno-sign-compare",
            "-I", KERNELS] + compile_flags

    t0 = time.time()
    nvcc, cuda_reason = cuda_usable(compile_flags)
    gpu_obj = os.path.join(BUILD_DIR, "adder_conv2d_op_gpu.cu.o")
    use_cuda = False
    cuda_meta = {}

    def cuda_failed(e):
        detail = [l for l in str(e).splitlines() if "error" in l.lower()] or \
            str(e).splitlines()[-1:]
        log("the CUDA kernels were not built; CPU kernels only")
        return "the CUDA kernels were not built: " + " | ".join(detail[:3])

    jobs_list = []
    for src in cpu_sources():
        obj = os.path.join(BUILD_DIR, os.path.basename(src) + ".o")
        flags = ISA_FLAGS.get(os.path.basename(src), [])
        if stale(obj, [src] + headers()):
            jobs_list.append(base + flags + ["-o", obj, src])
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        # nvcc (the longest job by far) runs beside the g++ jobs.
        gpu_job = None
        if nvcc is not None:
            try:
                arch_flags, archs, release = cuda_arch_flags(nvcc)
                cuda_link = cuda_link_flags(nvcc)
                gpu_job = pool.submit(compile_gpu, nvcc, compile_flags, gpu_obj, arch_flags)
            except (RuntimeError, OSError) as e:
                cuda_reason = cuda_failed(e)
        else:
            log(f"skipping the CUDA kernels: {cuda_reason}")
        for src_cmd in jobs_list:
            log(f"compiling {os.path.basename(src_cmd[-1])}")
        for job in [pool.submit(run, cmd) for cmd in jobs_list]:
            job.result()
        if gpu_job is not None:
            try:
                gpu_job.result()
                use_cuda = True
                cuda_meta = {"cuda_version": release, "cuda_archs": archs,
                             "cuda_runtime": "static (libcudart_static.a, symbols hidden)"}
                cuda_reason = f"built with {nvcc} (CUDA {release})"
            except (RuntimeError, OSError) as e:
                cuda_reason = cuda_failed(e)
    objs = [os.path.join(BUILD_DIR, os.path.basename(s) + ".o") for s in cpu_sources()]
    tmp = LIBRARY + ".tmp"
    if use_cuda:
        failure = None
        try:
            # The static runtime goes before TF's link flags: libtensorflow_framework.so exports
            # CUDA runtime symbols too, and must not be the one that satisfies these.
            run([cxx, "-shared", "-o", tmp] + objs + [gpu_obj] + cuda_link + link_flags)
            log("load-testing the CUDA-enabled library in a fresh Python")
            failure = load_test(tmp)
        except RuntimeError as e:
            failure = "linking failed: " + (str(e).splitlines() or [""])[-1]
        if failure is not None:
            cuda_reason = f"the CUDA-enabled library did not work ({failure}); CPU kernels only"
            log(cuda_reason)
            use_cuda = False
            cuda_meta = {}
    if not use_cuda:
        run([cxx, "-shared", "-o", tmp] + objs + link_flags)
    os.replace(tmp, LIBRARY)
    meta = {
        "tf_version": version,
        "cuda": use_cuda,
        "cuda_note": cuda_reason,
        **cuda_meta,
        "machine": platform.machine(),
        "isa_paths": (["avx512", "avx2", "scalar"] if IS_X86 else ["scalar"]),
        "python": sys.version.split()[0],
    }
    with open(METADATA, "w") as f:
        json.dump(meta, f, indent=2)
    log(f"built {os.path.relpath(LIBRARY, ROOT)} for TensorFlow {version} "
        f"(CUDA: {'yes' if use_cuda else 'no'}) in {time.time() - t0:.0f}s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="rebuild every object")
    parser.add_argument("--jobs", type=int, default=2, help="parallel compile jobs")
    args = parser.parse_args()
    try:
        build(clean=args.clean, jobs=args.jobs)
    except RuntimeError as e:
        print(f"[build] FAILED: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
