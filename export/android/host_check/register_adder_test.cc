// Host test of route (b)'s registration (export/tflite/register_adder.cc): drives
// tflite::ops::custom::Register_ADDER_CONV2D()'s init / prepare / invoke / free the way the
// TFLite interpreter does, over a hand-made TfLiteContext, and compares the outputs with a
// naive float64 reference.
//
// check_host_build.sh builds it with -DPKKD_USE_TFLITE_HEADERS against LiteRT's real
// common.h (the structures a TFLite build from source has), and once with the project's own
// declarations (tflite_abi.h).
//
// Options buffers: the flexbuffer maps keras_pkkd.export writes (converter.adder_options),
// serialized by flatbuffers' Python flexbuffers.Dumps.
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tflite_abi.h"

namespace tflite {
namespace ops {
namespace custom {
TfLiteRegistration* Register_ADDER_CONV2D();
}  // namespace custom
}  // namespace ops
}  // namespace tflite

namespace {

// {"stride_h": 1, "stride_w": 1, "dilation_h": 1, "dilation_w": 1, "padding": "SAME",
//  "version": 1}
const unsigned char kSameS1D1[] = {
    0x73, 0x74, 0x72, 0x69, 0x64, 0x65, 0x5f, 0x68, 0x00, 0x73, 0x74, 0x72, 0x69, 0x64, 0x65,
    0x5f, 0x77, 0x00, 0x64, 0x69, 0x6c, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x5f, 0x68, 0x00, 0x64,
    0x69, 0x6c, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x5f, 0x77, 0x00, 0x70, 0x61, 0x64, 0x64, 0x69,
    0x6e, 0x67, 0x00, 0x04, 0x53, 0x41, 0x4d, 0x45, 0x00, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f,
    0x6e, 0x00, 0x06, 0x2d, 0x23, 0x19, 0x42, 0x3a, 0x0e, 0x06, 0x01, 0x06, 0x01, 0x01, 0x19,
    0x01, 0x01, 0x01, 0x04, 0x04, 0x14, 0x04, 0x04, 0x04, 0x0c, 0x24, 0x01};
// {"stride_h": 2, "stride_w": 1, "dilation_h": 1, "dilation_w": 2, "padding": "VALID",
//  "version": 1}
const unsigned char kValidS21D12[] = {
    0x73, 0x74, 0x72, 0x69, 0x64, 0x65, 0x5f, 0x68, 0x00, 0x73, 0x74, 0x72, 0x69, 0x64, 0x65,
    0x5f, 0x77, 0x00, 0x64, 0x69, 0x6c, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x5f, 0x68, 0x00, 0x64,
    0x69, 0x6c, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x5f, 0x77, 0x00, 0x70, 0x61, 0x64, 0x64, 0x69,
    0x6e, 0x67, 0x00, 0x05, 0x56, 0x41, 0x4c, 0x49, 0x44, 0x00, 0x76, 0x65, 0x72, 0x73, 0x69,
    0x6f, 0x6e, 0x00, 0x06, 0x2e, 0x24, 0x1a, 0x43, 0x3b, 0x0e, 0x06, 0x01, 0x06, 0x01, 0x02,
    0x1a, 0x02, 0x01, 0x01, 0x04, 0x04, 0x14, 0x04, 0x04, 0x04, 0x0c, 0x24, 0x01};

int g_failures = 0;
int g_checks = 0;
std::string g_last_error;

void Check(bool ok, const std::string& what) {
  ++g_checks;
  if (!ok) {
    ++g_failures;
    std::fprintf(stderr, "FAILED: %s\n", what.c_str());
  }
}

void ReportError(TfLiteContext*, const char* format, ...) {
  char buffer[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof(buffer), format, args);
  va_end(args);
  g_last_error = buffer;
}

TfLiteIntArray* NewIntArray(const std::vector<int>& values) {
  auto* a = static_cast<TfLiteIntArray*>(
      std::malloc(sizeof(TfLiteIntArray) + values.size() * sizeof(int)));
  a->size = static_cast<int>(values.size());
  for (size_t i = 0; i < values.size(); ++i) a->data[i] = values[i];
  return a;
}

struct Graph;

// The context first, so that ResizeTensor finds its Graph from the TfLiteContext*.
struct ContextAndOwner {
  TfLiteContext context;
  Graph* owner;
};

// A subgraph of one or more AdderConv2D nodes: its tensors, their storage and its context.
struct Graph {
  std::vector<TfLiteTensor> tensors;
  std::vector<std::vector<float>> storage;
  ContextAndOwner holder;
  TfLiteContext& context;

  explicit Graph(int num_tensors, int threads)
      : tensors(num_tensors), storage(num_tensors), context(holder.context) {
    std::memset(static_cast<void*>(&holder), 0, sizeof(holder));
    holder.owner = this;
    for (auto& t : tensors) {
      std::memset(static_cast<void*>(&t), 0, sizeof(t));
      t.type = kTfLiteFloat32;
      t.allocation_type = kTfLiteArenaRw;
    }
    context.tensors_size = tensors.size();
    context.tensors = tensors.data();
    context.ResizeTensor = &Graph::Resize;
    context.ReportError = ReportError;
    context.recommended_num_threads = threads;
  }
  ~Graph() {
    for (auto& t : tensors) std::free(t.dims);
  }

  // The interpreter's ResizeTensor: takes ownership of `dims`, reallocates the data.
  static TfLiteStatus Resize(TfLiteContext* context, TfLiteTensor* t, TfLiteIntArray* dims) {
    Graph* g = reinterpret_cast<ContextAndOwner*>(context)->owner;
    const size_t index = static_cast<size_t>(t - context->tensors);
    std::free(t->dims);
    t->dims = dims;
    size_t n = 1;
    for (int i = 0; i < dims->size; ++i) n *= static_cast<size_t>(dims->data[i]);
    g->storage[index].assign(n, std::nanf(""));
    t->data.f = g->storage[index].data();
    t->bytes = n * sizeof(float);
    return kTfLiteOk;
  }

  void Set(int index, const std::vector<int>& shape, unsigned seed) {
    Resize(&context, &tensors[index], NewIntArray(shape));
    unsigned s = seed;
    for (float& v : storage[index]) {
      s = s * 1664525u + 1013904223u;
      v = static_cast<float>((s >> 8) & 0xffff) / 65536.0f * 4.0f - 2.0f;
    }
  }
};

// y[n,p,q,t] = -sum |x_pad - w| in float64, TF's SAME / VALID padding.
std::vector<double> Reference(const std::vector<float>& x, const int* xs, const std::vector<float>& w,
                              const int* ws, int sh, int sw, int dh, int dw, bool same, int* out_h,
                              int* out_w) {
  const int n = xs[0], h = xs[1], wd = xs[2], c = xs[3], kh = ws[0], kw = ws[1], o = ws[3];
  const int eff_h = (kh - 1) * dh + 1, eff_w = (kw - 1) * dw + 1;
  int oh, ow, pt = 0, pl = 0;
  if (same) {
    oh = (h + sh - 1) / sh;
    ow = (wd + sw - 1) / sw;
    pt = std::max(0, (oh - 1) * sh + eff_h - h) / 2;
    pl = std::max(0, (ow - 1) * sw + eff_w - wd) / 2;
  } else {
    oh = (h - eff_h) / sh + 1;
    ow = (wd - eff_w) / sw + 1;
  }
  *out_h = oh;
  *out_w = ow;
  std::vector<double> y(static_cast<size_t>(n) * oh * ow * o, 0.0);
  for (int b = 0; b < n; ++b)
    for (int p = 0; p < oh; ++p)
      for (int q = 0; q < ow; ++q)
        for (int t = 0; t < o; ++t) {
          double acc = 0.0;
          for (int i = 0; i < kh; ++i)
            for (int j = 0; j < kw; ++j) {
              const int r = p * sh + i * dh - pt, s = q * sw + j * dw - pl;
              for (int k = 0; k < c; ++k) {
                const double xv =
                    (r >= 0 && r < h && s >= 0 && s < wd)
                        ? x[((static_cast<size_t>(b) * h + r) * wd + s) * c + k]
                        : 0.0;
                acc += std::fabs(xv - w[((static_cast<size_t>(i) * kw + j) * c + k) * o + t]);
              }
            }
          y[((static_cast<size_t>(b) * oh + p) * ow + q) * o + t] = -acc;
        }
  return y;
}

struct Node {
  TfLiteNode node;
  TfLiteIntArray* inputs;
  TfLiteIntArray* outputs;
  const TfLiteRegistration* reg;

  Node(TfLiteContext* context, const void* options, size_t size, std::vector<int> in,
       std::vector<int> out)
      : inputs(NewIntArray(in)), outputs(NewIntArray(out)),
        reg(tflite::ops::custom::Register_ADDER_CONV2D()) {
    std::memset(static_cast<void*>(&node), 0, sizeof(node));
    node.inputs = inputs;
    node.outputs = outputs;
    node.custom_initial_data = options;
    node.custom_initial_data_size = static_cast<int>(size);
    node.user_data = reg->init(context, static_cast<const char*>(options), size);
  }
  ~Node() {
    std::free(inputs);
    std::free(outputs);
  }
  void Free(TfLiteContext* context) { reg->free(context, node.user_data); }
};

void RunCase(const char* name, const unsigned char* options, size_t size, std::vector<int> xs,
             std::vector<int> ws, int sh, int sw, int dh, int dw, bool same, int threads) {
  Graph g(3, threads);
  g.Set(0, xs, 17u);
  g.Set(1, ws, 29u);
  g.Set(2, {1, 1, 1, 1}, 0u);  // wrong on purpose: Prepare resizes it
  Node n(&g.context, options, size, {0, 1}, {2});
  g_last_error.clear();
  const TfLiteStatus prepared = n.reg->prepare(&g.context, &n.node);
  Check(prepared == kTfLiteOk, std::string(name) + ": prepare: " + g_last_error);
  if (prepared == kTfLiteOk) {
    Check(n.reg->invoke(&g.context, &n.node) == kTfLiteOk,
          std::string(name) + ": invoke: " + g_last_error);
    // A second invoke reuses the prepared state.
    Check(n.reg->invoke(&g.context, &n.node) == kTfLiteOk, std::string(name) + ": invoke 2");
    int oh = 0, ow = 0;
    const std::vector<double> ref =
        Reference(g.storage[0], xs.data(), g.storage[1], ws.data(), sh, sw, dh, dw, same, &oh, &ow);
    const TfLiteIntArray* d = g.tensors[2].dims;
    Check(d->size == 4 && d->data[0] == xs[0] && d->data[1] == oh && d->data[2] == ow &&
              d->data[3] == ws[3],
          std::string(name) + ": output shape");
    double max_diff = 0.0, max_ref = 0.0;
    if (g.storage[2].size() == ref.size()) {
      for (size_t i = 0; i < ref.size(); ++i) {
        max_diff = std::max(max_diff, std::fabs(ref[i] - g.storage[2][i]));
        max_ref = std::max(max_ref, std::fabs(ref[i]));
      }
    } else {
      max_diff = INFINITY;
    }
    Check(max_diff <= 1e-5 * std::max(1.0, max_ref),
          std::string(name) + ": max |y - reference| = " + std::to_string(max_diff));
    std::printf("  %-34s threads %d  output [%d, %d, %d, %d]  max |diff| %.2e of %.1f\n", name,
                threads, xs[0], oh, ow, ws[3], max_diff, max_ref);
  }
  n.Free(&g.context);
}

// Bad options and shapes give an error status and a message, never a crash.
void ErrorCases() {
  {
    Graph g(3, 1);
    g.Set(0, {1, 5, 5, 3}, 1u);
    g.Set(1, {3, 3, 3, 4}, 2u);
    g.Set(2, {1, 5, 5, 4}, 3u);
    Node n(&g.context, kSameS1D1, 20, {0, 1}, {2});  // truncated options
    g_last_error.clear();
    Check(n.reg->prepare(&g.context, &n.node) == kTfLiteError && !g_last_error.empty(),
          "truncated options are rejected");
    std::printf("  truncated options: \"%s\"\n", g_last_error.c_str());
    n.Free(&g.context);
  }
  {
    Graph g(3, 1);
    g.Set(0, {1, 5, 5, 3}, 1u);
    g.Set(1, {3, 3, 2, 4}, 2u);  // 2 input channels, x has 3
    g.Set(2, {1, 5, 5, 4}, 3u);
    Node n(&g.context, kSameS1D1, sizeof(kSameS1D1), {0, 1}, {2});
    g_last_error.clear();
    Check(n.reg->prepare(&g.context, &n.node) == kTfLiteError && !g_last_error.empty(),
          "mismatched channels are rejected");
    std::printf("  mismatched channels: \"%s\"\n", g_last_error.c_str());
    n.Free(&g.context);
  }
  {
    Graph g(3, 1);
    g.Set(0, {1, 5, 5, 3}, 1u);
    g.Set(1, {3, 3, 3, 4}, 2u);
    Node n(&g.context, kSameS1D1, sizeof(kSameS1D1), {0, 1, 2}, {2});  // 3 inputs
    g_last_error.clear();
    Check(n.reg->prepare(&g.context, &n.node) == kTfLiteError && !g_last_error.empty(),
          "a wrong input count is rejected");
    n.Free(&g.context);
  }
}

// Several nodes of one subgraph share its pool; two subgraphs have their own.
void SharedPools() {
  Graph a(4, 3), b(3, 2);
  a.Set(0, {1, 12, 12, 16}, 5u);
  a.Set(1, {3, 3, 16, 16}, 6u);
  a.Set(2, {1, 1, 1, 1}, 0u);
  a.Set(3, {1, 1, 1, 1}, 0u);
  b.Set(0, {1, 12, 12, 16}, 5u);
  b.Set(1, {3, 3, 16, 16}, 6u);
  b.Set(2, {1, 1, 1, 1}, 0u);
  Node a1(&a.context, kSameS1D1, sizeof(kSameS1D1), {0, 1}, {2});
  Node a2(&a.context, kSameS1D1, sizeof(kSameS1D1), {2, 1}, {3});  // consumes a1's output
  Node b1(&b.context, kSameS1D1, sizeof(kSameS1D1), {0, 1}, {2});
  bool ok = a1.reg->prepare(&a.context, &a1.node) == kTfLiteOk &&
            a2.reg->prepare(&a.context, &a2.node) == kTfLiteOk &&
            b1.reg->prepare(&b.context, &b1.node) == kTfLiteOk &&
            a1.reg->invoke(&a.context, &a1.node) == kTfLiteOk &&
            a2.reg->invoke(&a.context, &a2.node) == kTfLiteOk &&
            b1.reg->invoke(&b.context, &b1.node) == kTfLiteOk;
  Check(ok, "two nodes of one subgraph and a node of another: " + g_last_error);
  if (ok) {
    // Same input and filter, so the first node of each subgraph agrees bit for bit.
    Check(a.storage[2] == b.storage[2], "subgraphs with their own pools agree");
  }
  a1.Free(&a.context);
  b1.Free(&b.context);
  // a2 still uses subgraph a's pool after a1 is freed.
  Check(a2.reg->invoke(&a.context, &a2.node) == kTfLiteOk, "a pool outlives one of its nodes");
  a2.Free(&a.context);
}

}  // namespace

int main() {
#if defined(PKKD_USE_TFLITE_HEADERS)
  std::printf("register_adder_test: TFLite's own common.h\n");
#else
  std::printf("register_adder_test: the project's declarations (tflite_abi.h)\n");
#endif
  const TfLiteRegistration* r = tflite::ops::custom::Register_ADDER_CONV2D();
  Check(r != nullptr && r->init && r->free && r->prepare && r->invoke && r->version == 1 &&
            r->custom_name != nullptr && std::strcmp(r->custom_name, "AdderConv2D") == 0,
        "the registration's functions, name and version");
  RunCase("SAME, stride 1, 3x3", kSameS1D1, sizeof(kSameS1D1), {2, 9, 11, 20}, {3, 3, 20, 24}, 1,
          1, 1, 1, true, 2);
  RunCase("SAME, stride 1, 1 thread", kSameS1D1, sizeof(kSameS1D1), {1, 7, 5, 3}, {3, 3, 3, 5}, 1,
          1, 1, 1, true, 1);
  RunCase("VALID, stride 2x1, dilation 1x2", kValidS21D12, sizeof(kValidS21D12), {1, 11, 13, 7},
          {2, 3, 7, 5}, 2, 1, 1, 2, false, 3);
  RunCase("SAME, unset thread count", kSameS1D1, sizeof(kSameS1D1), {1, 6, 6, 17}, {1, 2, 17, 33},
          1, 1, 1, 1, true, -1);
  ErrorCases();
  SharedPools();
  std::printf("register_adder_test: %d checks, %d failed\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
