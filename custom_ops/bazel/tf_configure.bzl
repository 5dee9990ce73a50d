"""@local_config_tf: the installed TensorFlow pip package as a Bazel repository.

Asks the Python in PYTHON_BIN_PATH (written into .bazelrc by custom_ops/configure.sh; default
python3) for tf.sysconfig, then exposes:
    :tf_defines               the -D flags TF's headers need (_GLIBCXX_USE_CXX11_ABI, ...)
    :tf_header_lib            TF's headers (the pip package's include/ directory)
    :libtensorflow_framework  the pip package's libtensorflow_framework.so.N
    :tf_version.txt           the TensorFlow version (for _adder_ops.json)
The library built against it only loads in that exact TensorFlow version.
"""

_QUERY = """
import tensorflow as tf
print("pkkd:version=" + tf.__version__)
print("pkkd:include=" + tf.sysconfig.get_include())
print("pkkd:libdir=" + tf.sysconfig.get_lib())
for f in tf.sysconfig.get_compile_flags():
    print("pkkd:cflag=" + f)
for f in tf.sysconfig.get_link_flags():
    print("pkkd:lflag=" + f)
"""

def _tf_configure_impl(rctx):
    python = rctx.os.environ.get("PYTHON_BIN_PATH", "python3")
    result = rctx.execute([python, "-c", _QUERY], environment = {"TF_CPP_MIN_LOG_LEVEL": "3"})
    if result.return_code != 0:
        fail("tf_configure: `%s -c 'import tensorflow'` failed (set PYTHON_BIN_PATH, e.g. by " %
             python + "running custom_ops/configure.sh):\n" + result.stderr)
    info = {"cflag": [], "lflag": []}
    for line in result.stdout.splitlines():
        if not line.startswith("pkkd:"):
            continue
        key, _, value = line[len("pkkd:"):].partition("=")
        if key in ("cflag", "lflag"):
            info[key].append(value)
        else:
            info[key] = value
    for key in ("version", "include", "libdir"):
        if key not in info:
            fail("tf_configure: could not read tf.sysconfig from " + python)

    defines = [f[2:] for f in info["cflag"] if f.startswith("-D")]
    libname = None
    for f in info["lflag"]:
        if f.startswith("-l:"):
            libname = f[3:]
        elif f.startswith("-l") and libname == None:
            libname = "lib%s.so" % f[2:]
    if libname == None:
        fail("tf_configure: no -l flag in tf.sysconfig.get_link_flags(): %s" % info["lflag"])

    rctx.symlink(info["include"], "include")
    rctx.symlink(info["libdir"] + "/" + libname, libname)
    rctx.file("tf_version.txt", info["version"] + "\n")
    rctx.file("BUILD", """\
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "tf_defines",
    defines = {defines},
)

cc_library(
    name = "tf_header_lib",
    hdrs = glob(["include/**"]),
    includes = ["include"],
    deps = [":tf_defines"],
)

cc_library(
    name = "libtensorflow_framework",
    srcs = ["{libname}"],
)

exports_files(["tf_version.txt"])
""".format(defines = repr(defines), libname = libname))

tf_configure = repository_rule(
    implementation = _tf_configure_impl,
    environ = ["PYTHON_BIN_PATH"],
    local = True,
)
