// int8 adder convolution (adder_int8.h): the scalar reference, an AVX2 and an AVX-512BW
// version (vpsadbw) on x86-64, a NEON version (uabal) on aarch64.
//
// The x86 versions are compiled with function-level target attributes, so this file builds
// with the baseline flags and the version is picked at run time (no -march needed).
//
// x86 (the groups layout of adder_int8.h): a register tile of 4 output pixels x 2 filter
// groups; per 8-byte step of the window, one broadcast of each pixel's 8 input bytes and one
// load of each group, then a psadbw + add per (pixel, group) accumulates 8 (AVX-512) or 4
// (AVX2) outputs in 64-bit lanes. The input is read in place from a padded copy (q + 128,
// borders z_x + 128) made once per call when C is a multiple of 8; else each pixel's window
// is first copied into a "patch". AVX-512 requantizes the lanes with vector int64 arithmetic
// and stores them with a narrowing masked store.
//
// Scalar and NEON (the rows layout): each pixel's window is copied into a patch, and a
// micro-kernel sums |patch - filter row| for MR pixels x 4 rows (uabal on NEON, widening the
// 16-bit lanes before they can overflow).
#include "adder_int8.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>

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

Int8Isa DetectBest() {
  Int8Isa best = Int8Isa::kScalar;
#if defined(__aarch64__)
  best = Int8Isa::kNeon;
#endif
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) best = Int8Isa::kAvx2;
  if (best == Int8Isa::kAvx2 && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")) {
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

// The largest window k_h * k_w * C: sums stay below 2^29 (AVX2's requantization needs it).
constexpr int64_t kMaxWindow = int64_t{1} << 21;

inline int8_t Requantize(int64_t acc, const AdderInt8Requant& rq, int64_t t) {
  const int64_t r = (acc * rq.multiplier[t] + rq.half[t]) >> rq.shift[t];
  const int64_t q = rq.base[t] - r;
  return static_cast<int8_t>(std::min<int64_t>(rq.hi, std::max<int64_t>(rq.lo, q)));
}

// ----- x86: groups layout --------------------------------------------------------------------

// Work below this many cycles runs on the calling thread: waking a sleeping worker of the
// pool costs tens of microseconds here, more than half of a batch-1 ResNet-20 layer in int8
// (measured with benchmarks/bench_tflite_int8.py: 2 threads were 1.8x slower than 1 thread
// on every layer before this cut-off).
constexpr int64_t kMinParallelCycles = 400000;

void RunTiles(const ParallelFor& parallel_for, int64_t tiles, int64_t cost,
              const std::function<void(int64_t, int64_t)>& fn) {
  if (tiles * cost < kMinParallelCycles) {
    if (tiles > 0) fn(0, tiles);
  } else {
    parallel_for(tiles, cost, fn);
  }
}

#if defined(__x86_64__)
constexpr int kTileP = 4;  // output pixels per tile
constexpr int kTileG = 2;  // filter groups per tile

// Where a tile's input bytes are: base[p] + offsets[s] holds pixel p's 8 bytes of step s.
struct TileInput {
  const uint8_t* base[kTileP];
  const int64_t* offsets;
  int64_t steps;
};

inline uint64_t Load8(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

using GroupTile = void (*)(const TileInput&, const uint8_t*, int64_t, const AdderInt8Requant&,
                           int64_t, int, int64_t, int8_t* const*);

// gcc 12 reports its own intrinsics' deliberately undefined upper halves (_mm*_undefined_*)
// as uninitialized; nothing here reads an undefined value.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
__attribute__((target("avx512f,avx512bw,avx512dq"))) void TileAvx512(
    const TileInput& in, const uint8_t* w, int64_t group_stride, const AdderInt8Requant& rq,
    int64_t t0, int valid, int64_t out_c, int8_t* const* out) {
  __m512i acc[kTileP][kTileG];
  for (int p = 0; p < kTileP; ++p)
    for (int g = 0; g < kTileG; ++g) acc[p][g] = _mm512_setzero_si512();
  const uint8_t* w1 = w + group_stride;
  for (int64_t s = 0; s < in.steps; ++s) {
    const __m512i w0v = _mm512_loadu_si512(w + s * 64);
    const __m512i w1v = _mm512_loadu_si512(w1 + s * 64);
    const int64_t off = in.offsets[s];
    for (int p = 0; p < kTileP; ++p) {
      const __m512i xv = _mm512_set1_epi64(static_cast<long long>(Load8(in.base[p] + off)));
      acc[p][0] = _mm512_add_epi64(acc[p][0], _mm512_sad_epu8(xv, w0v));
      acc[p][1] = _mm512_add_epi64(acc[p][1], _mm512_sad_epu8(xv, w1v));
    }
  }
  const __m512i lo = _mm512_set1_epi64(rq.lo), hi = _mm512_set1_epi64(rq.hi);
  for (int g = 0; g < kTileG; ++g) {
    const int64_t t = t0 + g * 8;
    if (t >= out_c) break;
    const __mmask8 mask =
        static_cast<__mmask8>(out_c - t >= 8 ? 0xFF : (1u << (out_c - t)) - 1);
    const __m512i m = _mm512_loadu_si512(rq.multiplier.data() + t);
    const __m512i sh = _mm512_loadu_si512(rq.shift.data() + t);
    const __m512i half = _mm512_loadu_si512(rq.half.data() + t);
    const __m512i base = _mm512_loadu_si512(rq.base.data() + t);
    for (int p = 0; p < valid; ++p) {
      const __m512i prod = _mm512_mullo_epi64(acc[p][g], m);
      const __m512i r = _mm512_srav_epi64(_mm512_add_epi64(prod, half), sh);
      const __m512i q = _mm512_min_epi64(_mm512_max_epi64(_mm512_sub_epi64(base, r), lo), hi);
      _mm512_mask_cvtepi64_storeu_epi8(out[p] + t, mask, q);
    }
  }
}

__attribute__((target("avx2"))) void TileAvx2(const TileInput& in, const uint8_t* w,
                                              int64_t group_stride, const AdderInt8Requant& rq,
                                              int64_t t0, int valid, int64_t out_c,
                                              int8_t* const* out) {
  __m256i acc[kTileP][kTileG];
  for (int p = 0; p < kTileP; ++p)
    for (int g = 0; g < kTileG; ++g) acc[p][g] = _mm256_setzero_si256();
  const uint8_t* w1 = w + group_stride;
  for (int64_t s = 0; s < in.steps; ++s) {
    const __m256i w0v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + s * 32));
    const __m256i w1v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w1 + s * 32));
    const int64_t off = in.offsets[s];
    for (int p = 0; p < kTileP; ++p) {
      const __m256i xv = _mm256_set1_epi64x(static_cast<long long>(Load8(in.base[p] + off)));
      acc[p][0] = _mm256_add_epi64(acc[p][0], _mm256_sad_epu8(xv, w0v));
      acc[p][1] = _mm256_add_epi64(acc[p][1], _mm256_sad_epu8(xv, w1v));
    }
  }
  // Requantization, 4 lanes at a time. acc < 2^29 (the kernel limits the window to 2^21
  // bytes) and |M| <= 2^31, so v = acc * M + 2^(S-1) lies within +-2^62, and
  // floor(v / 2^S) = ((v + 2^62) >>> S) - 2^(62-S): AVX2 has no arithmetic 64-bit shift.
  const __m256i lo = _mm256_set1_epi64x(rq.lo), hi = _mm256_set1_epi64x(rq.hi);
  const __m256i bias = _mm256_set1_epi64x(int64_t{1} << 62);
  // Byte 0 of each 64-bit lane to the low 4 bytes of each 128-bit half.
  const __m256i gather = _mm256_setr_epi8(0, 8, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                          -1, -1, 0, 8, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                          -1, -1, -1, -1);
  for (int g = 0; g < kTileG; ++g) {
    const int64_t t = t0 + g * 4;
    if (t >= out_c) break;
    const int64_t n = std::min<int64_t>(4, out_c - t);
    const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rq.multiplier.data() + t));
    const __m256i sh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rq.shift.data() + t));
    const __m256i half = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rq.half.data() + t));
    const __m256i base = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rq.base.data() + t));
    const __m256i corr = _mm256_srlv_epi64(bias, sh);  // 2^(62-S)
    for (int p = 0; p < valid; ++p) {
      const __m256i v = _mm256_add_epi64(_mm256_mul_epi32(acc[p][g], m), half);
      const __m256i r = _mm256_sub_epi64(_mm256_srlv_epi64(_mm256_add_epi64(v, bias), sh), corr);
      __m256i q = _mm256_sub_epi64(base, r);
      q = _mm256_blendv_epi8(q, lo, _mm256_cmpgt_epi64(lo, q));
      q = _mm256_blendv_epi8(q, hi, _mm256_cmpgt_epi64(q, hi));
      const __m256i bytes = _mm256_shuffle_epi8(q, gather);
      const uint32_t packed =
          static_cast<uint32_t>(_mm_cvtsi128_si32(_mm256_castsi256_si128(bytes))) & 0xFFFFu;
      const uint32_t upper =
          static_cast<uint32_t>(_mm_cvtsi128_si32(_mm256_extracti128_si256(bytes, 1))) & 0xFFFFu;
      const uint32_t four = packed | (upper << 16);
      std::memcpy(out[p] + t, &four, static_cast<size_t>(n));
    }
  }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif  // __x86_64__

// A pixel's window as q + 128 into `patch` (padded taps z_x + 128, zero tail up to k_pad).
void FillPatch(const AdderGeometry& g, const int8_t* x, int64_t pix, uint8_t pad, int64_t k,
               int64_t k_pad, uint8_t* patch) {
  const int64_t c = g.in_c;
  const int64_t n = pix / (g.out_h * g.out_w);
  const int64_t oh = pix / g.out_w % g.out_h, ow = pix % g.out_w;
  for (int64_t i = 0; i < g.k_h; ++i) {
    const int64_t h = oh * g.stride_h - g.pad_top + i * g.dil_h;
    for (int64_t j = 0; j < g.k_w; ++j) {
      const int64_t wc = ow * g.stride_w - g.pad_left + j * g.dil_w;
      uint8_t* dst = patch + (i * g.k_w + j) * c;
      if (h < 0 || h >= g.in_h || wc < 0 || wc >= g.in_w) {
        std::memset(dst, pad, static_cast<size_t>(c));
      } else {
        const int8_t* src = x + ((n * g.in_h + h) * g.in_w + wc) * c;
        for (int64_t q = 0; q < c; ++q) {
          dst[q] = static_cast<uint8_t>(static_cast<uint8_t>(src[q]) ^ 0x80u);
        }
      }
    }
  }
  std::memset(patch + k, 0, static_cast<size_t>(k_pad - k));
}

#if defined(__x86_64__)
void ForwardGroups(const AdderGeometry& g, const int8_t* x, const AdderInt8Filter& f,
                   const AdderInt8Requant& rq, int8_t* y, const ParallelFor& parallel_for,
                   GroupTile kernel) {
  const int64_t c = g.in_c, steps = f.k_pad / 8, pixels = g.batch * g.out_h * g.out_w;
  const uint8_t pad = static_cast<uint8_t>(static_cast<uint8_t>(rq.input_zero_point) ^ 0x80u);
  const bool direct = c % 8 == 0;
  // Direct: a padded copy of the input (made here, by the calling thread), read in place.
  int64_t hp = 0, wp = 0;
  std::vector<int64_t> offsets(static_cast<size_t>(steps));
  thread_local std::vector<uint8_t> padded;
  if (direct) {
    hp = std::max(g.in_h + g.pad_top, (g.out_h - 1) * g.stride_h + (g.k_h - 1) * g.dil_h + 1);
    wp = std::max(g.in_w + g.pad_left, (g.out_w - 1) * g.stride_w + (g.k_w - 1) * g.dil_w + 1);
    padded.assign(static_cast<size_t>(g.batch * hp * wp * c), pad);
    for (int64_t n = 0; n < g.batch; ++n) {
      for (int64_t h = 0; h < g.in_h; ++h) {
        const int8_t* src = x + (n * g.in_h + h) * g.in_w * c;
        uint8_t* dst = padded.data() + ((n * hp + h + g.pad_top) * wp + g.pad_left) * c;
        for (int64_t i = 0; i < g.in_w * c; ++i) {
          dst[i] = static_cast<uint8_t>(static_cast<uint8_t>(src[i]) ^ 0x80u);
        }
      }
    }
    size_t s = 0;
    for (int64_t i = 0; i < g.k_h; ++i)
      for (int64_t j = 0; j < g.k_w; ++j)
        for (int64_t c8 = 0; c8 < c; c8 += 8) {
          offsets[s++] = ((i * g.dil_h) * wp + j * g.dil_w) * c + c8;
        }
  } else {
    for (int64_t s = 0; s < steps; ++s) offsets[static_cast<size_t>(s)] = s * 8;
  }
  const uint8_t* xp = padded.data();
  const int64_t tiles = (pixels + kTileP - 1) / kTileP;
  const int64_t group_bytes = steps * 8 * f.lanes;
  const int64_t cost = kTileP * (f.groups * steps * 2 + g.out_c * 4);
  RunTiles(parallel_for, tiles, cost, [&](int64_t begin, int64_t end) {
    thread_local std::vector<uint8_t> patches;
    if (!direct && patches.size() < static_cast<size_t>(kTileP * f.k_pad)) {
      patches.assign(static_cast<size_t>(kTileP * f.k_pad), 0);
    }
    TileInput in;
    in.offsets = offsets.data();
    in.steps = steps;
    int8_t* out[kTileP];
    for (int64_t tile = begin; tile < end; ++tile) {
      const int valid = static_cast<int>(std::min<int64_t>(kTileP, pixels - tile * kTileP));
      for (int p = 0; p < kTileP; ++p) {
        const int64_t pix = tile * kTileP + std::min(p, valid - 1);
        out[p] = y + pix * g.out_c;
        if (direct) {
          const int64_t n = pix / (g.out_h * g.out_w);
          const int64_t oh = pix / g.out_w % g.out_h, ow = pix % g.out_w;
          in.base[p] = xp + ((n * hp + oh * g.stride_h) * wp + ow * g.stride_w) * c;
        } else {
          uint8_t* patch = patches.data() + p * f.k_pad;
          FillPatch(g, x, pix, pad, f.k, f.k_pad, patch);
          in.base[p] = patch;
        }
      }
      for (int64_t grp = 0; grp < f.groups; grp += kTileG) {
        kernel(in, f.data.data() + grp * group_bytes, group_bytes, rq, grp * f.lanes, valid,
               g.out_c, out);
      }
    }
  });
}

#endif  // __x86_64__

// ----- scalar and NEON: rows layout -----------------------------------------------------------

void ForwardRows(const AdderGeometry& g, const int8_t* x, const AdderInt8Filter& f,
                 const AdderInt8Requant& rq, int8_t* y, const ParallelFor& parallel_for,
                 SadTile sad, int mr) {
  const int64_t k_pad = f.k_pad, out_c = g.out_c;
  const int64_t pixels = g.batch * g.out_h * g.out_w;
  const int64_t tiles = (pixels + mr - 1) / mr;
  const uint8_t pad = static_cast<uint8_t>(static_cast<uint8_t>(rq.input_zero_point) ^ 0x80u);
  const int64_t rows = (out_c + kNr - 1) / kNr * kNr;
  const int64_t cost = mr * (k_pad + rows * k_pad / 8);
  RunTiles(parallel_for, tiles, cost, [&](int64_t begin, int64_t end) {
    thread_local std::vector<uint8_t> buffer;
    if (buffer.size() < static_cast<size_t>(mr * k_pad)) buffer.assign(mr * k_pad, 0);
    const uint8_t* xs[4];
    int32_t sums[4 * kNr];
    for (int64_t tile = begin; tile < end; ++tile) {
      int64_t pix[4];
      for (int p = 0; p < mr; ++p) {
        pix[p] = std::min(tile * mr + p, pixels - 1);
        uint8_t* patch = buffer.data() + p * k_pad;
        FillPatch(g, x, pix[p], pad, f.k, k_pad, patch);
        xs[p] = patch;
      }
      const int valid = static_cast<int>(std::min<int64_t>(mr, pixels - tile * mr));
      for (int64_t t0 = 0; t0 < rows; t0 += kNr) {
        sad(xs, f.data.data() + t0 * k_pad, k_pad, sums);
        const int nt = static_cast<int>(std::min<int64_t>(kNr, out_c - t0));
        for (int p = 0; p < valid; ++p) {
          int8_t* out = y + pix[p] * out_c + t0;
          for (int t = 0; t < nt; ++t) out[t] = Requantize(sums[p * kNr + t], rq, t0 + t);
        }
      }
    }
  });
}

// Filters per group of the x86 versions (0: a rows version).
int GroupLanes(Int8Isa isa) {
  return isa == Int8Isa::kAvx512 ? 8 : isa == Int8Isa::kAvx2 ? 4 : 0;
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
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq");
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
  const size_t padded = static_cast<size_t>((out_c + 15) / 16 * 16);
  rq.out_c = out_c;
  rq.multiplier.assign(padded, 0);
  rq.shift.assign(padded, 1);
  rq.half.assign(padded, 1);
  rq.base.assign(padded, 0);
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
    rq.half[t] = int64_t{1} << (shift - 1);
    const double q_offset = std::floor(o / output_scale + 0.5);
    rq.base[t] = output_zero_point +
                 static_cast<int64_t>(std::min(16777216.0, std::max(-16777216.0, q_offset)));
  }
  *out = std::move(rq);
  return true;
}

bool AdderInt8PackFilter(const AdderGeometry& g, const int8_t* w, Int8Isa isa,
                         AdderInt8Filter* packed) {
  if (isa == Int8Isa::kAuto) isa = Int8BestIsa();
  if (!Int8IsaAvailable(isa)) return false;
  const int lanes = GroupLanes(isa);
  const int64_t k = g.k_h * g.k_w * g.in_c;
  auto value = [&](int64_t tap_c, int64_t t) {  // HWIO: w[(tap * in_c + c) * out_c + t]
    return static_cast<uint8_t>(static_cast<uint8_t>(w[tap_c * g.out_c + t]) ^ 0x80u);
  };
  if (lanes > 0) {
    const int64_t steps = (k + 7) / 8;
    const int64_t groups = ((g.out_c + lanes - 1) / lanes + 1) / 2 * 2;  // even: 2 per tile
    packed->data.assign(static_cast<size_t>(groups * steps * lanes * 8), 0);
    for (int64_t t = 0; t < g.out_c; ++t) {
      const int64_t grp = t / lanes, lane = t % lanes;
      for (int64_t tap_c = 0; tap_c < k; ++tap_c) {
        const int64_t s = tap_c / 8, b = tap_c % 8;
        packed->data[static_cast<size_t>(((grp * steps + s) * lanes + lane) * 8 + b)] =
            value(tap_c, t);
      }
    }
    packed->k_pad = steps * 8;
    packed->groups = groups;
  } else {
    const int64_t k_pad = (k + 15) / 16 * 16;
    const int64_t rows = (g.out_c + kNr - 1) / kNr * kNr;
    packed->data.assign(static_cast<size_t>(rows * k_pad), 0);
    for (int64_t tap_c = 0; tap_c < k; ++tap_c) {
      for (int64_t t = 0; t < g.out_c; ++t) {
        packed->data[static_cast<size_t>(t * k_pad + tap_c)] = value(tap_c, t);
      }
    }
    packed->k_pad = k_pad;
    packed->groups = 0;
  }
  packed->lanes = lanes;
  packed->k = k;
  packed->k_h = g.k_h;
  packed->k_w = g.k_w;
  packed->in_c = g.in_c;
  packed->out_c = g.out_c;
  packed->isa = isa;
  return true;
}

bool AdderInt8Forward(const AdderGeometry& g, const int8_t* x, const AdderInt8Filter& packed,
                      const AdderInt8Requant& rq, int8_t* y, const ParallelFor& parallel_for) {
  if (packed.k_h != g.k_h || packed.k_w != g.k_w || packed.in_c != g.in_c ||
      packed.out_c != g.out_c || rq.out_c != g.out_c || packed.k > kMaxWindow ||
      !Int8IsaAvailable(packed.isa)) {
    return false;
  }
  switch (packed.isa) {
#if defined(__x86_64__)
    case Int8Isa::kAvx512:
      ForwardGroups(g, x, packed, rq, y, parallel_for, TileAvx512);
      return true;
    case Int8Isa::kAvx2:
      ForwardGroups(g, x, packed, rq, y, parallel_for, TileAvx2);
      return true;
#endif
#if defined(__aarch64__)
    case Int8Isa::kNeon:
      ForwardRows(g, x, packed, rq, y, parallel_for, SadNeon, 2);
      return true;
#endif
    case Int8Isa::kScalar:
      ForwardRows(g, x, packed, rq, y, parallel_for, SadScalar, 1);
      return true;
    default:
      return false;
  }
}

}  // namespace pkkd
