// NEON version of the adder kernels for aarch64 (Android phones, ARM servers). Advanced SIMD is
// part of the aarch64 baseline, so there is no run-time detection: adder_core.cc picks this
// version on every aarch64 CPU unless KERAS_PKKD_ISA=scalar.
//
// Choices, against the x86 versions:
// - fmin / fmax (FMIN / FMAX): a NaN operand gives NaN, and -0 < +0. x86's minps returns its
//   second operand on NaN or equal zeros. Neither difference matters to the kernels: equal
//   zeros have the same value in x + w - 2 min(x, w) and in the clip, and a NaN input gives a
//   NaN output, as |x - w| does (FMINNM, which drops a quiet NaN, would hide it).
// - Forward accumulation with a plain fadd: on ARM cores fadd, fmin and fmla share the same
//   vector pipes, so the x86 trick of accumulating through the otherwise idle FMA pipes buys
//   nothing, and fadd has the shorter latency. x is broadcast with ld1r (a load-pipe op):
//   fmin has no by-element form, unlike fmla.
// - Register tiles for 32 registers of 4 floats. Forward: P * T <= 20 accumulators, T <= 4
//   filter vectors (16 output channels, one channel block), which leaves 8 registers for the
//   filter vectors and the broadcasts in flight. Input gradient (bounds form only; there is no
//   vrangeps): 3 registers per (pixel, vector) pair (accumulator, x - 1, x + 1), 8 pairs = 24,
//   plus T filter vectors, the dy broadcast and the clip temporaries.
#if defined(__aarch64__)
#include <arm_neon.h>

#define PKKD_ISA_NAMESPACE neon

namespace pkkd {
namespace neon {
struct Vec {
  using V = float32x4_t;
  static constexpr int kWidth = 4;
  static constexpr int kFwdMaxT = 4, kFwdBudget = 20;
  static constexpr int kBwdMaxT = 2, kBwdMaxP = 6, kBwdBudget = 6;
  static constexpr bool kMixedClip = false;  // no range instruction: every pair uses bounds
  static V ClipDiff(V, V, V) { return Zero(); }  // never called when kMixedClip is false
  static V Zero() { return vdupq_n_f32(0.f); }
  static V Set1(float v) { return vdupq_n_f32(v); }
  static V Load(const float* p) { return vld1q_f32(p); }
  static void Store(float* p, V v) { vst1q_f32(p, v); }
  static V Add(V a, V b) { return vaddq_f32(a, b); }
  static V Sub(V a, V b) { return vsubq_f32(a, b); }
  static V Min(V a, V b) { return vminq_f32(a, b); }
  static V Max(V a, V b) { return vmaxq_f32(a, b); }
  static V Fma(V a, V b, V c) { return vfmaq_f32(c, a, b); }  // a * b + c (fmla)
  static float ReduceAdd(V v) { return vaddvq_f32(v); }
  // Nothing to hide: no FMA-by-1.0 accumulation here for the optimizer to fold.
  static V Opaque(V v) { return v; }
  // acc + min(w, *x): ld1r broadcast, fmin, fadd.
  static V AccumulateMinBcast(V acc, V w, const float* x, V) {
    V b;
    asm("ld1r {%0.4s}, %1" : "=w"(b) : "Q"(*x));
    return vaddq_f32(acc, vminq_f32(w, b));
  }
};
}  // namespace neon
}  // namespace pkkd

// GCC's scheduler before register allocation (on by default for aarch64 at -O2) moves a tile's
// fmin ahead of its fadds and spills accumulators of every forward tile with 16 or more of them
// (gcc 12: 3 to 15 spill slots). It is turned off for the kernels only; clang allocates these
// tiles without spills as they are. The standard headers come first, outside the pragma.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-schedule-insns")
#endif
#include "adder_core_impl.h"
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

PKKD_DEFINE_ENTRY_POINTS(Neon, neon)
#endif  // __aarch64__
