// Options of one AdderConv2D node of a .tflite model, read from its custom_options: a
// flexbuffer map written by keras_pkkd.export (keras_pkkd/export/converter.py):
//
//   {"stride_h": int, "stride_w": int, "dilation_h": int, "dilation_w": int,
//    "padding": "SAME" | "VALID" | "EXPLICIT", "version": 1}
// and, with "EXPLICIT" only, "pad_top", "pad_bottom", "pad_left", "pad_right": int in [0, 1024]
// (zero rows / columns around the input: a ZeroPadding2D folded into the op by the exporter);
// optionally "activation": "NONE" | "RELU" | "RELU6" (default NONE), applied after the
// per-channel affine of the node's optional scale / offset inputs (adder_kernel.h).
//
// The reader is self-contained and checks every offset against the buffer's bounds: a corrupt
// or hostile buffer yields an error message, never a read outside the buffer.
#ifndef KERAS_PKKD_EXPORT_TFLITE_ADDER_OPTIONS_H_
#define KERAS_PKKD_EXPORT_TFLITE_ADDER_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace pkkd {

enum class AdderActivation { kNone = 0, kRelu = 1, kRelu6 = 2 };

struct AdderOptions {
  int64_t stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  bool same_padding = false;
  bool explicit_padding = false;  // then the pads below apply (else they are 0)
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  AdderActivation activation = AdderActivation::kNone;
};

// The options format this kernel reads (the "version" key of the map).
constexpr int64_t kAdderOptionsVersion = 1;

// Parses `data[0, size)`. On failure returns false and sets *error to a message naming the
// problem (missing key, bad value, corrupt buffer).
bool ParseAdderOptions(const uint8_t* data, size_t size, AdderOptions* options,
                       std::string* error);

}  // namespace pkkd

#endif  // KERAS_PKKD_EXPORT_TFLITE_ADDER_OPTIONS_H_
