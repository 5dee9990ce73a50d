// int8 inference of the adder (L1-distance) convolution: the compute behind the int8 version
// of the AdderConv2D custom op (version 2). Scheme (docs/export.md, "int8"):
//
//   x  int8, per-tensor scale s_x and zero point z_x (padded taps read z_x, the real 0)
//   w  int8 on the SAME scale and zero point as x: w_real = s_x (q_w - z_x). An L1 distance
//      needs both operands on one grid: |x - w| = s_x |q_x - q_w|.
//   b  int32 per output channel, in accumulator units: the part of sum |x - w| the int8 grid
//      cannot hold (filter values beyond the input's range are clamped; for those
//      |x - w| = |x - w_clamped| + |w_clamped - w| for every representable x, so the excess is
//      an input-independent constant, added here exactly up to one rounding).
//   acc[t] = sum_{i,j,c} |q_x - q_w| + b[t]          (int64 in the requantization)
//   q_y    = clamp(z_y - ((acc * M + 2^(shift-1)) >> shift), -128, 127)
//            with M * 2^-shift = s_x / s_y (the adder's output is -s_x * acc).
//
// The sum of absolute byte differences is what x86's psadbw (8 bytes per 64-bit lane, AVX2 and
// AVX-512BW) and aarch64's uabal compute; both work on unsigned bytes, so values are stored
// as q + 128 (which keeps every difference). No TensorFlow or TFLite headers.
#ifndef KERAS_PKKD_EXPORT_TFLITE_ADDER_INT8_H_
#define KERAS_PKKD_EXPORT_TFLITE_ADDER_INT8_H_

#include <cstdint>
#include <string>
#include <vector>

#include "adder_core.h"

namespace pkkd {

enum class Int8Isa { kAuto = 0, kScalar = 1, kAvx2 = 2, kAvx512 = 3, kNeon = 4 };

// The best version this CPU runs (KERAS_PKKD_ISA=scalar|avx2 caps it, as for float).
Int8Isa Int8BestIsa();
const char* Int8IsaName(Int8Isa isa);
// Whether this CPU and build can run `isa` (kAuto: always).
bool Int8IsaAvailable(Int8Isa isa);

// The requantization constants. FromScales fails (returns false, says why in *error) on
// non-positive or non-finite scales, zero points outside [-128, 127] or a ratio s_x / s_y
// that the 31-bit multiplier cannot represent (shift outside [1, 62]).
struct AdderInt8Requant {
  int32_t input_zero_point = 0, output_zero_point = 0;
  int64_t multiplier = 0;  // in [2^30, 2^31]
  int shift = 0;           // in [1, 62]
  static bool FromScales(double input_scale, int input_zero_point, double output_scale,
                         int output_zero_point, AdderInt8Requant* out, std::string* error);
};

// The filter (HWIO int8) stored per output channel as q + 128, the taps (i, j, c) contiguous
// and zero-filled up to a multiple of the version's vector width.
struct AdderInt8Filter {
  std::vector<uint8_t> data;  // [out_c][k_pad]
  int64_t k = 0, k_pad = 0, k_h = -1, k_w = -1, in_c = -1, out_c = -1;
  Int8Isa isa = Int8Isa::kScalar;
};

// isa kAuto: Int8BestIsa(). Returns false when `isa` cannot run here.
bool AdderInt8PackFilter(const AdderGeometry& g, const int8_t* w, Int8Isa isa,
                         AdderInt8Filter* packed);

// y (int8 NHWC) from x (int8 NHWC), the packed filter and bias (int32 [out_c]). Returns false
// (computing nothing) when `packed` does not fit g.
bool AdderInt8Forward(const AdderGeometry& g, const int8_t* x, const AdderInt8Filter& packed,
                      const int32_t* bias, const AdderInt8Requant& rq, int8_t* y,
                      const ParallelFor& parallel_for);

}  // namespace pkkd

#endif  // KERAS_PKKD_EXPORT_TFLITE_ADDER_INT8_H_
