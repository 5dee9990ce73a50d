// Standalone test of the adder compute core (custom_ops/adder/cc/kernels/adder_core*), without
// TensorFlow: AdderForward and AdderBackpropInput, on the version the dispatch picks for this
// CPU (avx512 / avx2 / neon / scalar, capped by KERAS_PKKD_ISA), against
//   - a naive reference written here (direct loops over the receptive window, double sums), and
//   - the portable scalar version, called directly (ForwardScalar / BackpropInputScalar).
// Geometries: hand-picked ones (strides 1-3, dilation 1-2, SAME / VALID, non-square kernels,
// kernels larger than the input, odd sizes, 1x1 outputs, channel counts on and off the vector
// width and the 16-channel block) plus seeded random ones; batch 1-3; serial and threaded
// splitting of the work. Outputs start as a sentinel, so an element the kernels never write
// fails. Error of a result r against a reference e: max |r - e| / max(1, max |e|), NaN-aware.
//
//   adder_core_test [--random N] [--seed S] [--tol T] [--expect-isa NAME] [--verbose]
//
// Prints the ISA, per-case failures and the worst errors; exits 0 when every error is within
// the tolerance (and the ISA is the expected one), 1 otherwise.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "adder_core.h"

namespace pkkd {
// The portable version, defined in adder_core_scalar.cc. Not in the public header: the test
// declares it itself (as adder_core.cc does) to compare every other version with it.
void ForwardScalar(const AdderGeometry&, const float*, const float*, float*, const ParallelFor&);
void BackpropInputScalar(const AdderGeometry&, const float*, const float*, const float*, float*,
                         const ParallelFor&);
}  // namespace pkkd

namespace {

using pkkd::AdderGeometry;

struct Case {
  int64_t n, h, w, c, kh, kw, o, sh, sw, dh, dw;
  bool same;
  int quant;    // 0: continuous values; q > 0: multiples of 1/q (exact ties, clip edges)
  bool nan;     // one input value is NaN
  bool threads; // split the work over threads in uneven pieces
};

// SplitMix64: the same numbers on every platform (std:: distributions are not portable).
struct Rng {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * (Next() >> 11) * 0x1p-53; }
  int64_t Int(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(Next() % (hi - lo + 1)); }
  template <typename T>
  T Pick(const std::vector<T>& v) { return v[Next() % v.size()]; }
};

std::vector<float> RandomValues(Rng* rng, int64_t count, double lo, double hi, int quant) {
  std::vector<float> v(count);
  for (auto& e : v) {
    double d = rng->Uniform(lo, hi);
    if (quant > 0) d = std::round(d * quant) / quant;
    e = static_cast<float>(d);
  }
  return v;
}

// A ParallelFor that cuts [0, total) into uneven pieces and runs them on up to 3 threads, so
// the kernels see ranges that start and end anywhere.
void ThreadedFor(int64_t total, int64_t, const std::function<void(int64_t, int64_t)>& fn) {
  if (total <= 0) return;
  std::vector<std::pair<int64_t, int64_t>> pieces;
  for (int64_t b = 0, step = 1; b < total; b += step, step = step % 3 + 1)
    pieces.emplace_back(b, std::min(total, b + step));
  const int nthreads = static_cast<int>(std::min<size_t>(3, pieces.size()));
  std::vector<std::thread> pool;
  for (int t = 0; t < nthreads; ++t) {
    pool.emplace_back([&, t] {
      for (size_t i = t; i < pieces.size(); i += nthreads) fn(pieces[i].first, pieces[i].second);
    });
  }
  for (auto& th : pool) th.join();
}

// ---- naive reference, double accumulation ----------------------------------------------------
void RefForward(const AdderGeometry& g, const float* x, const float* w, double* y) {
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t p = 0; p < g.out_h; ++p)
      for (int64_t q = 0; q < g.out_w; ++q)
        for (int64_t t = 0; t < g.out_c; ++t) {
          double s = 0.0;
          for (int64_t i = 0; i < g.k_h; ++i)
            for (int64_t j = 0; j < g.k_w; ++j) {
              const int64_t h = p * g.stride_h + i * g.dil_h - g.pad_top;
              const int64_t c0 = q * g.stride_w + j * g.dil_w - g.pad_left;
              const bool in = h >= 0 && h < g.in_h && c0 >= 0 && c0 < g.in_w;
              for (int64_t c = 0; c < g.in_c; ++c) {
                const double xv = in ? x[((n * g.in_h + h) * g.in_w + c0) * g.in_c + c] : 0.0;
                s += std::fabs(xv - w[((i * g.k_w + j) * g.in_c + c) * g.out_c + t]);
              }
            }
          y[((n * g.out_h + p) * g.out_w + q) * g.out_c + t] = -s;
        }
}

void RefBackpropInput(const AdderGeometry& g, const float* x, const float* w, const float* dy,
                      double* dx) {
  std::fill(dx, dx + g.batch * g.in_h * g.in_w * g.in_c, 0.0);
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t p = 0; p < g.out_h; ++p)
      for (int64_t q = 0; q < g.out_w; ++q)
        for (int64_t i = 0; i < g.k_h; ++i)
          for (int64_t j = 0; j < g.k_w; ++j) {
            const int64_t h = p * g.stride_h + i * g.dil_h - g.pad_top;
            const int64_t c0 = q * g.stride_w + j * g.dil_w - g.pad_left;
            if (h < 0 || h >= g.in_h || c0 < 0 || c0 >= g.in_w) continue;  // padding: no dx
            for (int64_t c = 0; c < g.in_c; ++c) {
              const int64_t xi = ((n * g.in_h + h) * g.in_w + c0) * g.in_c + c;
              double s = 0.0;
              for (int64_t t = 0; t < g.out_c; ++t) {
                const double d = static_cast<double>(w[((i * g.k_w + j) * g.in_c + c) * g.out_c + t]) - x[xi];
                const double clip = d < -1.0 ? -1.0 : d > 1.0 ? 1.0 : d;  // NaN stays NaN
                s += dy[((n * g.out_h + p) * g.out_w + q) * g.out_c + t] * clip;
              }
              dx[xi] += s;
            }
          }
}

// max |r - e| / max(1, max |e|); a NaN in one and not the other counts as infinite error.
template <typename E>
double RelErr(const std::vector<float>& r, const std::vector<E>& e) {
  double diff = 0.0, scale = 1.0;
  for (size_t k = 0; k < r.size(); ++k) {
    const bool rn = std::isnan(r[k]), en = std::isnan(static_cast<double>(e[k]));
    if (rn || en) {
      if (rn != en) return std::numeric_limits<double>::infinity();
      continue;
    }
    diff = std::max(diff, std::fabs(static_cast<double>(r[k]) - static_cast<double>(e[k])));
    scale = std::max(scale, std::fabs(static_cast<double>(e[k])));
  }
  return diff / scale;
}

std::string Describe(const Case& c) {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "n=%lld in=%lldx%lldx%lld k=%lldx%lld out_c=%lld s=%lld,%lld d=%lld,%lld %s%s%s%s",
                (long long)c.n, (long long)c.h, (long long)c.w, (long long)c.c, (long long)c.kh,
                (long long)c.kw, (long long)c.o, (long long)c.sh, (long long)c.sw,
                (long long)c.dh, (long long)c.dw, c.same ? "SAME" : "VALID",
                c.quant ? " quantized" : "", c.nan ? " nan" : "", c.threads ? " threads" : "");
  return buf;
}

std::vector<Case> HandPicked() {
  //  n   h   w   c  kh kw   o sh sw dh dw  same  quant nan  threads
  return {
      {1, 5, 5, 4, 3, 3, 4, 1, 1, 1, 1, true, 0, false, false},
      {2, 9, 10, 5, 3, 3, 7, 1, 1, 1, 1, true, 0, false, true},
      {1, 11, 9, 17, 3, 3, 33, 2, 2, 1, 1, true, 0, false, false},
      {2, 8, 8, 3, 3, 3, 4, 1, 1, 2, 2, false, 0, false, false},
      {1, 7, 7, 16, 1, 1, 20, 2, 2, 1, 1, false, 0, false, true},
      {1, 9, 9, 4, 5, 5, 9, 1, 1, 1, 1, true, 0, false, false},
      {3, 6, 7, 8, 2, 3, 12, 1, 2, 1, 1, true, 0, false, false},   // non-square kernel
      {2, 7, 6, 9, 3, 1, 5, 2, 1, 1, 2, false, 0, false, true},    // 3x1, mixed strides
      {1, 8, 11, 6, 1, 4, 16, 1, 1, 2, 1, true, 0, false, false},  // 1x4, even kernel SAME
      {1, 13, 13, 3, 3, 3, 8, 3, 3, 1, 1, true, 0, false, false},  // stride 3 (run-time S)
      {2, 10, 9, 5, 3, 2, 6, 3, 2, 1, 2, false, 0, false, true},
      {1, 3, 3, 2, 5, 5, 3, 1, 1, 1, 1, true, 0, false, false},    // kernel > input (SAME)
      {1, 2, 3, 7, 3, 3, 5, 2, 2, 2, 2, true, 0, false, false},    // dilated kernel >> input
      {1, 1, 1, 33, 1, 1, 17, 1, 1, 1, 1, true, 0, false, false},  // 1x1 image
      {2, 5, 5, 31, 5, 5, 2, 1, 1, 1, 1, false, 0, false, false},  // 1x1 output
      {1, 4, 17, 1, 1, 3, 1, 1, 1, 1, 1, false, 0, false, false},  // one channel in and out
      {1, 6, 23, 32, 3, 3, 64, 1, 1, 1, 1, true, 0, false, true},  // wide row, 64 outputs
      {3, 5, 6, 20, 3, 3, 24, 2, 2, 1, 1, true, 0, false, false},
      {1, 7, 9, 12, 3, 3, 13, 1, 1, 1, 1, true, 4, false, false},  // ties, |w - x| = 1 edges
      {2, 6, 6, 5, 2, 2, 6, 2, 2, 1, 1, false, 2, false, true},
      {1, 6, 7, 5, 3, 3, 9, 1, 1, 1, 1, true, 0, true, false},     // NaN propagates
      {1, 9, 8, 48, 3, 3, 5, 1, 2, 1, 1, true, 0, false, false},   // 3 channel blocks
  };
}

std::vector<Case> RandomCases(Rng* rng, int count) {
  std::vector<Case> out;
  const std::vector<int64_t> chans = {1, 2, 3, 4, 5, 7, 8, 12, 15, 16, 17, 20, 31, 33};
  while (static_cast<int>(out.size()) < count) {
    Case c{};
    c.n = rng->Int(1, 3);
    c.h = rng->Int(1, 11);
    c.w = rng->Int(1, 13);
    c.c = rng->Pick(chans);
    c.o = rng->Pick(chans);
    c.kh = rng->Int(1, 4);
    c.kw = rng->Int(1, 4);
    c.sh = rng->Int(1, 2);
    c.sw = rng->Int(1, 3);
    c.dh = rng->Int(1, 2);
    c.dw = rng->Int(1, 2);
    c.same = rng->Next() & 1;
    c.quant = (rng->Next() % 4 == 0) ? 4 : 0;
    c.nan = false;
    c.threads = rng->Next() & 1;
    // Keep the naive reference cheap (the test also runs under qemu).
    if (c.n * c.h * c.w * c.kh * c.kw * c.c * c.o > 400000) continue;
    out.push_back(c);
  }
  return out;
}

struct Worst {
  double v = 0.0;
  std::string where;
  void Update(double e, const std::string& d) {
    if (!(e <= v)) {  // NaN or larger
      v = e;
      where = d;
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  int n_random = 150;
  uint64_t seed = 1;
  double tol = 2e-5;
  const char* expect_isa = nullptr;
  bool verbose = false;
  for (int a = 1; a < argc; ++a) {
    auto need = [&](const char* name) {
      if (a + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", name);
        std::exit(2);
      }
      return argv[++a];
    };
    if (!std::strcmp(argv[a], "--random")) n_random = std::atoi(need("--random"));
    else if (!std::strcmp(argv[a], "--seed")) seed = std::strtoull(need("--seed"), nullptr, 10);
    else if (!std::strcmp(argv[a], "--tol")) tol = std::atof(need("--tol"));
    else if (!std::strcmp(argv[a], "--expect-isa")) expect_isa = need("--expect-isa");
    else if (!std::strcmp(argv[a], "--verbose")) verbose = true;
    else {
      std::fprintf(stderr, "usage: %s [--random N] [--seed S] [--tol T] [--expect-isa NAME] [--verbose]\n",
                   argv[0]);
      return 2;
    }
  }
  const std::string isa = pkkd::AdderIsaName();
  std::printf("isa %s\n", isa.c_str());

  Rng rng{seed};
  std::vector<Case> cases = HandPicked();
  for (const Case& c : RandomCases(&rng, n_random)) cases.push_back(c);

  // Worst errors: [forward, input gradient] x [isa vs ref, scalar vs ref, isa vs scalar].
  Worst fwd_ref, fwd_scalar_ref, fwd_isa_scalar, bwd_ref, bwd_scalar_ref, bwd_isa_scalar;
  int failures = 0, run = 0, empty = 0;
  const float kSentinel = 1e30f;
  for (const Case& c : cases) {
    AdderGeometry g;
    g.batch = c.n; g.in_h = c.h; g.in_w = c.w; g.in_c = c.c;
    g.k_h = c.kh; g.k_w = c.kw; g.out_c = c.o;
    g.stride_h = c.sh; g.stride_w = c.sw; g.dil_h = c.dh; g.dil_w = c.dw;
    const std::string desc = Describe(c);
    if (!pkkd::ComputeAdderGeometry(c.same, &g)) {
      // Only VALID with an input smaller than the dilated kernel may be empty.
      const bool expected = !c.same && (c.h < (c.kh - 1) * c.dh + 1 || c.w < (c.kw - 1) * c.dw + 1);
      if (!expected) {
        std::printf("FAIL %s: ComputeAdderGeometry reported an empty output\n", desc.c_str());
        ++failures;
      }
      ++empty;
      continue;
    }
    ++run;
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t nx = g.batch * g.in_h * g.in_w * g.in_c;
    const int64_t nw = g.k_h * g.k_w * g.in_c * g.out_c;
    const int64_t ny = g.batch * g.out_h * g.out_w * g.out_c;
    std::vector<float> x = RandomValues(&rng, nx, -2.0, 2.0, c.quant);
    std::vector<float> w = RandomValues(&rng, nw, -2.0, 2.0, c.quant);
    std::vector<float> dy = RandomValues(&rng, ny, -1.0, 1.0, c.quant);
    if (c.nan) x[nx / 2] = std::numeric_limits<float>::quiet_NaN();

    std::vector<double> y_ref(ny), dx_ref(nx);
    RefForward(g, x.data(), w.data(), y_ref.data());
    RefBackpropInput(g, x.data(), w.data(), dy.data(), dx_ref.data());

    const pkkd::ParallelFor pf = c.threads ? pkkd::ParallelFor(ThreadedFor)
                                           : pkkd::ParallelFor(pkkd::SerialFor);
    std::vector<float> y(ny, kSentinel), dx(nx, kSentinel);
    std::vector<float> y_s(ny, kSentinel), dx_s(nx, kSentinel);
    pkkd::AdderForward(g, x.data(), w.data(), y.data(), pf);
    pkkd::AdderBackpropInput(g, x.data(), w.data(), dy.data(), dx.data(), pf);
    pkkd::ForwardScalar(g, x.data(), w.data(), y_s.data(), pkkd::SerialFor);
    pkkd::BackpropInputScalar(g, x.data(), w.data(), dy.data(), dx_s.data(), pkkd::SerialFor);
    // The packed-filter forward (inference: TFLite kernel) is the same computation: bit-equal.
    {
      pkkd::AdderPackedFilter packed;
      pkkd::AdderPackFilter(g, w.data(), &packed, pf);
      std::vector<float> y_p(ny, kSentinel);
      if (!pkkd::AdderForwardPacked(g, x.data(), packed, y_p.data(), pf) ||
          std::memcmp(y_p.data(), y.data(), sizeof(float) * ny) != 0) {
        std::printf("FAIL %s: AdderForwardPacked differs from AdderForward\n", desc.c_str());
        ++failures;
      }
      pkkd::AdderGeometry other = g;
      other.out_c += 1;
      if (pkkd::AdderForwardPacked(other, x.data(), packed, y_p.data(), pf)) {
        std::printf("FAIL %s: a packed filter of other sizes was accepted\n", desc.c_str());
        ++failures;
      }
    }

    const double errs[6] = {RelErr(y, y_ref),    RelErr(y_s, y_ref),   RelErr(y, y_s),
                            RelErr(dx, dx_ref),  RelErr(dx_s, dx_ref), RelErr(dx, dx_s)};
    Worst* slots[6] = {&fwd_ref, &fwd_scalar_ref, &fwd_isa_scalar,
                       &bwd_ref, &bwd_scalar_ref, &bwd_isa_scalar};
    static const char* names[6] = {"forward isa-vs-ref",   "forward scalar-vs-ref",
                                   "forward isa-vs-scalar", "backprop isa-vs-ref",
                                   "backprop scalar-vs-ref", "backprop isa-vs-scalar"};
    for (int k = 0; k < 6; ++k) {
      slots[k]->Update(errs[k], desc);
      if (!(errs[k] <= tol)) {
        std::printf("FAIL %s: %s error %.3g > %.3g\n", desc.c_str(), names[k], errs[k], tol);
        ++failures;
      }
    }
    if (verbose) {
      const double ms = std::chrono::duration<double, std::milli>(
                            std::chrono::steady_clock::now() - t0).count();
      std::printf("case %s: %.1f ms, errors %.2g %.2g %.2g / %.2g %.2g %.2g\n", desc.c_str(), ms,
                  errs[0], errs[1], errs[2], errs[3], errs[4], errs[5]);
    }
  }

  std::printf("cases %d run, %d empty (VALID, input smaller than the kernel)\n", run, empty);
  const Worst* all[6] = {&fwd_ref, &fwd_scalar_ref, &fwd_isa_scalar,
                         &bwd_ref, &bwd_scalar_ref, &bwd_isa_scalar};
  const char* keys[6] = {"forward_vs_ref", "forward_scalar_vs_ref", "forward_vs_scalar",
                         "backprop_vs_ref", "backprop_scalar_vs_ref", "backprop_vs_scalar"};
  for (int k = 0; k < 6; ++k)
    std::printf("worst %s %.3g  (%s)\n", keys[k], all[k]->v, all[k]->where.c_str());
  if (expect_isa != nullptr && isa != expect_isa) {
    std::printf("FAIL the dispatch runs %s, expected %s\n", isa.c_str(), expect_isa);
    ++failures;
  }
  std::printf("%s isa=%s tol=%g failures=%d\n", failures ? "FAILED" : "PASSED", isa.c_str(), tol,
              failures);
  return failures ? 1 : 0;
}
