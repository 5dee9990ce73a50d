// Portable version of the adder kernels: one float per "vector". The compiler may still
// auto-vectorize it; it is the path for CPUs that are neither AVX2 nor AVX-512 x86-64.
#include <algorithm>

#define PKKD_ISA_NAMESPACE scalar

namespace pkkd {
namespace scalar {
struct Vec {
  using V = float;
  static constexpr int kWidth = 1;
  static constexpr int kFwdMaxT = 4, kFwdBudget = 16;
  static constexpr int kBwdMaxT = 4, kBwdMaxP = 2, kBwdBudget = 8;
  static constexpr bool kMixedClip = false;
  static V ClipDiff(V, V, V) { return 0.f; }  // never called when kMixedClip is false
  static V Zero() { return 0.f; }
  static V Set1(float v) { return v; }
  static V Load(const float* p) { return *p; }
  static void Store(float* p, V v) { *p = v; }
  static V Add(V a, V b) { return a + b; }
  static V Sub(V a, V b) { return a - b; }
  static V Min(V a, V b) { return std::min(a, b); }
  static V Max(V a, V b) { return std::max(a, b); }
  static V Fma(V a, V b, V c) { return a * b + c; }
  static float ReduceAdd(V v) { return v; }
  static V Opaque(V v) { return v; }
  static V AccumulateMinBcast(V acc, V w, const float* x, V) { return acc + std::min(w, *x); }
};
}  // namespace scalar
}  // namespace pkkd

#include "adder_core_impl.h"

PKKD_DEFINE_ENTRY_POINTS(Scalar, scalar)
