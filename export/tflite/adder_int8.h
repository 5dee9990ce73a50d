// int8 inference of the adder (L1-distance) convolution: the compute behind the int8 version
// of the AdderConv2D custom op (version 2). Scheme (docs/export.md, "int8"):
//
//   x  int8, per-tensor scale s_x and zero point z_x (padded taps read z_x, the real 0)
//   w  int8 on the SAME scale and zero point as x: w_real = s_x (q_w - z_x). An L1 distance
//      needs both operands on one grid: |x - w| = s_x |q_x - q_w|.
//      Filter values beyond the input's range are clamped by the exporter; for those
//      |x - w| = |x - w_clamped| + |w_clamped - w| for every representable x, so what the
//      grid cannot hold is an input-independent constant per output channel, which the
//      exporter moves into the offset o (keras_pkkd/export/quantize.py).
//   a, o  float per output channel: the affine after the adder (a BatchNormalization folded
//      by the exporter; 1 and 0 without one), then the activation (NONE, RELU, RELU6).
//
//   acc[t] = sum_{i,j,c} |q_x - q_w|                               (exact, int32)
//   real   = a[t] * (-s_x * acc[t]) + o[t]
//   q_y    = clamp(z_y + O[t] - ((acc[t] * M[t] + 2^(S[t]-1)) >> S[t]), lo, hi)
//            M[t] * 2^-S[t] = a[t] s_x / s_y (M signed, |M| in [2^30, 2^31]; 0 when the
//            ratio is below 2^-31), O[t] = round(o[t] / s_y), [lo, hi] the activation's range
//            on the output grid.
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
#include "adder_options.h"

namespace pkkd {

enum class Int8Isa { kAuto = 0, kScalar = 1, kAvx2 = 2, kAvx512 = 3, kNeon = 4 };

// The best version this CPU runs (KERAS_PKKD_ISA=scalar|avx2 caps it, as for float).
Int8Isa Int8BestIsa();
const char* Int8IsaName(Int8Isa isa);
// Whether this CPU and build can run `isa` (kAuto: always).
bool Int8IsaAvailable(Int8Isa isa);

// The requantization constants, per output channel. Make fails (returns false, says why in
// *error) on non-positive or non-finite scales, non-finite affine values, zero points outside
// [-128, 127], or a ratio |a s_x / s_y| above 2^30.
struct AdderInt8Requant {
  int32_t input_zero_point = 0, output_zero_point = 0;
  int32_t lo = -128, hi = 127;  // the activation's range on the output grid
  // Per output channel, zero-padded to a multiple of 16 channels (the vector kernels read
  // whole vectors): M (signed), the shift S, 2^(S-1), and z_y + O.
  std::vector<int64_t> multiplier, shift, half, base;
  int64_t out_c = 0;
  static bool Make(double input_scale, int input_zero_point, double output_scale,
                   int output_zero_point, const float* scale, const float* offset, int64_t out_c,
                   AdderActivation activation, AdderInt8Requant* out, std::string* error);
};

// The filter (HWIO int8) as q + 128, in the layout of one kernel version:
//   rows (scalar, NEON): [out_c rounded up to 4][k_pad], taps (i, j, c) contiguous, zero
//     tail up to k_pad (a multiple of 16);
//   groups (AVX2: 4 filters, AVX-512: 8 filters per group): [group][step][filter][8 bytes],
//     the taps in 8-byte steps (k_pad = 8 * steps), groups rounded up to an even count; a
//     psadbw of one broadcast 8-byte input step against a group gives every filter's partial
//     sum in its own 64-bit lane, so no horizontal sums are needed.
struct AdderInt8Filter {
  std::vector<uint8_t> data;
  int64_t k = 0, k_pad = 0, k_h = -1, k_w = -1, in_c = -1, out_c = -1;
  int lanes = 0;  // filters per group; 0: the rows layout
  int64_t groups = 0;
  Int8Isa isa = Int8Isa::kScalar;
};

// isa kAuto: Int8BestIsa(). Returns false when `isa` cannot run here.
bool AdderInt8PackFilter(const AdderGeometry& g, const int8_t* w, Int8Isa isa,
                         AdderInt8Filter* packed);

// y (int8 NHWC) from x (int8 NHWC) and the packed filter. Returns false (computing nothing)
// when `packed` or `rq` do not fit g, or the window k_h * k_w * C exceeds 2^21 bytes.
bool AdderInt8Forward(const AdderGeometry& g, const int8_t* x, const AdderInt8Filter& packed,
                      const AdderInt8Requant& rq, int8_t* y, const ParallelFor& parallel_for);

}  // namespace pkkd

#endif  // KERAS_PKKD_EXPORT_TFLITE_ADDER_INT8_H_
