// AVX-512 version of the adder kernels (AVX512F + AVX512DQ; chosen at run time).
#if defined(__x86_64__)
#include <immintrin.h>

#define PKKD_ISA_NAMESPACE avx512

namespace pkkd {
namespace avx512 {
struct Vec {
  using V = __m512;
  static constexpr int kWidth = 16;
  // Forward tile: P * T <= 24 accumulators of the 32 zmm registers, T <= 4 vectors.
  static constexpr int kFwdMaxT = 4, kFwdBudget = 24;
  // Input-gradient tile: per (pixel, vector) an accumulator plus two bounds (bounds form) or
  // x (range form), 2.5 registers on average: 10 pairs = 25 registers.
  static constexpr int kBwdMaxT = 2, kBwdMaxP = 10, kBwdBudget = 10;
  static constexpr bool kMixedClip = true;
  static V Zero() { return _mm512_setzero_ps(); }
  static V Set1(float v) { return _mm512_set1_ps(v); }
  static V Load(const float* p) { return _mm512_loadu_ps(p); }
  static void Store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V Add(V a, V b) { return _mm512_add_ps(a, b); }
  static V Sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V Min(V a, V b) { return _mm512_min_ps(a, b); }
  static V Max(V a, V b) { return _mm512_max_ps(a, b); }
  static V Fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static float ReduceAdd(V v) { return _mm512_reduce_add_ps(v); }
  // clip(w - x, -1, 1): w * 1 - x on the FMA pipe, then vrangeps imm 0b0010 = the smaller
  // magnitude of (w - x, 1) with the sign of w - x (AVX512DQ).
  static V ClipDiff(V w, V x, V one) {
    return _mm512_range_ps(_mm512_fmsub_ps(w, one, x), one, 0x2);
  }
  // Hides the value from the optimizer so fma(m, 1.0, acc) is not folded into an add.
  static V Opaque(V v) {
    asm volatile("" : "+v"(v));
    return v;
  }
  // acc + min(w, *x) through the FMA pipe; the broadcast folds into vminps' memory operand.
  // acc + min(w, *x), accumulated through the FMA pipe, with x broadcast from memory inside
  // vminps ({1to16}): gcc does not fold the broadcast by itself, and a separate vbroadcastss
  // per product was measured slower (up to 2x at 16 output channels).
  static V AccumulateMinBcast(V acc, V w, const float* x, V ones) {
    V m;
    asm("vminps %[x]%{1to16%}, %[w], %[m]" : [m] "=v"(m) : [w] "v"(w), [x] "m"(*x));
    return _mm512_fmadd_ps(m, ones, acc);
  }
};
}  // namespace avx512
}  // namespace pkkd

#include "adder_core_impl.h"

PKKD_DEFINE_ENTRY_POINTS(Avx512, avx512)
#endif  // __x86_64__
