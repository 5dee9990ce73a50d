#include "adder_kernel.h"

#include <cstdint>
#include <cstdlib>
#include <string>

#include "thread_pool.h"

namespace pkkd {
namespace {

// Every tensor the kernel touches stays below 2^31 elements (TFLite's int dimensions and the
// index arithmetic of 32-bit builds).
constexpr int64_t kMaxElements = int64_t{1} << 31;

TfLiteStatus Fail(TfLiteContext* context, const std::string& message) {
  context->ReportError(context, "AdderConv2D: %s", message.c_str());
  return kTfLiteError;
}

std::string Shape(const TfLiteIntArray* dims) {
  if (dims == nullptr) return "(no shape)";
  std::string s = "[";
  for (int i = 0; i < dims->size; ++i) s += (i ? ", " : "") + std::to_string(dims->data[i]);
  return s + "]";
}

// The tensor at `index` if the index is valid.
TfLiteTensor* TensorAt(TfLiteContext* context, int index) {
  if (index < 0 || static_cast<size_t>(index) >= context->tensors_size) return nullptr;
  return &context->tensors[index];
}

// A float32 tensor of rank 4 with positive dimensions and consistent byte size.
bool CheckFloat4D(TfLiteContext* context, const TfLiteTensor* t, const char* what,
                  int64_t* elements) {
  if (t->type != kTfLiteFloat32) {
    Fail(context, std::string(what) + " must be float32 (TfLiteType 1), got type " +
                      std::to_string(static_cast<int>(t->type)));
    return false;
  }
  if (t->dims == nullptr || t->dims->size != 4) {
    Fail(context, std::string(what) + " must have rank 4, got shape " + Shape(t->dims));
    return false;
  }
  int64_t n = 1;
  for (int i = 0; i < 4; ++i) {
    if (t->dims->data[i] < 1) {
      Fail(context, std::string(what) + " has an empty or negative dimension: " + Shape(t->dims));
      return false;
    }
    n *= t->dims->data[i];
    if (n >= kMaxElements) {
      Fail(context, std::string(what) + " is too large: " + Shape(t->dims));
      return false;
    }
  }
  *elements = n;
  return true;
}

}  // namespace

AdderNode* AdderInit(const void* buffer, size_t length) {
  auto* node = new AdderNode;
  if (!ParseAdderOptions(static_cast<const uint8_t*>(buffer), length, &node->options,
                         &node->init_error)) {
    if (node->init_error.empty()) node->init_error = "unreadable options";
  }
  return node;
}

void AdderFree(AdderNode* node) { delete node; }

TfLiteStatus AdderPrepare(TfLiteContext* context, AdderNode* node, const TfLiteIntArray* inputs,
                          const TfLiteIntArray* outputs) {
  if (node == nullptr) return Fail(context, "no kernel state (Init failed)");
  if (!node->init_error.empty()) return Fail(context, node->init_error);
  if (inputs == nullptr || inputs->size != 2) {
    return Fail(context, "takes 2 inputs (x, filter), got " +
                             std::to_string(inputs ? inputs->size : 0));
  }
  if (outputs == nullptr || outputs->size != 1) {
    return Fail(context, "has 1 output, got " + std::to_string(outputs ? outputs->size : 0));
  }
  TfLiteTensor* x = TensorAt(context, inputs->data[0]);
  TfLiteTensor* w = TensorAt(context, inputs->data[1]);
  TfLiteTensor* y = TensorAt(context, outputs->data[0]);
  if (x == nullptr || w == nullptr || y == nullptr) return Fail(context, "tensor index out of range");
  if (outputs->data[0] == inputs->data[0] || outputs->data[0] == inputs->data[1]) {
    return Fail(context, "output tensor is also an input");
  }
  int64_t x_elems, w_elems;
  if (!CheckFloat4D(context, x, "input x", &x_elems) ||
      !CheckFloat4D(context, w, "filter", &w_elems)) {
    return kTfLiteError;
  }
  if (y->type != kTfLiteFloat32) {
    return Fail(context, "output must be float32, got type " +
                             std::to_string(static_cast<int>(y->type)));
  }
  if (x->bytes != static_cast<size_t>(x_elems) * 4 || w->bytes != static_cast<size_t>(w_elems) * 4) {
    return Fail(context, "tensor byte sizes do not match their shapes");
  }
  if (w->dims->data[2] != x->dims->data[3]) {
    return Fail(context, "filter " + Shape(w->dims) + " expects " +
                             std::to_string(w->dims->data[2]) + " input channels, x " +
                             Shape(x->dims) + " has " + std::to_string(x->dims->data[3]));
  }
  AdderGeometry g;
  g.batch = x->dims->data[0];
  g.in_h = x->dims->data[1];
  g.in_w = x->dims->data[2];
  g.in_c = x->dims->data[3];
  g.k_h = w->dims->data[0];
  g.k_w = w->dims->data[1];
  g.out_c = w->dims->data[3];
  g.stride_h = node->options.stride_h;
  g.stride_w = node->options.stride_w;
  g.dil_h = node->options.dilation_h;
  g.dil_w = node->options.dilation_w;
  const AdderOptions& o = node->options;
  if (o.explicit_padding) {
    // Zero rows / columns around the input, then VALID.
    const int64_t eff_h = (g.k_h - 1) * g.dil_h + 1, eff_w = (g.k_w - 1) * g.dil_w + 1;
    const int64_t span_h = g.in_h + o.pad_top + o.pad_bottom;
    const int64_t span_w = g.in_w + o.pad_left + o.pad_right;
    if (span_h < eff_h || span_w < eff_w) {
      return Fail(context, "EXPLICIT padding: padded input is smaller than the dilated filter " +
                               Shape(w->dims));
    }
    g.pad_top = o.pad_top;
    g.pad_left = o.pad_left;
    g.out_h = (span_h - eff_h) / g.stride_h + 1;
    g.out_w = (span_w - eff_w) / g.stride_w + 1;
  } else if (!ComputeAdderGeometry(o.same_padding, &g)) {
    return Fail(context, "VALID padding: input " + Shape(x->dims) +
                             " is smaller than the dilated filter " + Shape(w->dims));
  }
  const int64_t y_elems = g.batch * g.out_h * g.out_w * g.out_c;
  if (y_elems >= kMaxElements) return Fail(context, "output is too large");
  const int want[4] = {static_cast<int>(g.batch), static_cast<int>(g.out_h),
                       static_cast<int>(g.out_w), static_cast<int>(g.out_c)};
  bool same = y->dims != nullptr && y->dims->size == 4;
  for (int i = 0; same && i < 4; ++i) same = y->dims->data[i] == want[i];
  if (!same) {
    // TFLite takes ownership and frees it with free() (TfLiteIntArrayFree).
    auto* dims = static_cast<TfLiteIntArray*>(std::malloc(sizeof(TfLiteIntArray) + 4 * sizeof(int)));
    if (dims == nullptr) return Fail(context, "out of memory");
    dims->size = 4;
    for (int i = 0; i < 4; ++i) dims->data[i] = want[i];
    const std::string wanted = Shape(dims);  // ResizeTensor owns (and may free) dims
    if (context->ResizeTensor(context, y, dims) != kTfLiteOk) {
      return Fail(context, "could not resize the output to " + wanted);
    }
  }
  node->geometry = g;
  const bool constant_filter =
      w->allocation_type == kTfLiteMmapRo || w->allocation_type == kTfLitePersistentRo;
  if (constant_filter && w->data.raw != nullptr && node->packed_from != w->data.raw) {
    AdderPackFilter(g, w->data.f, &node->packed, SerialFor);
    node->packed_from = w->data.raw;
  } else if (!constant_filter) {
    node->packed_from = nullptr;
  }
  node->input = inputs->data[0];
  node->filter = inputs->data[1];
  node->output = outputs->data[0];
  return kTfLiteOk;
}

TfLiteStatus AdderEval(TfLiteContext* context, const AdderNode* node, ThreadPool* pool,
                       const float* x_data, float* y_data) {
  const TfLiteTensor* x = TensorAt(context, node->input);
  const TfLiteTensor* w = TensorAt(context, node->filter);
  TfLiteTensor* y = TensorAt(context, node->output);
  if (x == nullptr || w == nullptr || y == nullptr) return Fail(context, "not prepared");
  const AdderGeometry& g = node->geometry;
  const size_t x_bytes = static_cast<size_t>(g.batch * g.in_h * g.in_w * g.in_c) * 4;
  const size_t w_bytes = static_cast<size_t>(g.k_h * g.k_w * g.in_c * g.out_c) * 4;
  const size_t y_bytes = static_cast<size_t>(g.batch * g.out_h * g.out_w * g.out_c) * 4;
  if (x_data == nullptr) x_data = x->data.f;
  if (y_data == nullptr) y_data = y->data.f;
  if (x_data == nullptr || w->data.raw == nullptr || y_data == nullptr) {
    return Fail(context, "a tensor has no data (not allocated)");
  }
  if (x->bytes < x_bytes || w->bytes < w_bytes || y->bytes < y_bytes) {
    return Fail(context, "tensor sizes changed since Prepare");
  }
  ParallelFor pf = [pool](int64_t total, int64_t cost,
                          const std::function<void(int64_t, int64_t)>& fn) {
    pool->ParallelFor(total, cost, fn);
  };
  if (node->packed_from == nullptr || node->packed_from != w->data.raw ||
      !AdderForwardPacked(g, x_data, node->packed, y_data, pf)) {
    AdderForward(g, x_data, w->data.f, y_data, pf);
  }
  return kTfLiteOk;
}

}  // namespace pkkd
