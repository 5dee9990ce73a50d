"""Builds the TFLite side's native library: the AdderConv2D delegate (no TensorFlow needed).

    python export/build.py                      # keras_pkkd/export/_adder_delegate.so (host)
    python export/build.py --asan --output=build/asan/_adder_delegate.so   # AddressSanitizer
    python export/build.py --cxx=aarch64-linux-gnu-g++ --output=build/aarch64/libpkkd_adder_delegate.so

The library holds the compute core of custom_ops/adder/cc/kernels (on x86-64: the AVX-512 and
AVX2 versions, picked at run time, and the portable one; on aarch64 the NEON version when the
core has one) and export/tflite/ (options reader, kernel, thread pool, delegate). It links
nothing of TensorFlow or LiteRT: it works with any runtime whose C structure layout matches
export/tflite/tflite_abi.h, which the delegate checks when it is applied.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
KERNELS = os.path.join(ROOT, "custom_ops", "adder", "cc", "kernels")
TFLITE = os.path.join(HERE, "tflite")
DEFAULT_OUTPUT = os.path.join(ROOT, "keras_pkkd", "export", "_adder_delegate.so")

X86_ISA_FLAGS = {
    "adder_core_avx2.cc": ["-mavx2", "-mfma"],
    "adder_core_avx512.cc": ["-mavx512f", "-mavx512dq", "-mavx2", "-mfma"],
}
DELEGATE_SOURCES = ["adder_options.cc", "adder_int8.cc", "adder_kernel.cc", "thread_pool.cc",
                    "adder_delegate.cc"]


def target_arch(cxx):
    out = subprocess.run([cxx, "-dumpmachine"], capture_output=True, text=True).stdout.strip()
    return "aarch64" if out.startswith("aarch64") else "x86_64" if out.startswith(("x86_64", "amd64")) else out


def core_sources(arch):
    files = ["adder_core.cc", "adder_core_scalar.cc"]
    if arch == "x86_64":
        files += ["adder_core_avx2.cc", "adder_core_avx512.cc"]
    if arch == "aarch64" and os.path.exists(os.path.join(KERNELS, "adder_core_neon.cc")):
        files.append("adder_core_neon.cc")
    return [os.path.join(KERNELS, f) for f in files]


def sources(arch):
    return core_sources(arch) + [os.path.join(TFLITE, f) for f in DELEGATE_SOURCES]


def build(output=DEFAULT_OUTPUT, cxx=None, asan=False, extra_flags=(), quiet=False):
    """Compiles and links the delegate library; returns its path."""
    cxx = cxx or os.environ.get("CXX") or "g++"
    arch = target_arch(cxx)
    objdir = os.path.join(ROOT, "build", "export", f"{arch}{'-asan' if asan else ''}")
    os.makedirs(objdir, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    common = ["-std=c++17", "-fPIC", "-fvisibility=hidden", "-I", KERNELS, "-I", TFLITE,
              *extra_flags]
    common += ["-O1", "-g", "-fsanitize=address", "-fno-omit-frame-pointer"] if asan else ["-O3"]
    objects = []
    for src in sources(arch):
        obj = os.path.join(objdir, os.path.basename(src) + ".o")
        flags = X86_ISA_FLAGS.get(os.path.basename(src), []) if arch == "x86_64" else []
        if os.path.dirname(src) == TFLITE:
            flags = flags + ["-Wall", "-Wextra", "-Werror"]
        deps = [src] + [os.path.join(d, h) for d in (KERNELS, TFLITE) for h in os.listdir(d)
                        if h.endswith(".h")] + [os.path.abspath(__file__)]
        if not os.path.exists(obj) or any(os.path.getmtime(d) > os.path.getmtime(obj)
                                           for d in deps):
            if not quiet:
                print(f"[export build] {os.path.relpath(src, ROOT)}", flush=True)
            subprocess.run([cxx, *common, *flags, "-c", src, "-o", obj], check=True)
        objects.append(obj)
    link = [cxx, "-shared", "-o", output, *objects, "-pthread"]
    link += ["-fsanitize=address"] if asan else ["-Wl,--no-undefined"]
    subprocess.run(link, check=True)
    if not quiet:
        print(f"[export build] {os.path.relpath(output, ROOT)} ({arch})", flush=True)
    return output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    parser.add_argument("--cxx", default=None, help="compiler (default $CXX or g++)")
    parser.add_argument("--asan", action="store_true", help="build with AddressSanitizer")
    args = parser.parse_args(argv)
    try:
        build(args.output, args.cxx, args.asan)
    except subprocess.CalledProcessError as e:
        print(f"[export build] failed: {' '.join(e.cmd)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
