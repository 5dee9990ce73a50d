// Geometry and run-time choice of the kernel version for this CPU.
#include "adder_core.h"

#include <cstdlib>
#include <cstring>

namespace pkkd {

void ForwardScalar(const AdderGeometry&, const float*, const float*, float*, const ParallelFor&);
void BackpropInputScalar(const AdderGeometry&, const float*, const float*, const float*, float*,
                         const ParallelFor&);
#if defined(__x86_64__)
void ForwardAvx512(const AdderGeometry&, const float*, const float*, float*, const ParallelFor&);
void BackpropInputAvx512(const AdderGeometry&, const float*, const float*, const float*, float*,
                         const ParallelFor&);
void ForwardAvx2(const AdderGeometry&, const float*, const float*, float*, const ParallelFor&);
void BackpropInputAvx2(const AdderGeometry&, const float*, const float*, const float*, float*,
                       const ParallelFor&);
#endif
#if defined(__aarch64__)
void ForwardNeon(const AdderGeometry&, const float*, const float*, float*, const ParallelFor&);
void BackpropInputNeon(const AdderGeometry&, const float*, const float*, const float*, float*,
                       const ParallelFor&);
#endif

// The packed-filter entry points of each version (adder_core_<isa>.cc).
#define PKKD_DECLARE_PACKED(S)                                                               \
  int64_t PackedFilterFloats##S(const AdderGeometry&);                                       \
  int64_t PackedSumFloats##S(const AdderGeometry&);                                          \
  void PackFilter##S(const AdderGeometry&, const float*, float*, float*, const ParallelFor&); \
  void ForwardPacked##S(const AdderGeometry&, const float*, const float*, const float*, float*, \
                        const ParallelFor&);
PKKD_DECLARE_PACKED(Scalar)
#if defined(__x86_64__)
PKKD_DECLARE_PACKED(Avx512)
PKKD_DECLARE_PACKED(Avx2)
#endif
#if defined(__aarch64__)
PKKD_DECLARE_PACKED(Neon)
#endif
#undef PKKD_DECLARE_PACKED

namespace {

enum class Isa { kScalar, kAvx2, kAvx512, kNeon };

// KERAS_PKKD_ISA=avx2|scalar caps the choice (to test and benchmark the other paths on one
// machine); it can never select an ISA the CPU lacks. NEON (Advanced SIMD) is part of the
// aarch64 baseline: no detection, only KERAS_PKKD_ISA=scalar turns it off.
Isa DetectIsa() {
  Isa best = Isa::kScalar;
#if defined(__aarch64__)
  best = Isa::kNeon;
#endif
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = Isa::kAvx2;
  if (best == Isa::kAvx2 && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512dq")) {
    best = Isa::kAvx512;
  }
#endif
  const char* cap = std::getenv("KERAS_PKKD_ISA");
  if (cap != nullptr) {
    if (std::strcmp(cap, "scalar") == 0) best = Isa::kScalar;
    if (std::strcmp(cap, "avx2") == 0 && best == Isa::kAvx512) best = Isa::kAvx2;
  }
  return best;
}

Isa CurrentIsa() {
  static const Isa isa = DetectIsa();
  return isa;
}

void OutputSize(bool same, int64_t in, int64_t k, int64_t s, int64_t d, int64_t* out,
                int64_t* pad_before) {
  const int64_t eff_k = (k - 1) * d + 1;
  if (same) {
    *out = (in + s - 1) / s;
    int64_t total = (*out - 1) * s + eff_k - in;
    if (total < 0) total = 0;
    *pad_before = total / 2;
  } else {
    *out = in >= eff_k ? (in - eff_k) / s + 1 : 0;
    *pad_before = 0;
  }
}

}  // namespace

bool ComputeAdderGeometry(bool same_padding, AdderGeometry* g) {
  OutputSize(same_padding, g->in_h, g->k_h, g->stride_h, g->dil_h, &g->out_h, &g->pad_top);
  OutputSize(same_padding, g->in_w, g->k_w, g->stride_w, g->dil_w, &g->out_w, &g->pad_left);
  return g->out_h > 0 && g->out_w > 0;
}

void SerialFor(int64_t total, int64_t, const std::function<void(int64_t, int64_t)>& fn) {
  if (total > 0) fn(0, total);
}

void AdderForward(const AdderGeometry& g, const float* x, const float* w, float* y,
                  const ParallelFor& pf) {
  switch (CurrentIsa()) {
#if defined(__x86_64__)
    case Isa::kAvx512: return ForwardAvx512(g, x, w, y, pf);
    case Isa::kAvx2: return ForwardAvx2(g, x, w, y, pf);
#endif
#if defined(__aarch64__)
    case Isa::kNeon: return ForwardNeon(g, x, w, y, pf);
#endif
    default: return ForwardScalar(g, x, w, y, pf);
  }
}

void AdderBackpropInput(const AdderGeometry& g, const float* x, const float* w,
                        const float* dy, float* dx, const ParallelFor& pf) {
  switch (CurrentIsa()) {
#if defined(__x86_64__)
    case Isa::kAvx512: return BackpropInputAvx512(g, x, w, dy, dx, pf);
    case Isa::kAvx2: return BackpropInputAvx2(g, x, w, dy, dx, pf);
#endif
#if defined(__aarch64__)
    case Isa::kNeon: return BackpropInputNeon(g, x, w, dy, dx, pf);
#endif
    default: return BackpropInputScalar(g, x, w, dy, dx, pf);
  }
}

namespace {
struct PackedFns {
  int64_t (*filter_floats)(const AdderGeometry&);
  int64_t (*sum_floats)(const AdderGeometry&);
  void (*pack)(const AdderGeometry&, const float*, float*, float*, const ParallelFor&);
  void (*forward)(const AdderGeometry&, const float*, const float*, const float*, float*,
                  const ParallelFor&);
};
#define PKKD_PACKED_FNS(S) \
  PackedFns { PackedFilterFloats##S, PackedSumFloats##S, PackFilter##S, ForwardPacked##S }

PackedFns CurrentPackedFns() {
  switch (CurrentIsa()) {
#if defined(__x86_64__)
    case Isa::kAvx512: return PKKD_PACKED_FNS(Avx512);
    case Isa::kAvx2: return PKKD_PACKED_FNS(Avx2);
#endif
#if defined(__aarch64__)
    case Isa::kNeon: return PKKD_PACKED_FNS(Neon);
#endif
    default: return PKKD_PACKED_FNS(Scalar);
  }
}
#undef PKKD_PACKED_FNS
}  // namespace

void AdderPackFilter(const AdderGeometry& g, const float* w, AdderPackedFilter* packed,
                     const ParallelFor& pf) {
  const PackedFns fns = CurrentPackedFns();
  packed->k_h = g.k_h;
  packed->k_w = g.k_w;
  packed->in_c = g.in_c;
  packed->out_c = g.out_c;
  packed->isa = AdderIsaName();
  packed->data.assign(static_cast<size_t>(fns.filter_floats(g)), 0.f);
  packed->sums.assign(static_cast<size_t>(fns.sum_floats(g)), 0.f);
  if (g.k_h * g.k_w * g.in_c * g.out_c > 0) {
    fns.pack(g, w, packed->data.data(), packed->sums.data(), pf);
  }
}

bool AdderForwardPacked(const AdderGeometry& g, const float* x, const AdderPackedFilter& packed,
                        float* y, const ParallelFor& pf) {
  if (packed.k_h != g.k_h || packed.k_w != g.k_w || packed.in_c != g.in_c ||
      packed.out_c != g.out_c || packed.isa != AdderIsaName()) {
    return false;
  }
  CurrentPackedFns().forward(g, x, packed.data.data(), packed.sums.data(), y, pf);
  return true;
}

const char* AdderIsaName() {
  switch (CurrentIsa()) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
#if defined(__aarch64__)
    case Isa::kNeon: return "neon";
#endif
    default: return "scalar";
  }
}

}  // namespace pkkd
