#include "adder_kernel.h"

#include <algorithm>
#include <cmath>
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

const char* TypeName(int type) {
  return type == kTfLiteFloat32 ? "float32" : type == kTfLiteInt8 ? "int8"
                                            : type == kTfLiteInt32 ? "int32" : "another type";
}

// A tensor of `type` and rank 4 with positive dimensions and consistent byte size.
bool Check4D(TfLiteContext* context, const TfLiteTensor* t, const char* what, int type,
             int64_t* elements) {
  if (t->type != type) {
    Fail(context, std::string(what) + " must be " + TypeName(type) + " (TfLiteType " +
                      std::to_string(type) + "), got type " +
                      std::to_string(static_cast<int>(t->type)) + " (" + TypeName(t->type) + ")");
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

bool IsConstant(const TfLiteTensor* t) {
  return t->allocation_type == kTfLiteMmapRo || t->allocation_type == kTfLitePersistentRo;
}

// The per-tensor scale and zero point of an int8 tensor.
bool PerTensorQuantization(TfLiteContext* context, const TfLiteTensor* t, const char* what,
                           double* scale, int* zero_point) {
  if (t->quantization.type != kTfLiteAffineQuantization || t->quantization.params == nullptr) {
    Fail(context, std::string(what) + " has no quantization parameters (an int8 AdderConv2D "
                  "needs a per-tensor scale and zero point)");
    return false;
  }
  const auto* affine = static_cast<const TfLiteAffineQuantization*>(t->quantization.params);
  if (affine->scale == nullptr || affine->zero_point == nullptr || affine->scale->size != 1 ||
      affine->zero_point->size != 1) {
    Fail(context, std::string(what) + " has " +
                      std::to_string(affine->scale ? affine->scale->size : 0) +
                      " scales: only per-tensor quantization (one scale and zero point) is "
                      "supported");
    return false;
  }
  *scale = affine->scale->data[0];
  *zero_point = affine->zero_point->data[0];
  if (!(*scale > 0) || !std::isfinite(*scale)) {
    Fail(context, std::string(what) + " has the scale " + std::to_string(*scale) +
                      ": scales must be positive and finite");
    return false;
  }
  if (*zero_point < -128 || *zero_point > 127) {
    Fail(context, std::string(what) + " has the zero point " + std::to_string(*zero_point) +
                      ", outside the int8 range [-128, 127]");
    return false;
  }
  return true;
}

// A constant float32 vector of one value per output channel (the affine's a or o).
bool CheckChannelVector(TfLiteContext* context, const TfLiteTensor* t, const char* what,
                        int64_t out_c) {
  if (t->type != kTfLiteFloat32 || t->dims == nullptr || t->dims->size != 1 ||
      t->dims->data[0] != out_c || t->bytes != static_cast<size_t>(out_c) * 4 ||
      !IsConstant(t) || t->data.raw == nullptr) {
    Fail(context, std::string(what) + " must be a constant float32 tensor of shape [" +
                      std::to_string(out_c) + "], got type " +
                      std::to_string(static_cast<int>(t->type)) + " (" + TypeName(t->type) +
                      ") shape " + Shape(t->dims));
    return false;
  }
  return true;
}

// The int8 half of AdderPrepare: quantization parameters, requantization, packing.
TfLiteStatus PrepareInt8(TfLiteContext* context, AdderNode* node, const TfLiteTensor* x,
                         const TfLiteTensor* w, const TfLiteTensor* a, const TfLiteTensor* o,
                         const TfLiteTensor* y, const AdderGeometry& g) {
  if (y->type != kTfLiteInt8) {
    return Fail(context, std::string("output must be int8 like the input, got type ") +
                             std::to_string(static_cast<int>(y->type)) + " (" +
                             TypeName(y->type) + ")");
  }
  if (!IsConstant(w) || w->data.raw == nullptr) {
    return Fail(context, "the int8 filter must be a constant tensor");
  }
  double sx, sw, sy;
  int zx, zw, zy;
  if (!PerTensorQuantization(context, x, "input x", &sx, &zx) ||
      !PerTensorQuantization(context, w, "filter", &sw, &zw) ||
      !PerTensorQuantization(context, y, "output", &sy, &zy)) {
    return kTfLiteError;
  }
  if (sw != sx || zw != zx) {
    return Fail(context, "the filter's quantization (scale " + std::to_string(sw) +
                             ", zero point " + std::to_string(zw) +
                             ") must equal the input's (scale " + std::to_string(sx) +
                             ", zero point " + std::to_string(zx) +
                             "): an L1 distance needs both operands on one grid");
  }
  // Sums of |q_x - q_w| (< 256 each) stay below 2^29 (the vector requantization's bound).
  if (g.k_h * g.k_w * g.in_c > (int64_t{1} << 21)) {
    return Fail(context, "the filter window k_h * k_w * C is too large for int32 sums");
  }
  std::string error;
  if (!AdderInt8Requant::Make(sx, zx, sy, zy, a->data.f, o->data.f, g.out_c,
                              node->options.activation, &node->requant, &error)) {
    return Fail(context, "int8 requantization: " + error);
  }
  if (node->packed_from != w->data.raw || node->packed8.out_c != g.out_c ||
      node->packed8.k_h != g.k_h || node->packed8.k_w != g.k_w || node->packed8.in_c != g.in_c) {
    if (!AdderInt8PackFilter(g, w->data.int8, Int8Isa::kAuto, &node->packed8)) {
      return Fail(context, "packing the int8 filter failed");
    }
    node->packed_from = w->data.raw;
  }
  return kTfLiteOk;
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
  if (inputs == nullptr || inputs->size < 1) return Fail(context, "has no inputs");
  if (outputs == nullptr || outputs->size != 1) {
    return Fail(context, "has 1 output, got " + std::to_string(outputs ? outputs->size : 0));
  }
  TfLiteTensor* x = TensorAt(context, inputs->data[0]);
  if (x == nullptr) return Fail(context, "tensor index out of range");
  const bool int8 = x->type == kTfLiteInt8;
  if (int8 ? inputs->size != 4 : inputs->size != 2 && inputs->size != 4) {
    return Fail(context, std::string("takes ") +
                             (int8 ? "4 inputs (x, filter, scale, offset) in int8"
                                   : "2 inputs (x, filter) or 4 (x, filter, scale, offset)") +
                             ", got " + std::to_string(inputs->size));
  }
  const bool affine = inputs->size == 4;
  TfLiteTensor* w = TensorAt(context, inputs->data[1]);
  TfLiteTensor* a = affine ? TensorAt(context, inputs->data[2]) : nullptr;
  TfLiteTensor* off = affine ? TensorAt(context, inputs->data[3]) : nullptr;
  TfLiteTensor* y = TensorAt(context, outputs->data[0]);
  if (w == nullptr || y == nullptr || (affine && (a == nullptr || off == nullptr))) {
    return Fail(context, "tensor index out of range");
  }
  for (int i = 0; i < inputs->size; ++i) {
    if (outputs->data[0] == inputs->data[i]) return Fail(context, "output tensor is also an input");
  }
  const int type = int8 ? kTfLiteInt8 : kTfLiteFloat32;
  const size_t element_bytes = int8 ? 1 : 4;
  int64_t x_elems, w_elems;
  if (!Check4D(context, x, "input x", type, &x_elems) ||
      !Check4D(context, w, "filter", type, &w_elems)) {
    return kTfLiteError;
  }
  if (!int8 && y->type != kTfLiteFloat32) {
    return Fail(context, "output must be float32, got type " +
                             std::to_string(static_cast<int>(y->type)));
  }
  if (x->bytes != static_cast<size_t>(x_elems) * element_bytes ||
      w->bytes != static_cast<size_t>(w_elems) * element_bytes) {
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
  node->int8 = int8;
  if (affine && (!CheckChannelVector(context, a, "the scale input", g.out_c) ||
                 !CheckChannelVector(context, off, "the offset input", g.out_c))) {
    return kTfLiteError;
  }
  node->scale = affine ? inputs->data[2] : -1;
  node->offset = affine ? inputs->data[3] : -1;
  if (int8) {
    if (PrepareInt8(context, node, x, w, a, off, y, g) != kTfLiteOk) return kTfLiteError;
  } else {
    const bool constant_filter = IsConstant(w);
    if (constant_filter && w->data.raw != nullptr && node->packed_from != w->data.raw) {
      AdderPackFilter(g, w->data.f, &node->packed, SerialFor);
      node->packed_from = w->data.raw;
    } else if (!constant_filter) {
      node->packed_from = nullptr;
    }
  }
  node->input = inputs->data[0];
  node->filter = inputs->data[1];
  node->output = outputs->data[0];
  return kTfLiteOk;
}

TfLiteStatus AdderEval(TfLiteContext* context, const AdderNode* node, ThreadPool* pool,
                       const void* x_data, void* y_data) {
  const TfLiteTensor* x = TensorAt(context, node->input);
  const TfLiteTensor* w = TensorAt(context, node->filter);
  TfLiteTensor* y = TensorAt(context, node->output);
  if (x == nullptr || w == nullptr || y == nullptr) {
    return Fail(context, "not prepared");
  }
  const AdderGeometry& g = node->geometry;
  const size_t element = static_cast<size_t>(AdderElementBytes(node));
  const size_t x_bytes = static_cast<size_t>(g.batch * g.in_h * g.in_w * g.in_c) * element;
  const size_t w_bytes = static_cast<size_t>(g.k_h * g.k_w * g.in_c * g.out_c) * element;
  const size_t y_bytes = static_cast<size_t>(g.batch * g.out_h * g.out_w * g.out_c) * element;
  if (x_data == nullptr) x_data = x->data.raw;
  if (y_data == nullptr) y_data = y->data.raw;
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
  if (node->int8) {
    if (node->packed_from != w->data.raw ||
        !AdderInt8Forward(g, static_cast<const int8_t*>(x_data), node->packed8, node->requant,
                          static_cast<int8_t*>(y_data), pf)) {
      return Fail(context, "the int8 filter changed since Prepare");
    }
    return kTfLiteOk;
  }
  const float* xf = static_cast<const float*>(x_data);
  float* yf = static_cast<float*>(y_data);
  if (node->packed_from == nullptr || node->packed_from != w->data.raw ||
      !AdderForwardPacked(g, xf, node->packed, yf, pf)) {
    AdderForward(g, xf, w->data.f, yf, pf);
  }
  const AdderActivation act = node->options.activation;
  if (node->scale >= 0 || act != AdderActivation::kNone) {
    const TfLiteTensor* a = node->scale >= 0 ? TensorAt(context, node->scale) : nullptr;
    const TfLiteTensor* o = node->offset >= 0 ? TensorAt(context, node->offset) : nullptr;
    const float* av = a != nullptr ? a->data.f : nullptr;
    const float* ov = o != nullptr ? o->data.f : nullptr;
    const float hi = act == AdderActivation::kRelu6 ? 6.0f : INFINITY;
    const float lo = act == AdderActivation::kNone ? -INFINITY : 0.0f;
    const int64_t c = g.out_c, pixels = g.batch * g.out_h * g.out_w;
    for (int64_t i = 0; i < pixels; ++i) {
      float* row = yf + i * c;
      for (int64_t t = 0; t < c; ++t) {
        const float v = av != nullptr ? row[t] * av[t] + ov[t] : row[t];
        row[t] = std::min(hi, std::max(lo, v));
      }
    }
  }
  return kTfLiteOk;
}

}  // namespace pkkd
