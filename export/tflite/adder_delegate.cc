// External TFLite delegate that runs the AdderConv2D custom op of keras_pkkd models.
//
// Why a delegate: LiteRT's Python interpreter offers no C API to register a custom op (its
// libraries export none), and the stock Android Java Interpreter cannot register one either;
// both accept a delegate (`load_delegate` in Python, `Interpreter.Options.addDelegate` on
// Android). The delegate claims every node whose operator is CUSTOM "AdderConv2D" (version 1)
// and runs it with the kernel of adder_kernel.h; everything else stays with the runtime (its
// builtin kernels, XNNPACK).
//
// The structures are declared by this project (tflite_abi.h). Before claiming anything, the
// delegate checks them against what the runtime hands it (LayoutCheck): a runtime whose layout
// differs fails loudly instead of computing garbage.
//
// Entry points (external delegate interface of TFLite, external_delegate_interface.h):
//   tflite_plugin_create_delegate(keys, values, n, report_error)   options:
//       num_threads=N         threads of the adder kernels (default: the interpreter's,
//                             TfLiteContext::recommended_num_threads, at least 1)
//       expect_tensors=N      the model's tensor count: checked (layout check)
//       expect_adder_nodes=M  the model's AdderConv2D node count: checked (layout check)
//       one_node_partitions=1 every adder node its own partition (all tensors in the arena:
//                             keras_pkkd's int8 calibration reads them)
//   tflite_plugin_destroy_delegate(delegate)
// and, for JNI / C callers, pkkd_adder_delegate_create(num_threads) / _destroy.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "adder_kernel.h"
#include "thread_pool.h"
#include "tflite_abi.h"

#if defined(_WIN32)
#define PKKD_EXPORT __declspec(dllexport)
#else
#define PKKD_EXPORT __attribute__((visibility("default")))
#endif

namespace pkkd {
namespace {

struct AdderDelegate {
  TfLiteDelegate base;  // first member: the runtime sees a TfLiteDelegate*
  int num_threads = 0;  // 0: the interpreter's
  int64_t expect_tensors = -1, expect_adder_nodes = -1;
  // Every adder node its own partition, so that every tensor is in the runtime's arena
  // (int8 calibration reads them all).
  bool one_node_partitions = false;
  ThreadPool pool;
};

AdderDelegate* FromBase(TfLiteDelegate* d) { return reinterpret_cast<AdderDelegate*>(d); }

// One delegate node: the adder nodes of one partition, in execution order.
struct Partition {
  AdderDelegate* delegate = nullptr;
  struct Entry {
    AdderNode* kernel = nullptr;
    std::vector<int> inputs, outputs;
    bool internal_output = false;  // consumed only inside the partition: kept in `buffer`
    std::vector<float> buffer;     // float32 or int8 elements (a float vector for alignment)
  };
  std::vector<Entry> entries;
  ~Partition() {
    for (auto& e : entries) AdderFree(e.kernel);
  }
};

std::vector<int> ToVector(const TfLiteIntArray* a) {
  if (a == nullptr) return {};
  return std::vector<int>(a->data, a->data + a->size);
}

// A TfLiteIntArray owned by a std::vector<int> of (size, data...).
struct IntArray {
  explicit IntArray(const std::vector<int>& v) : storage(v.size() + 1) {
    storage[0] = static_cast<int>(v.size());
    std::copy(v.begin(), v.end(), storage.begin() + 1);
  }
  const TfLiteIntArray* get() const {
    return reinterpret_cast<const TfLiteIntArray*>(storage.data());
  }
  std::vector<int> storage;
};

bool IsAdderNode(const TfLiteRegistration* r) {
  return r != nullptr && r->builtin_code == kPkkdBuiltinCustom && r->custom_name != nullptr &&
         std::strcmp(r->custom_name, kAdderCustomName) == 0;
}

TfLiteStatus LayoutFail(TfLiteContext* context, const std::string& what) {
  const std::string msg =
      "keras_pkkd AdderConv2D delegate: TFLite runtime layout check failed: " + what +
      ". The delegate declares TFLite's C structures itself (export/tflite/tflite_abi.h, the "
      "layout of LiteRT 2.2-2.3 / TensorFlow Lite 2.16+); this runtime's differ, so it refuses "
      "to run. Use the pinned runtime (ai-edge-litert in requirements.txt).";
  std::fprintf(stderr, "%s\n", msg.c_str());
  context->ReportError(context, "%s", msg.c_str());
  return kTfLiteError;
}

// Checks what can be checked of the structure layout against the runtime's data: the tensor
// table (type, rank, dims and byte size of every float32 / int32 / int8 tensor agree), the model's
// counts when the caller passed them, and each adder node's fields.
TfLiteStatus LayoutCheck(TfLiteContext* context, AdderDelegate* delegate,
                         const std::vector<int>& adder_nodes) {
  if (delegate->expect_tensors >= 0 &&
      context->tensors_size != static_cast<size_t>(delegate->expect_tensors)) {
    return LayoutFail(context, "tensors_size is " + std::to_string(context->tensors_size) +
                                   ", the model has " +
                                   std::to_string(delegate->expect_tensors) + " tensors");
  }
  if (context->tensors_size > (size_t{1} << 24)) return LayoutFail(context, "absurd tensors_size");
  int checked = 0;
  for (size_t i = 0; i < context->tensors_size; ++i) {
    const TfLiteTensor& t = context->tensors[i];
    if (static_cast<int>(t.type) < 0 || static_cast<int>(t.type) > 64) {
      return LayoutFail(context, "tensor " + std::to_string(i) + " has type " +
                                     std::to_string(static_cast<int>(t.type)));
    }
    // Arena tensors: the runtime sized them from their dims itself (constant tensors carry
    // their buffer's size, which a corrupt model may contradict).
    if (t.dims == nullptr || t.allocation_type != kTfLiteArenaRw ||
        (t.type != kTfLiteFloat32 && t.type != kTfLiteInt32 && t.type != kTfLiteInt8)) {
      continue;
    }
    if (t.dims->size < 0 || t.dims->size > 16) {
      return LayoutFail(context, "tensor " + std::to_string(i) + " has rank " +
                                     std::to_string(t.dims->size));
    }
    size_t n = t.type == kTfLiteInt8 ? 1 : 4;
    bool known = true;
    for (int d = 0; d < t.dims->size; ++d) {
      if (t.dims->data[d] < 0) known = false;
      n *= static_cast<size_t>(t.dims->data[d] < 0 ? 0 : t.dims->data[d]);
    }
    // Tensors carry their byte size from creation on; 0 is allowed for ones not sized yet.
    if (known && t.bytes != 0 && t.bytes != n) {
      return LayoutFail(context, "tensor " + std::to_string(i) + " holds " +
                                     std::to_string(t.bytes) + " bytes for " +
                                     std::to_string(n) + " expected");
    }
    ++checked;
  }
  if (context->tensors_size > 0 && checked == 0) {
    return LayoutFail(context, "no float32 / int32 / int8 arena tensor with a shape was found");
  }
  if (delegate->expect_adder_nodes >= 0 &&
      static_cast<int64_t>(adder_nodes.size()) != delegate->expect_adder_nodes) {
    return LayoutFail(context, "found " + std::to_string(adder_nodes.size()) +
                                   " AdderConv2D nodes, the model has " +
                                   std::to_string(delegate->expect_adder_nodes));
  }
  for (int index : adder_nodes) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* reg = nullptr;
    context->GetNodeAndRegistration(context, index, &node, &reg);
    if (node->inputs == nullptr || node->outputs == nullptr || node->inputs->size < 0 ||
        node->inputs->size > 16 || node->outputs->size < 0 || node->outputs->size > 16 ||
        node->custom_initial_data_size < 0 || node->custom_initial_data_size > (1 << 20) ||
        (node->custom_initial_data_size > 0 && node->custom_initial_data == nullptr)) {
      return LayoutFail(context, "AdderConv2D node " + std::to_string(index) +
                                     " has implausible inputs, outputs or options");
    }
  }
  return kTfLiteOk;
}

// ----- the delegate kernel: one per partition -------------------------------------------------

void* PartitionInit(TfLiteContext* context, const char* buffer, size_t) {
  const auto* params = reinterpret_cast<const TfLiteDelegateParams*>(buffer);
  auto* p = new Partition;
  p->delegate = FromBase(params->delegate);
  const std::vector<int> outs = ToVector(params->output_tensors);
  for (int index : ToVector(params->nodes_to_replace)) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* reg = nullptr;
    Partition::Entry e;
    if (context->GetNodeAndRegistration(context, index, &node, &reg) == kTfLiteOk) {
      e.kernel = AdderInit(node->custom_initial_data,
                           static_cast<size_t>(node->custom_initial_data_size));
      e.inputs = ToVector(node->inputs);
      e.outputs = ToVector(node->outputs);
    }
    e.internal_output = e.outputs.size() == 1 &&
                        std::find(outs.begin(), outs.end(), e.outputs[0]) == outs.end();
    p->entries.push_back(std::move(e));
  }
  return p;
}

void PartitionFree(TfLiteContext*, void* buffer) { delete static_cast<Partition*>(buffer); }

int Threads(TfLiteContext* context, const AdderDelegate* d) {
  if (d->num_threads > 0) return d->num_threads;
  return context->recommended_num_threads > 0 ? context->recommended_num_threads : 1;
}

TfLiteStatus PartitionPrepare(TfLiteContext* context, TfLiteNode* node) {
  auto* p = static_cast<Partition*>(node->user_data);
  if (p == nullptr) return kTfLiteError;
  for (auto& e : p->entries) {
    if (e.kernel == nullptr) {
      context->ReportError(context, "AdderConv2D: node lookup failed");
      return kTfLiteError;
    }
    const IntArray in(e.inputs), out(e.outputs);
    if (AdderPrepare(context, e.kernel, in.get(), out.get()) != kTfLiteOk) return kTfLiteError;
    if (e.internal_output) {
      const AdderGeometry& g = e.kernel->geometry;
      const size_t bytes = static_cast<size_t>(g.batch * g.out_h * g.out_w * g.out_c) *
                           static_cast<size_t>(AdderElementBytes(e.kernel));
      e.buffer.resize((bytes + sizeof(float) - 1) / sizeof(float));
    }
  }
  p->delegate->pool.Resize(Threads(context, p->delegate));
  return kTfLiteOk;
}

TfLiteStatus PartitionInvoke(TfLiteContext* context, TfLiteNode* node) {
  auto* p = static_cast<Partition*>(node->user_data);
  for (auto& e : p->entries) {
    // An input produced inside the partition lives in its producer's buffer.
    const void* x_data = nullptr;
    for (const auto& producer : p->entries) {
      if (producer.internal_output && producer.outputs[0] == e.kernel->input) {
        x_data = producer.buffer.data();
      }
    }
    void* y_data = e.internal_output ? e.buffer.data() : nullptr;
    if (AdderEval(context, e.kernel, &p->delegate->pool, x_data, y_data) != kTfLiteOk) {
      return kTfLiteError;
    }
  }
  return kTfLiteOk;
}

TfLiteStatus DelegatePrepare(TfLiteContext* context, TfLiteDelegate* base) {
  AdderDelegate* delegate = FromBase(base);
  TfLiteIntArray* plan = nullptr;
  if (context->GetExecutionPlan(context, &plan) != kTfLiteOk || plan == nullptr) {
    return LayoutFail(context, "no execution plan");
  }
  std::vector<int> adder_nodes;
  for (int i = 0; i < plan->size; ++i) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* reg = nullptr;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node, &reg) != kTfLiteOk) {
      return LayoutFail(context, "GetNodeAndRegistration failed for node " +
                                     std::to_string(plan->data[i]));
    }
    if (reg == nullptr || reg->builtin_code < 0 || reg->builtin_code > 4096) {
      return LayoutFail(context, "node " + std::to_string(plan->data[i]) +
                                     " has an implausible builtin code");
    }
    if (IsAdderNode(reg)) {
      if (reg->version != 1 && reg->version != 2) {
        context->ReportError(context,
                             "AdderConv2D: operator version %d is not supported (this "
                             "delegate runs version 1, float32, and 2, int8)",
                             reg->version);
        return kTfLiteError;
      }
      adder_nodes.push_back(plan->data[i]);
    }
  }
  if (LayoutCheck(context, delegate, adder_nodes) != kTfLiteOk) return kTfLiteError;
  if (adder_nodes.empty()) return kTfLiteOk;

  TfLiteRegistration reg;
  std::memset(&reg, 0, sizeof(reg));
  reg.init = PartitionInit;
  reg.free = PartitionFree;
  reg.prepare = PartitionPrepare;
  reg.invoke = PartitionInvoke;
  reg.builtin_code = kPkkdBuiltinCustom;
  reg.custom_name = "KerasPkkdAdderDelegate";
  reg.version = 1;
  if (delegate->one_node_partitions) {
    for (int index : adder_nodes) {
      const IntArray one({index});
      if (context->ReplaceNodeSubsetsWithDelegateKernels(context, reg, one.get(), base) !=
          kTfLiteOk) {
        return kTfLiteError;
      }
    }
    return kTfLiteOk;
  }
  const IntArray nodes(adder_nodes);
  return context->ReplaceNodeSubsetsWithDelegateKernels(context, reg, nodes.get(), base);
}

bool ParseInt(const char* text, int64_t lo, int64_t hi, int64_t* out) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (*end != '\0' || v < lo || v > hi) return false;
  *out = v;
  return true;
}

}  // namespace
}  // namespace pkkd

extern "C" {

// num_threads <= 0: follow the interpreter's thread count.
PKKD_EXPORT TfLiteDelegate* pkkd_adder_delegate_create(int num_threads) {
  auto* d = new pkkd::AdderDelegate;
  std::memset(&d->base, 0, sizeof(d->base));
  d->base.data_ = d;
  d->base.Prepare = pkkd::DelegatePrepare;
  d->base.flags = kTfLiteDelegateFlagsAllowDynamicTensors;
  d->num_threads = num_threads > 0 ? num_threads : 0;
  return &d->base;
}

PKKD_EXPORT void pkkd_adder_delegate_destroy(TfLiteDelegate* delegate) {
  if (delegate != nullptr) delete pkkd::FromBase(delegate);
}

// The compute core's instruction set on this CPU: "avx512", "avx2", "neon" or "scalar".
PKKD_EXPORT const char* pkkd_adder_delegate_isa() { return pkkd::AdderIsaName(); }

// For tests and fuzzing: parses an options buffer. Returns 1 and fills out[0..4] (stride_h,
// stride_w, dilation_h, dilation_w, same padding 0/1), or 0 with the message in err.
PKKD_EXPORT int pkkd_adder_parse_options(const uint8_t* data, size_t size, int64_t* out,
                                         char* err, size_t err_len) {
  pkkd::AdderOptions o;
  std::string error;
  if (!pkkd::ParseAdderOptions(data, size, &o, &error)) {
    if (err != nullptr && err_len > 0) {
      std::snprintf(err, err_len, "%s", error.c_str());
    }
    return 0;
  }
  const int64_t values[5] = {o.stride_h, o.stride_w, o.dilation_h, o.dilation_w,
                             o.same_padding ? 1 : 0};
  std::memcpy(out, values, sizeof(values));
  return 1;
}

// For tests: the int8 compute (adder_int8.h) on one version. geometry: batch, in_h, in_w, in_c,
// k_h, k_w, out_c, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, out_h, out_w.
// scale / offset: the affine per output channel; activation 0 NONE, 1 RELU, 2 RELU6.
// isa: 0 auto, 1 scalar, 2 avx2, 3 avx512, 4 neon. Returns 0 on success, 1 when the version
// cannot run here, 2 with bad quantization parameters (message in err).
PKKD_EXPORT int pkkd_adder_int8_forward(int isa, const int64_t* geometry, const int8_t* x,
                                        const int8_t* w, const float* scale,
                                        const float* offset, int activation, double input_scale,
                                        int input_zero_point, double output_scale,
                                        int output_zero_point, int num_threads, int8_t* y,
                                        char* err, size_t err_len) {
  pkkd::AdderGeometry g;
  int64_t* fields[] = {&g.batch,  &g.in_h,   &g.in_w,     &g.in_c,     &g.k_h,
                       &g.k_w,    &g.out_c,  &g.stride_h, &g.stride_w, &g.dil_h,
                       &g.dil_w,  &g.pad_top, &g.pad_left, &g.out_h,    &g.out_w};
  for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); ++i) *fields[i] = geometry[i];
  pkkd::AdderInt8Requant rq;
  std::string error;
  if (activation < 0 || activation > 2 ||
      !pkkd::AdderInt8Requant::Make(input_scale, input_zero_point, output_scale,
                                    output_zero_point, scale, offset, g.out_c,
                                    static_cast<pkkd::AdderActivation>(activation), &rq,
                                    &error)) {
    if (err != nullptr && err_len > 0) {
      std::snprintf(err, err_len, "%s", error.empty() ? "bad activation" : error.c_str());
    }
    return 2;
  }
  pkkd::AdderInt8Filter packed;
  if (!pkkd::AdderInt8PackFilter(g, w, static_cast<pkkd::Int8Isa>(isa), &packed)) return 1;
  pkkd::ThreadPool pool;
  pool.Resize(num_threads);
  pkkd::ParallelFor pf = [&pool](int64_t total, int64_t cost,
                                 const std::function<void(int64_t, int64_t)>& fn) {
    pool.ParallelFor(total, cost, fn);
  };
  return pkkd::AdderInt8Forward(g, x, packed, rq, y, pf) ? 0 : 1;
}

// The int8 version Int8BestIsa picks here: "avx512", "avx2", "neon" or "scalar".
PKKD_EXPORT const char* pkkd_adder_int8_isa() {
  return pkkd::Int8IsaName(pkkd::Int8BestIsa());
}

PKKD_EXPORT TfLiteDelegate* tflite_plugin_create_delegate(const char* const* keys,
                                                          const char* const* values,
                                                          size_t num_options,
                                                          void (*report_error)(const char*)) {
  int64_t num_threads = 0, expect_tensors = -1, expect_nodes = -1, one_node = 0;
  for (size_t i = 0; i < num_options; ++i) {
    const std::string key = keys[i] ? keys[i] : "";
    int64_t* target = key == "num_threads"          ? &num_threads
                      : key == "expect_tensors"     ? &expect_tensors
                      : key == "expect_adder_nodes" ? &expect_nodes
                      : key == "one_node_partitions" ? &one_node
                                                    : nullptr;
    const std::string msg =
        target == nullptr
            ? "keras_pkkd AdderConv2D delegate: unknown option '" + key +
                  "' (known: num_threads, expect_tensors, expect_adder_nodes, one_node_partitions)"
            : "keras_pkkd AdderConv2D delegate: option '" + key +
                  "' must be a non-negative integer, got '" + (values[i] ? values[i] : "") + "'";
    if (target == nullptr || !pkkd::ParseInt(values[i], 0, 1 << 30, target)) {
      if (report_error != nullptr) report_error(msg.c_str());
      return nullptr;
    }
  }
  TfLiteDelegate* base = pkkd_adder_delegate_create(static_cast<int>(num_threads));
  pkkd::AdderDelegate* d = pkkd::FromBase(base);
  d->expect_tensors = expect_tensors;
  d->expect_adder_nodes = expect_nodes;
  d->one_node_partitions = one_node != 0;
  return base;
}

PKKD_EXPORT void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) {
  pkkd_adder_delegate_destroy(delegate);
}

}  // extern "C"
