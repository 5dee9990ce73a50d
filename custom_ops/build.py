"""Builds keras_pkkd/ops/_adder_ops.so with g++ (and nvcc when usable); no Bazel needed.

    python custom_ops/build.py            # incremental build
    python custom_ops/build.py --clean    # rebuild everything
    KERAS_PKKD_CUDA=0 python custom_ops/build.py   # never try nvcc

Compile and link flags come from tf.sysconfig, so the library matches the installed
TensorFlow; the version is recorded in keras_pkkd/ops/_adder_ops.json and checked at load time.
The x86-64 build holds an AVX2 and an AVX-512 version of the kernels, picked at run time
(no -march=native): it runs on any x86-64 CPU with AVX2, and falls back to portable code on
others.
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
    "adder_core_avx512.cc": ["-mavx512f", "-mavx2", "-mfma"],
}


def log(msg):
    print(f"[build] {msg}", flush=True)


def tf_flags():
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
    return [os.path.join(KERNELS, f) for f in files] + [os.path.join(OPS, "adder_conv2d_ops.cc")]


def cuda_usable(compile_flags):
    """(nvcc path or None, reason)."""
    if os.environ.get("KERAS_PKKD_CUDA", "1") == "0":
        return None, "KERAS_PKKD_CUDA=0"
    nvcc = shutil.which("nvcc") or (
        "/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)
    if nvcc is None:
        return None, "nvcc not found"
    return nvcc, "nvcc found"


def compile_gpu(nvcc, compile_flags, obj):
    src = os.path.join(KERNELS, "adder_conv2d_op_gpu.cu.cc")
    if not stale(obj, [src] + headers()):
        return
    cmd = [nvcc, "-c", "-o", obj, src, "-x", "cu", "-O3", "-std=c++17",
           "-DGOOGLE_CUDA=1", "-DNDEBUG", "--expt-relaxed-constexpr", "-Xcompiler", "-fPIC",
           "-I", KERNELS] + [f for f in compile_flags if f != "--std=c++17"]
    run(cmd)


def build(clean=False, jobs=2):
    version, compile_flags, link_flags = tf_flags()
    if clean and os.path.isdir(BUILD_DIR):
        shutil.rmtree(BUILD_DIR)
    os.makedirs(BUILD_DIR, exist_ok=True)
    cxx = os.environ.get("CXX", "g++")
    base = [cxx, "-c", "-O3", "-fPIC", "-DNDEBUG", "-Wall", "-Wno-sign-compare",
            "-I", KERNELS] + compile_flags

    nvcc, cuda_reason = cuda_usable(compile_flags)
    gpu_obj = os.path.join(BUILD_DIR, "adder_conv2d_op_gpu.cu.o")
    use_cuda = False
    if nvcc is not None:
        log(f"compiling the CUDA kernels with {nvcc}")
        try:
            compile_gpu(nvcc, compile_flags, gpu_obj)
            use_cuda = True
            cuda_reason = f"built with {nvcc}"
        except RuntimeError as e:
            cuda_reason = ("nvcc could not compile the CUDA kernels against this TensorFlow's "
                           "headers; building the CPU kernels only")
            log(cuda_reason)
            log(str(e).splitlines()[-1] if str(e) else "")
    else:
        log(f"skipping the CUDA kernels: {cuda_reason}")

    jobs_list = []
    for src in cpu_sources():
        obj = os.path.join(BUILD_DIR, os.path.basename(src) + ".o")
        flags = ISA_FLAGS.get(os.path.basename(src), [])
        if use_cuda and src.endswith("adder_conv2d_op.cc"):
            flags = flags + ["-DGOOGLE_CUDA=1"]
        if stale(obj, [src] + headers()) or use_cuda != _was_cuda():
            jobs_list.append(base + flags + ["-o", obj, src])
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for src_cmd in jobs_list:
            log(f"compiling {os.path.basename(src_cmd[-1])}")
        list(pool.map(run, jobs_list))
    objs = [os.path.join(BUILD_DIR, os.path.basename(s) + ".o") for s in cpu_sources()]
    if use_cuda:
        objs.append(gpu_obj)
    tmp = LIBRARY + ".tmp"
    link = [cxx, "-shared", "-o", tmp] + objs + link_flags
    if use_cuda:
        link += ["-L/usr/local/cuda/lib64", "-lcudart"]
    run(link)
    os.replace(tmp, LIBRARY)
    meta = {
        "tf_version": version,
        "cuda": use_cuda,
        "cuda_note": cuda_reason,
        "machine": platform.machine(),
        "isa_paths": (["avx512", "avx2", "scalar"] if IS_X86 else ["scalar"]),
        "python": sys.version.split()[0],
    }
    with open(METADATA, "w") as f:
        json.dump(meta, f, indent=2)
    log(f"built {os.path.relpath(LIBRARY, ROOT)} for TensorFlow {version} "
        f"(CUDA: {'yes' if use_cuda else 'no'}) in {time.time() - t0:.0f}s")


def _was_cuda():
    try:
        with open(METADATA) as f:
            return bool(json.load(f).get("cuda"))
    except (OSError, ValueError):
        return False


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
