// The inner loops of the adder kernels against conv2d's, in registers and L1 only: what this CPU
// allows before any memory traffic, packing or threading.
//
//   make bench-loop        (or: g++ -O2 -mavx512f -mavx512dq -mfma benchmarks/bench_inner_loop.cc)
//
// One "term" is 16 lanes of one (output pixel, output channel, reduction element) product:
//   conv      acc += w * x              one FMA, x broadcast inside it ({1to16} operand)
//   fwd       acc += min(w, x) * 1.0    min then FMA, x broadcast once into a register shared
//                                       by the tile's 4 output vectors
//   fwd-mem   the same with x broadcast inside every vminps ({1to16} operand), the form of
//                                       the forward kernel (adder_core_avx512.cc)
//   fwd-add   as fwd-mem, accumulating with a plain add instead of the FMA
//   dx        acc += dy * min(max(w, x - 1), x + 1)    the input gradient's bounds form
//   dx-range  acc += dy * range(w * 1 - x, 1)         its vrangeps form
// Every loop keeps 24 independent accumulators (latency hidden) and reads its operands from a
// few KB (L1). Each variant runs in 7 interleaved rounds; the median is printed, as ns per term
// and as a ratio to conv's time per term. That ratio bounds what the kernels can reach: an
// adder layer cannot run faster relative to conv2d than its loop runs relative to conv's when
// conv2d runs near its own loop's speed (oneDNN does on large layers).
//
// Why the ratios differ by CPU: on AMD Zen 4, min/add and FMA go to different pipes, so
// min + FMA can issue in the cycle one FMA takes; on Intel server cores (Sapphire / Emerald
// Rapids) 512-bit min, add and FMA all issue on ports 0 and 5, so a term costs two uops where
// conv's costs one. Inside the full kernel the two broadcast forms measured the same
// (docs/adder_op.md): these loops bound, they do not predict.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

constexpr int kTerms = 24;  // accumulators per loop
alignas(64) float g_x[16 * 64];
alignas(64) float g_w[16 * 64];

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

__m512 Opaque(__m512 v) {
  asm volatile("" : "+v"(v));
  return v;
}

float Sum(const __m512* acc) {
  __m512 s = acc[0];
  for (int k = 1; k < kTerms; ++k) s = _mm512_add_ps(s, acc[k]);
  return _mm512_reduce_add_ps(s);
}

// Each loop: per iteration, T = 4 filter vectors (from g_w) and P = 6 pixels' x (from g_x).
__attribute__((noinline)) float Conv(int64_t iters) {
  __m512 acc[kTerms];
  for (auto& a : acc) a = _mm512_setzero_ps();
  for (int64_t i = 0; i < iters; ++i) {
    const float* w = g_w + (i & 31) * 64;
    const float* x = g_x + (i & 15);
#pragma GCC unroll 32
    for (int k = 0; k < 6; ++k)
#pragma GCC unroll 32
      for (int t = 0; t < 4; ++t)
        acc[k * 4 + t] =
            _mm512_fmadd_ps(_mm512_load_ps(w + 16 * t), _mm512_set1_ps(x[16 * k]), acc[k * 4 + t]);
  }
  return Sum(acc);
}

// The three forward loops. kBcastInMin: x broadcast inside each vminps ({1to16} operand), else
// once per pixel into a register shared by the 4 output vectors. kFma: accumulate min * 1.0
// through an FMA, else with a plain add.
template <bool kBcastInMin, bool kFma>
__attribute__((noinline)) float FwdLoop(int64_t iters) {
  __m512 acc[kTerms];
  for (auto& a : acc) a = _mm512_setzero_ps();
  const __m512 ones = Opaque(_mm512_set1_ps(1.f));
  for (int64_t i = 0; i < iters; ++i) {
    const float* wp = g_w + (i & 31) * 64;
    const float* x = g_x + (i & 15);
    __m512 w[4];
    for (int t = 0; t < 4; ++t) w[t] = _mm512_load_ps(wp + 16 * t);
#pragma GCC unroll 32
    for (int k = 0; k < 6; ++k) {
      const __m512 b = _mm512_set1_ps(x[16 * k]);  // unused (and dropped) when kBcastInMin
#pragma GCC unroll 32
      for (int t = 0; t < 4; ++t) {
        __m512 m;
        if constexpr (kBcastInMin) {
          asm("vminps %[x]%{1to16%}, %[w], %[m]" : [m] "=v"(m) : [w] "v"(w[t]), [x] "m"(x[16 * k]));
        } else {
          m = _mm512_min_ps(w[t], b);
        }
        acc[k * 4 + t] = kFma ? _mm512_fmadd_ps(m, ones, acc[k * 4 + t])
                              : _mm512_add_ps(m, acc[k * 4 + t]);
      }
    }
  }
  return Sum(acc);
}

// Input gradient: 12 (pixel, vector) pairs (T = 2, P = 6), the budget of the real kernel;
// reported per term like the others. kRange: clip(w - x, -1, 1) as vrangeps(w * 1 - x, 1),
// else the bounds form min(max(w, x - 1), x + 1) (its - x * sum(dy) part is added once per
// pixel outside the loop in the kernel, so it is left out here too).
template <bool kRange>
__attribute__((noinline)) float DxLoop(int64_t iters) {
  __m512 acc[12], lo[12], hi[12];
  const __m512 one = Opaque(_mm512_set1_ps(1.f));
  for (int k = 0; k < 12; ++k) {
    const __m512 x = _mm512_load_ps(g_x + 16 * k);
    lo[k] = kRange ? x : _mm512_sub_ps(x, one);
    hi[k] = _mm512_add_ps(x, one);  // unused (and dropped) when kRange
    acc[k] = _mm512_setzero_ps();
  }
  for (int64_t i = 0; i < iters; ++i) {
    const float* wp = g_w + (i & 31) * 32;
    const float* dy = g_x + (i & 15);
    const __m512 w[2] = {_mm512_load_ps(wp), _mm512_load_ps(wp + 16)};
#pragma GCC unroll 32
    for (int k = 0; k < 6; ++k) {
      const __m512 d = _mm512_set1_ps(dy[16 * k]);
#pragma GCC unroll 2
      for (int t = 0; t < 2; ++t) {
        const int j = 2 * k + t;
        const __m512 c = kRange ? _mm512_range_ps(_mm512_fmsub_ps(w[t], one, lo[j]), one, 0x2)
                                : _mm512_min_ps(_mm512_max_ps(w[t], lo[j]), hi[j]);
        acc[j] = _mm512_fmadd_ps(c, d, acc[j]);
      }
    }
  }
  __m512 s = acc[0];
  for (int k = 1; k < 12; ++k) s = _mm512_add_ps(s, acc[k]);
  return _mm512_reduce_add_ps(s);
}

struct Variant {
  const char* name;
  float (*fn)(int64_t);
  int terms_per_iter;
};

}  // namespace

// Everything that may use AVX-512 instructions lives below main's CPU check.
__attribute__((noinline)) int Run(int argc, char** argv) {
  int64_t iters = 4000000;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--iters=", 8) == 0) {
      iters = std::atoll(argv[i] + 8);
    } else {
      std::fprintf(stderr, "usage: %s [--iters=N]   (unknown argument %s)\n", argv[0], argv[i]);
      return 2;
    }
  }
  if (iters < 1) {
    std::fprintf(stderr, "--iters must be positive\n");
    return 2;
  }
  for (int i = 0; i < 16 * 64; ++i) {
    g_x[i] = 0.5f + 0.001f * static_cast<float>(i % 97);
    g_w[i] = 1.0f - 0.002f * static_cast<float>(i % 89);
  }
  const Variant variants[] = {{"conv", Conv, 24},
                              {"fwd", FwdLoop<false, true>, 24},
                              {"fwd-mem", FwdLoop<true, true>, 24},
                              {"fwd-add", FwdLoop<true, false>, 24},
                              {"dx", DxLoop<false>, 12},
                              {"dx-range", DxLoop<true>, 12}};
  constexpr int kVariants = sizeof(variants) / sizeof(variants[0]);
  constexpr int kRounds = 7;
  std::vector<double> ns[kVariants];
  float sink = 0.f;
  for (int r = 0; r < kRounds; ++r) {
    for (int v = 0; v < kVariants; ++v) {
      const double t = Now();
      sink += variants[v].fn(iters);
      ns[v].push_back((Now() - t) * 1e9 / (static_cast<double>(iters) * variants[v].terms_per_iter));
    }
  }
  double conv = 0.;
  std::printf("%-9s %12s %14s\n", "loop", "ns per term", "ratio to conv");
  for (int v = 0; v < kVariants; ++v) {
    std::sort(ns[v].begin(), ns[v].end());
    const double med = ns[v][kRounds / 2];
    if (v == 0) conv = med;
    std::printf("%-9s %12.3f %14.2f\n", variants[v].name, med, med / conv);
  }
  std::printf("(checksum %g)\n", static_cast<double>(sink));
  return 0;
}

int main(int argc, char** argv) {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512dq")) {
    std::printf("this CPU has no AVX-512F/DQ: the loops measured here are AVX-512 ones\n");
    return 0;
  }
  return Run(argc, argv);
}
