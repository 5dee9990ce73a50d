// Options of one AdderConv2D node of a .tflite model, read from its custom_options: a
// flexbuffer map written by keras_pkkd.export (keras_pkkd/export/converter.py):
//
//   {"stride_h": int, "stride_w": int, "dilation_h": int, "dilation_w": int,
//    "padding": "SAME" | "VALID", "version": 1}
//
// The reader is self-contained and checks every offset against the buffer's bounds: a corrupt
// or hostile buffer yields an error message, never a read outside the buffer.
#ifndef KERAS_PKKD_EXPORT_TFLITE_ADDER_OPTIONS_H_
#define KERAS_PKKD_EXPORT_TFLITE_ADDER_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace pkkd {

struct AdderOptions {
  int64_t stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  bool same_padding = false;
};

// The options format this kernel reads (the "version" key of the map).
constexpr int64_t kAdderOptionsVersion = 1;

// Parses `data[0, size)`. On failure returns false and sets *error to a message naming the
// problem (missing key, bad value, corrupt buffer).
bool ParseAdderOptions(const uint8_t* data, size_t size, AdderOptions* options,
                       std::string* error);

}  // namespace pkkd

#endif  // KERAS_PKKD_EXPORT_TFLITE_ADDER_OPTIONS_H_
