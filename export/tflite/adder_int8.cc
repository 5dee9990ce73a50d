// int8 adder convolution (adder_int8.h): the scalar reference, an AVX2 and an AVX-512BW
// version (vpsadbw) on x86-64, a NEON version (uabal) on aarch64.
//
// The x86 versions are compiled with function-level target attributes, so this file builds
// with the baseline flags and the version is picked at run time (no -march needed).
//
// Work: for a tile of MR output pixels, each pixel's receptive field is copied once into a
// "patch" (taps (i, j, c) contiguous, as q + 128; padded taps hold z_x + 128; zero tail up to
// k_pad). A micro-kernel then computes the MR x 4 sums of absolute differences between the
// patches and 4 packed filter rows, the x vector loaded once per 4 filters and each filter
// vector once per MR pixels. Filters are padded to a multiple of 4 rows and the last tile
// repeats its last pixel, so every call is a full tile; padded results are dropped.
#include "adder_int8.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace pkkd {
namespace {

constexpr int kNr = 4;  // filter rows per micro-kernel call

// Sum of absolute differences of MR patches against 4 filter rows: out[p * 4 + t].
using SadTile = void (*)(const uint8_t* const* xs, const uint8_t* w, int64_t k_pad,
                         int32_t* out);

void SadScalar(const uint8_t* const* xs, const uint8_t* w, int64_t k_pad, int32_t* out) {
  for (int t = 0; t < kNr; ++t) {
    const uint8_t* wt = w + t * k_pad;
    int32_t s = 0;
    for (int64_t k = 0; k < k_pad; ++k) s += std::abs(int32_t{xs[0][k]} - int32_t{wt[k]});
    out[t] = s;
  }
}

#if defined(__x86_64__)
#define PKKD_UNROLL_ALL _Pragma("GCC unroll 16")

__attribute__((target("avx2"))) void SadAvx2(const uint8_t* const* xs, const uint8_t* w,
                                             int64_t k_pad, int32_t* out) {
  constexpr int kMr = 2;
  __m256i acc[kMr][kNr];
  PKKD_UNROLL_ALL
  for (int p = 0; p < kMr; ++p) {
    PKKD_UNROLL_ALL
    for (int t = 0; t < kNr; ++t) acc[p][t] = _mm256_setzero_si256();
  }
  for (int64_t k = 0; k < k_pad; k += 32) {
    __m256i xv[kMr];
    PKKD_UNROLL_ALL
    for (int p = 0; p < kMr; ++p) {
      xv[p] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs[p] + k));
    }
    PKKD_UNROLL_ALL
    for (int t = 0; t < kNr; ++t) {
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + t * k_pad + k));
      PKKD_UNROLL_ALL
      for (int p = 0; p < kMr; ++p) {
        acc[p][t] = _mm256_add_epi32(acc[p][t], _mm256_sad_epu8(xv[p], wv));
      }
    }
  }
  // Each 64-bit lane holds a 16-bit sum: the low 32-bit halves are the whole value.
  PKKD_UNROLL_ALL
  for (int p = 0; p < kMr; ++p) {
    PKKD_UNROLL_ALL
    for (int t = 0; t < kNr; ++t) {
      const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc[p][t]),
                                      _mm256_extracti128_si256(acc[p][t], 1));
      out[p * kNr + t] = _mm_cvtsi128_si32(s) + _mm_extract_epi32(s, 2);
    }
  }
}

__attribute__((target("avx512f,avx512bw"))) void SadAvx512(const uint8_t* const* xs,
                                                           const uint8_t* w, int64_t k_pad,
                                                           int32_t* out) {
  constexpr int kMr = 4;
  __m512i acc[kMr][kNr];
  PKKD_UNROLL_ALL
  for (int p = 0; p < kMr; ++p) {
    PKKD_UNROLL_ALL
    for (int t = 0; t < kNr; ++t) acc[p][t] = _mm512_setzero_si512();
  }
  for (int64_t k = 0; k < k_pad; k += 64) {
    __m512i wv[kNr];
    PKKD_UNROLL_ALL
    for (int t = 0; t < kNr; ++t) wv[t] = _mm512_loadu_si512(w + t * k_pad + k);
    PKKD_UNROLL_ALL
    for (int p = 0; p < kMr; ++p) {
      const __m512i xv = _mm512_loadu_si512(xs[p] + k);
      PKKD_UNROLL_ALL
      for (int t = 0; t < kNr; ++t) {
        acc[p][t] = _mm512_add_epi64(acc[p][t], _mm512_sad_epu8(xv, wv[t]));
      }
    }
  }
  PKKD_UNROLL_ALL
  for (int p = 0; p < kMr; ++p) {
    PKKD_UNROLL_ALL
    for (int t = 0; t < kNr; ++t) {
      // (Not _mm512_reduce_add_epi64: gcc 12 flags its undefined upper half as uninitialized.)
      alignas(64) int64_t lanes[8];
      _mm512_store_si512(lanes, acc[p][t]);
      int64_t sum = 0;
      for (int l = 0; l < 8; ++l) sum += lanes[l];
      out[p * kNr + t] = static_cast<int32_t>(sum);
    }
  }
}
#undef PKKD_UNROLL_ALL
#endif  // __x86_64__

#if defined(__aarch64__)
void SadNeon(const uint8_t* const* xs, const uint8_t* w, int64_t k_pad, int32_t* out) {
  constexpr int kMr = 2;
  // uabal / uabal2 add two differences (<= 255 each) to every 16-bit lane per 16 bytes: 128
  // steps stay below 65535; then the lanes are widened into 32-bit sums.
  constexpr int64_t kSpan = 16 * 128;
  uint32x4_t acc32[kMr][kNr];
  for (int p = 0; p < kMr; ++p)
    for (int t = 0; t < kNr; ++t) acc32[p][t] = vdupq_n_u32(0);
  for (int64_t k0 = 0; k0 < k_pad; k0 += kSpan) {
    const int64_t k1 = std::min(k_pad, k0 + kSpan);
    uint16x8_t acc[kMr][kNr];
    for (int p = 0; p < kMr; ++p)
      for (int t = 0; t < kNr; ++t) acc[p][t] = vdupq_n_u16(0);
    for (int64_t k = k0; k < k1; k += 16) {
      uint8x16_t xv[kMr];
      for (int p = 0; p < kMr; ++p) xv[p] = vld1q_u8(xs[p] + k);
      for (int t = 0; t < kNr; ++t) {
        const uint8x16_t wv = vld1q_u8(w + t * k_pad + k);
        for (int p = 0; p < kMr; ++p) {
          acc[p][t] = vabal_u8(acc[p][t], vget_low_u8(xv[p]), vget_low_u8(wv));
          acc[p][t] = vabal_high_u8(acc[p][t], xv[p], wv);
        }
      }
    }
    for (int p = 0; p < kMr; ++p)
      for (int t = 0; t < kNr; ++t) acc32[p][t] = vpadalq_u16(acc32[p][t], acc[p][t]);
  }
  for (int p = 0; p < kMr; ++p)
    for (int t = 0; t < kNr; ++t) out[p * kNr + t] = static_cast<int32_t>(vaddvq_u32(acc32[p][t]));
}
#endif  // __aarch64__

struct IsaInfo {
  SadTile sad;
  int mr;         // pixels per tile
  int64_t align;  // k_pad multiple (the vector width in bytes)
};

bool Info(Int8Isa isa, IsaInfo* info) {
  switch (isa) {
    case Int8Isa::kScalar: *info = {SadScalar, 1, 16}; return true;
#if defined(__x86_64__)
    case Int8Isa::kAvx2: *info = {SadAvx2, 2, 32}; return Int8IsaAvailable(isa);
    case Int8Isa::kAvx512: *info = {SadAvx512, 4, 64}; return Int8IsaAvailable(isa);
#endif
#if defined(__aarch64__)
    case Int8Isa::kNeon: *info = {SadNeon, 2, 16}; return true;
#endif
    default: return false;
  }
}

Int8Isa DetectBest() {
  Int8Isa best = Int8Isa::kScalar;
#if defined(__aarch64__)
  best = Int8Isa::kNeon;
#endif
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) best = Int8Isa::kAvx2;
  if (best == Int8Isa::kAvx2 && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw")) {
    best = Int8Isa::kAvx512;
  }
#endif
  const char* cap = std::getenv("KERAS_PKKD_ISA");
  if (cap != nullptr) {
    if (std::strcmp(cap, "scalar") == 0) best = Int8Isa::kScalar;
    if (std::strcmp(cap, "avx2") == 0 && best == Int8Isa::kAvx512) best = Int8Isa::kAvx2;
  }
  return best;
}

inline int8_t Requantize(int64_t acc, const AdderInt8Requant& rq, int64_t t) {
  const int shift = rq.shift[t];
  const int64_t r = (acc * rq.multiplier[t] + (int64_t{1} << (shift - 1))) >> shift;
  const int64_t q = int64_t{rq.output_zero_point} + rq.offset[t] - r;
  return static_cast<int8_t>(std::min<int64_t>(rq.hi, std::max<int64_t>(rq.lo, q)));
}

}  // namespace

Int8Isa Int8BestIsa() {
  static const Int8Isa best = DetectBest();
  return best;
}

const char* Int8IsaName(Int8Isa isa) {
  switch (isa) {
    case Int8Isa::kScalar: return "scalar";
    case Int8Isa::kAvx2: return "avx2";
    case Int8Isa::kAvx512: return "avx512";
    case Int8Isa::kNeon: return "neon";
    default: return "auto";
  }
}

bool Int8IsaAvailable(Int8Isa isa) {
  switch (isa) {
    case Int8Isa::kAuto:
    case Int8Isa::kScalar: return true;
#if defined(__x86_64__)
    case Int8Isa::kAvx2:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2");
    case Int8Isa::kAvx512:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
#endif
#if defined(__aarch64__)
    case Int8Isa::kNeon: return true;
#endif
    default: return false;
  }
}

bool AdderInt8Requant::Make(double input_scale, int input_zero_point, double output_scale,
                            int output_zero_point, const float* scale, const float* offset,
                            int64_t out_c, AdderActivation activation, AdderInt8Requant* out,
                            std::string* error) {
  if (!(input_scale > 0) || !std::isfinite(input_scale) || !(output_scale > 0) ||
      !std::isfinite(output_scale)) {
    *error = "scales must be positive and finite (input " + std::to_string(input_scale) +
             ", output " + std::to_string(output_scale) + ")";
    return false;
  }
  if (input_zero_point < -128 || input_zero_point > 127 || output_zero_point < -128 ||
      output_zero_point > 127) {
    *error = "int8 zero points must lie in [-128, 127] (input " +
             std::to_string(input_zero_point) + ", output " + std::to_string(output_zero_point) +
             ")";
    return false;
  }
  AdderInt8Requant rq;
  rq.input_zero_point = input_zero_point;
  rq.output_zero_point = output_zero_point;
  if (activation != AdderActivation::kNone) rq.lo = std::max(-128, output_zero_point);
  if (activation == AdderActivation::kRelu6) {
    const double six = std::floor(6.0 / output_scale + 0.5) + output_zero_point;
    rq.hi = static_cast<int32_t>(std::min(127.0, std::max(-128.0, six)));
  }
  rq.multiplier.resize(out_c);
  rq.shift.resize(out_c);
  rq.offset.resize(out_c);
  for (int64_t t = 0; t < out_c; ++t) {
    const double a = scale[t], o = offset[t];
    if (!std::isfinite(a) || !std::isfinite(o)) {
      *error = "channel " + std::to_string(t) + " has a non-finite scale or offset";
      return false;
    }
    const double ratio = a * input_scale / output_scale;
    int exponent = 0;
    const double fraction = std::frexp(std::fabs(ratio), &exponent);  // |ratio| = f * 2^e
    int64_t multiplier = static_cast<int64_t>(std::floor(fraction * 2147483648.0 + 0.5));
    if (multiplier == (int64_t{1} << 31)) {
      multiplier >>= 1;
      ++exponent;
    }
    int shift = 31 - exponent;
    if (!std::isfinite(ratio) || shift < 1) {
      *error = "channel " + std::to_string(t) + ": the scale ratio a * input / output = " +
               std::to_string(ratio) + " is above what the requantization represents (2^30)";
      return false;
    }
    if (ratio == 0 || shift > 62) {  // below 2^-31: less than 2^-31 of a step per unit of acc
      multiplier = 0;
      shift = 1;
    }
    rq.multiplier[t] = ratio < 0 ? -multiplier : multiplier;
    rq.shift[t] = shift;
    const double q_offset = std::floor(o / output_scale + 0.5);
    rq.offset[t] = static_cast<int32_t>(std::min(16777216.0, std::max(-16777216.0, q_offset)));
  }
  *out = std::move(rq);
  return true;
}

bool AdderInt8PackFilter(const AdderGeometry& g, const int8_t* w, Int8Isa isa,
                         AdderInt8Filter* packed) {
  if (isa == Int8Isa::kAuto) isa = Int8BestIsa();
  IsaInfo info;
  if (!Info(isa, &info)) return false;
  const int64_t k = g.k_h * g.k_w * g.in_c;
  const int64_t k_pad = (k + info.align - 1) / info.align * info.align;
  const int64_t rows = (g.out_c + kNr - 1) / kNr * kNr;
  packed->data.assign(static_cast<size_t>(rows * k_pad), 0);
  // HWIO: w[(tap * in_c + c) * out_c + t]; packed[t][tap * in_c + c].
  for (int64_t tap_c = 0; tap_c < k; ++tap_c) {
    const int8_t* src = w + tap_c * g.out_c;
    for (int64_t t = 0; t < g.out_c; ++t) {
      packed->data[static_cast<size_t>(t * k_pad + tap_c)] =
          static_cast<uint8_t>(static_cast<uint8_t>(src[t]) ^ 0x80u);
    }
  }
  packed->k = k;
  packed->k_pad = k_pad;
  packed->k_h = g.k_h;
  packed->k_w = g.k_w;
  packed->in_c = g.in_c;
  packed->out_c = g.out_c;
  packed->isa = isa;
  return true;
}

bool AdderInt8Forward(const AdderGeometry& g, const int8_t* x, const AdderInt8Filter& packed,
                      const AdderInt8Requant& rq, int8_t* y, const ParallelFor& parallel_for) {
  IsaInfo info;
  if (packed.k_h != g.k_h || packed.k_w != g.k_w || packed.in_c != g.in_c ||
      packed.out_c != g.out_c || static_cast<int64_t>(rq.multiplier.size()) != g.out_c ||
      !Info(packed.isa, &info)) {
    return false;
  }
  const int mr = info.mr;
  const int64_t k_pad = packed.k_pad, c = g.in_c, out_c = g.out_c;
  const int64_t pixels = g.batch * g.out_h * g.out_w;
  const int64_t tiles = (pixels + mr - 1) / mr;
  const uint8_t pad_value = static_cast<uint8_t>(static_cast<uint8_t>(rq.input_zero_point) ^ 0x80u);
  const int64_t rows = (out_c + kNr - 1) / kNr * kNr;
  const int64_t cost = mr * (k_pad + rows * k_pad / 8);
  parallel_for(tiles, cost, [&](int64_t begin, int64_t end) {
    thread_local std::vector<uint8_t> buffer;
    if (buffer.size() < static_cast<size_t>(mr * k_pad)) buffer.assign(mr * k_pad, 0);
    const uint8_t* xs[4];
    int32_t sums[4 * kNr];
    for (int64_t tile = begin; tile < end; ++tile) {
      int64_t pix[4];
      for (int p = 0; p < mr; ++p) {
        pix[p] = std::min(tile * mr + p, pixels - 1);
        uint8_t* patch = buffer.data() + p * k_pad;
        xs[p] = patch;
        const int64_t n = pix[p] / (g.out_h * g.out_w);
        const int64_t oh = pix[p] / g.out_w % g.out_h, ow = pix[p] % g.out_w;
        for (int64_t i = 0; i < g.k_h; ++i) {
          const int64_t h = oh * g.stride_h - g.pad_top + i * g.dil_h;
          for (int64_t j = 0; j < g.k_w; ++j) {
            const int64_t wc = ow * g.stride_w - g.pad_left + j * g.dil_w;
            uint8_t* dst = patch + (i * g.k_w + j) * c;
            if (h < 0 || h >= g.in_h || wc < 0 || wc >= g.in_w) {
              std::memset(dst, pad_value, static_cast<size_t>(c));
            } else {
              const int8_t* src = x + ((n * g.in_h + h) * g.in_w + wc) * c;
              for (int64_t k = 0; k < c; ++k) {
                dst[k] = static_cast<uint8_t>(static_cast<uint8_t>(src[k]) ^ 0x80u);
              }
            }
          }
        }
        std::memset(patch + packed.k, 0, static_cast<size_t>(k_pad - packed.k));
      }
      const int valid = static_cast<int>(std::min<int64_t>(mr, pixels - tile * mr));
      for (int64_t t0 = 0; t0 < rows; t0 += kNr) {
        info.sad(xs, packed.data.data() + t0 * k_pad, k_pad, sums);
        const int nt = static_cast<int>(std::min<int64_t>(kNr, out_c - t0));
        for (int p = 0; p < valid; ++p) {
          int8_t* out = y + pix[p] * out_c + t0;
          for (int t = 0; t < nt; ++t) {
            out[t] = Requantize(sums[p * kNr + t], rq, t0 + t);
          }
        }
      }
    }
  });
  return true;
}

}  // namespace pkkd
