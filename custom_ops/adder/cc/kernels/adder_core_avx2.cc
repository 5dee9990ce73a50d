// AVX2 + FMA version of the adder kernels (the baseline for x86-64 CPUs without AVX-512).
#if defined(__x86_64__)
#include <immintrin.h>

#define PKKD_ISA_NAMESPACE avx2

namespace pkkd {
namespace avx2 {
struct Vec {
  using V = __m256;
  static constexpr int kWidth = 8;
  // 16 ymm registers: up to 12 accumulators + filter vectors + the 1.0 constant.
  static constexpr int kFwdMaxT = 2, kFwdBudget = 12;
  static constexpr int kBwdMaxT = 1, kBwdMaxP = 4, kBwdBudget = 4;
  static constexpr bool kMixedClip = false;  // no vrangeps: every pair uses the bounds form
  static V ClipDiff(V, V, V) { return Zero(); }  // never called when kMixedClip is false
  static V Zero() { return _mm256_setzero_ps(); }
  static V Set1(float v) { return _mm256_set1_ps(v); }
  static V Load(const float* p) { return _mm256_loadu_ps(p); }
  static void Store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V Add(V a, V b) { return _mm256_add_ps(a, b); }
  static V Sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V Min(V a, V b) { return _mm256_min_ps(a, b); }
  static V Max(V a, V b) { return _mm256_max_ps(a, b); }
  static V Fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static float ReduceAdd(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static V Opaque(V v) {
    asm volatile("" : "+x"(v));
    return v;
  }
  // acc + min(w, *x) through the FMA pipe (AVX2 has no embedded broadcast; vbroadcastss from
  // memory is a load-port operation).
  static V AccumulateMinBcast(V acc, V w, const float* x, V ones) {
    return _mm256_fmadd_ps(_mm256_min_ps(w, _mm256_broadcast_ss(x)), ones, acc);
  }
};
}  // namespace avx2
}  // namespace pkkd

#include "adder_core_impl.h"

PKKD_DEFINE_ENTRY_POINTS(Avx2, avx2)
#endif  // __x86_64__
