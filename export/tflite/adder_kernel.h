// The TFLite kernel of the custom op AdderConv2D, over the shared compute core
// (custom_ops/adder/cc/kernels/adder_core.h) for float32 and adder_int8.h for int8.
//
// Node contract (what keras_pkkd.export writes):
//   version 1 (float32):
//     inputs:  0 x  float32 [N, H, W, C]            (NHWC)
//              1 w  float32 [k_h, k_w, C, C_out]    (HWIO, as the Keras layer's kernel)
//              optional, both or neither: 2 a, 3 o  float32 [C_out], constant
//     outputs: 0 y  float32 [N, H_out, W_out, C_out]
//     y[n,p,q,t] = act(a[t] * -sum_{i,j,c} |x_pad[n, p*s_h + i*d_h, q*s_w + j*d_w, c] - w[i,j,c,t]|
//                      + o[t])      (a = 1, o = 0 without the inputs; act from the options)
//     The 4-input form is the int8 export's intermediate model (a BatchNormalization folded).
//   version 2 (int8, the scheme of adder_int8.h):
//     inputs:  0 x  int8 [N, H, W, C], per-tensor scale s_x, zero point z_x
//              1 w  int8 [k_h, k_w, C, C_out], constant, the same scale and zero point as x
//              2 a, 3 o  float32 [C_out], constant (the affine, as in version 1)
//     outputs: 0 y  int8 [N, H_out, W_out, C_out], per-tensor scale s_y, zero point z_y
//   options (both): the flexbuffer map of adder_options.h.
//
// The steps mirror a TFLite kernel's: AdderInit parses the options once; AdderPrepare checks
// types, ranks, shapes and sizes against the options and resizes the output; AdderEval runs
// the core. Every problem is reported through context->ReportError and a kTfLiteError
// status. Used by the external delegate (adder_delegate.cc, Python and Android) and by the
// plain registration Register_ADDER_CONV2D (register_adder.cc, custom TFLite builds).
#ifndef KERAS_PKKD_EXPORT_TFLITE_ADDER_KERNEL_H_
#define KERAS_PKKD_EXPORT_TFLITE_ADDER_KERNEL_H_

#include <cstddef>
#include <string>

#include "adder_core.h"
#include "adder_int8.h"
#include "adder_options.h"
#include "tflite_abi.h"

namespace pkkd {

class ThreadPool;

// The custom op's name in the model's operator codes.
constexpr char kAdderCustomName[] = "AdderConv2D";

struct AdderNode {
  AdderOptions options;
  std::string init_error;  // non-empty: the options could not be parsed
  AdderGeometry geometry;  // set by AdderPrepare
  int input = -1, filter = -1, output = -1;  // tensor indices, set by AdderPrepare
  // A constant filter (the exported models' case) is packed once, in AdderPrepare.
  AdderPackedFilter packed;
  const void* packed_from = nullptr;  // the filter data `packed` was made from
  // int8 (set by AdderPrepare when x is int8).
  bool int8 = false;
  int scale = -1, offset = -1;  // tensor indices of the affine, -1 without one
  AdderInt8Filter packed8;
  AdderInt8Requant requant;
};

// Bytes of one element of the node's x and y (4 float32, 1 int8); valid after AdderPrepare.
inline int AdderElementBytes(const AdderNode* node) { return node->int8 ? 1 : 4; }

// Parses the options; never fails (an unusable buffer is remembered in init_error and reported
// by AdderPrepare, where the context can say which node it is).
AdderNode* AdderInit(const void* buffer, size_t length);
void AdderFree(AdderNode* node);

// `inputs` / `outputs`: the node's tensor indices.
TfLiteStatus AdderPrepare(TfLiteContext* context, AdderNode* node, const TfLiteIntArray* inputs,
                          const TfLiteIntArray* outputs);
// Requires a successful AdderPrepare with the same tensors. `x_data` / `y_data`, when not
// null, replace the tensors' own buffers (the delegate keeps tensors internal to a partition
// in its own memory: the runtime allocates none for them); their element type is the node's.
TfLiteStatus AdderEval(TfLiteContext* context, const AdderNode* node, ThreadPool* pool,
                       const void* x_data = nullptr, void* y_data = nullptr);

}  // namespace pkkd

#endif  // KERAS_PKKD_EXPORT_TFLITE_ADDER_KERNEL_H_
