// Checks the int8 adder kernel (adder_int8.h) of every version this CPU runs (scalar, AVX2,
// AVX-512 on x86-64; scalar and NEON on aarch64) against a naive reference written here from
// the scheme: direct loops over the padded window in int64, the fixed-point multiplier derived
// again with frexp. Random geometries (strides, dilations, SAME / VALID, channel counts on and
// off the 8-byte step and the filter groups, batch 1-3), random affines (a dead channel, both
// signs), the three activations, and a split into threads (a ParallelFor handing pieces to
// std::threads, on layers large enough to be split). Prints "isa <best>", then PASSED, or the
// first mismatch and exit code 1. Built and run by tests/test_aarch64.py (under qemu for
// aarch64, natively on the host).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "adder_int8.h"

namespace {

using pkkd::AdderActivation;
using pkkd::AdderGeometry;
using pkkd::Int8Isa;

struct Case {
  AdderGeometry g;
  std::vector<int8_t> x, w;
  std::vector<float> a, o;
  double sx, sy;
  int zx, zy;
  AdderActivation act;
};

void Multiplier(double ratio, int64_t* m, int* shift) {
  int e = 0;
  const double f = std::frexp(std::fabs(ratio), &e);
  int64_t q = static_cast<int64_t>(std::floor(f * 2147483648.0 + 0.5));
  if (q == (int64_t{1} << 31)) {
    q /= 2;
    ++e;
  }
  *shift = 31 - e;
  if (ratio == 0 || *shift > 62) {
    q = 0;
    *shift = 1;
  }
  *m = ratio < 0 ? -q : q;
}

std::vector<int8_t> Reference(const Case& c) {
  const AdderGeometry& g = c.g;
  std::vector<int8_t> y(static_cast<size_t>(g.batch * g.out_h * g.out_w * g.out_c));
  int lo = -128, hi = 127;
  if (c.act != AdderActivation::kNone) lo = std::max(-128, c.zy);
  if (c.act == AdderActivation::kRelu6) {
    hi = static_cast<int>(std::min(127.0, std::max(-128.0, std::floor(6.0 / c.sy + 0.5) + c.zy)));
  }
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t p = 0; p < g.out_h; ++p)
      for (int64_t q = 0; q < g.out_w; ++q)
        for (int64_t t = 0; t < g.out_c; ++t) {
          int64_t acc = 0;
          for (int64_t i = 0; i < g.k_h; ++i)
            for (int64_t j = 0; j < g.k_w; ++j)
              for (int64_t ch = 0; ch < g.in_c; ++ch) {
                const int64_t h = p * g.stride_h - g.pad_top + i * g.dil_h;
                const int64_t w = q * g.stride_w - g.pad_left + j * g.dil_w;
                const bool inside = h >= 0 && h < g.in_h && w >= 0 && w < g.in_w;
                const int64_t xv = inside ? c.x[((n * g.in_h + h) * g.in_w + w) * g.in_c + ch] : c.zx;
                const int64_t wv = c.w[((i * g.k_w + j) * g.in_c + ch) * g.out_c + t];
                acc += std::llabs(xv - wv);
              }
          int64_t m;
          int shift;
          Multiplier(static_cast<double>(c.a[t]) * c.sx / c.sy, &m, &shift);
          const int64_t r = (acc * m + (int64_t{1} << (shift - 1))) >> shift;
          const double off = std::min(16777216.0, std::max(-16777216.0,
                                                           std::floor(c.o[t] / c.sy + 0.5)));
          const int64_t v = c.zy + static_cast<int64_t>(off) - r;
          y[static_cast<size_t>(((n * g.out_h + p) * g.out_w + q) * g.out_c + t)] =
              static_cast<int8_t>(std::min<int64_t>(hi, std::max<int64_t>(lo, v)));
        }
  return y;
}

Case RandomCase(std::mt19937& rng, bool large) {
  auto pick = [&](std::vector<int64_t> v) { return v[rng() % v.size()]; };
  Case c;
  AdderGeometry& g = c.g;
  g.batch = large ? 2 : 1 + rng() % 3;
  g.in_h = large ? 24 : 1 + rng() % 9;
  g.in_w = large ? 24 : 1 + rng() % 9;
  g.in_c = large ? pick({16, 24, 32}) : pick({1, 3, 7, 8, 16, 17, 24, 33, 64});
  g.out_c = large ? pick({16, 32, 40}) : pick({1, 3, 4, 7, 8, 9, 16, 17, 24, 33});
  g.k_h = pick({1, 2, 3});
  g.k_w = pick({1, 3});
  g.stride_h = 1 + rng() % 2;
  g.stride_w = 1 + rng() % 3;
  g.dil_h = 1 + rng() % 2;
  g.dil_w = 1;
  const bool same = rng() % 2 == 0 || g.in_h < (g.k_h - 1) * g.dil_h + 1 ||
                    g.in_w < (g.k_w - 1) * g.dil_w + 1;
  pkkd::ComputeAdderGeometry(same, &g);
  std::uniform_int_distribution<int> byte(-128, 127);
  c.x.resize(static_cast<size_t>(g.batch * g.in_h * g.in_w * g.in_c));
  c.w.resize(static_cast<size_t>(g.k_h * g.k_w * g.in_c * g.out_c));
  for (auto& v : c.x) v = static_cast<int8_t>(byte(rng));
  for (auto& v : c.w) v = static_cast<int8_t>(byte(rng));
  std::uniform_real_distribution<double> u(0, 1);
  c.sx = 0.005 + 0.2 * u(rng);
  const double k = static_cast<double>(g.k_h * g.k_w * g.in_c);
  c.sy = c.sx * std::sqrt(k) * 60 / (10 + 50 * u(rng));
  c.zx = byte(rng);
  c.zy = byte(rng);
  c.a.resize(g.out_c);
  c.o.resize(g.out_c);
  for (int64_t t = 0; t < g.out_c; ++t) {
    c.a[t] = static_cast<float>((0.3 + 2.7 * u(rng)) * (rng() % 2 ? 1 : -1));
    if (t == 0 && g.out_c > 1) c.a[t] = 0.0f;  // a dead channel
    c.o[t] = static_cast<float>(c.a[t] * c.sx * k * 85 + (u(rng) - 0.5) * 60 * c.sy);
  }
  c.act = static_cast<AdderActivation>(rng() % 3);
  return c;
}

// Hands pieces of the range to std::threads (3 pieces), as a pool would.
void ThreadedFor(int64_t total, int64_t, const std::function<void(int64_t, int64_t)>& fn) {
  std::vector<std::thread> threads;
  const int pieces = 3;
  for (int i = 0; i < pieces; ++i) {
    const int64_t b = total * i / pieces, e = total * (i + 1) / pieces;
    if (b < e) threads.emplace_back(fn, b, e);
  }
  for (auto& t : threads) t.join();
}

}  // namespace

int main() {
  std::printf("isa %s\n", pkkd::Int8IsaName(pkkd::Int8BestIsa()));
  const Int8Isa all[] = {Int8Isa::kScalar, Int8Isa::kAvx2, Int8Isa::kAvx512, Int8Isa::kNeon};
  std::vector<Int8Isa> isas;
  for (Int8Isa isa : all) {
    if (pkkd::Int8IsaAvailable(isa)) isas.push_back(isa);
  }
  std::mt19937 rng(7);
  int checked = 0;
  for (int trial = 0; trial < 160; ++trial) {
    const bool large = trial >= 150;
    const Case c = RandomCase(rng, large);
    const std::vector<int8_t> want = Reference(c);
    pkkd::AdderInt8Requant rq;
    std::string error;
    if (!pkkd::AdderInt8Requant::Make(c.sx, c.zx, c.sy, c.zy, c.a.data(), c.o.data(), c.g.out_c,
                                      c.act, &rq, &error)) {
      std::printf("case %d: Make failed: %s\n", trial, error.c_str());
      return 1;
    }
    for (Int8Isa isa : isas) {
      pkkd::AdderInt8Filter f;
      if (!pkkd::AdderInt8PackFilter(c.g, c.w.data(), isa, &f)) {
        std::printf("case %d: packing for %s failed\n", trial, pkkd::Int8IsaName(isa));
        return 1;
      }
      for (int threaded = 0; threaded < (large ? 2 : 1); ++threaded) {
        std::vector<int8_t> got(want.size(), 0x55);
        const pkkd::ParallelFor pf = threaded ? pkkd::ParallelFor(ThreadedFor)
                                              : pkkd::ParallelFor(pkkd::SerialFor);
        if (!pkkd::AdderInt8Forward(c.g, c.x.data(), f, rq, got.data(), pf)) {
          std::printf("case %d: forward on %s refused\n", trial, pkkd::Int8IsaName(isa));
          return 1;
        }
        for (size_t i = 0; i < want.size(); ++i) {
          if (got[i] != want[i]) {
            std::printf(
                "MISMATCH %s case %d (threads %d) at %zu: got %d want %d; N %lld H %lld W %lld "
                "C %lld k %lldx%lld C_out %lld stride %lldx%lld dil %lld\n",
                pkkd::Int8IsaName(isa), trial, threaded, i, got[i], want[i],
                (long long)c.g.batch, (long long)c.g.in_h, (long long)c.g.in_w,
                (long long)c.g.in_c, (long long)c.g.k_h, (long long)c.g.k_w,
                (long long)c.g.out_c, (long long)c.g.stride_h, (long long)c.g.stride_w,
                (long long)c.g.dil_h);
            return 1;
          }
        }
        ++checked;
      }
    }
  }
  std::printf("versions:");
  for (Int8Isa isa : isas) std::printf(" %s", pkkd::Int8IsaName(isa));
  std::printf("\n%d runs checked\nPASSED\n", checked);
  return 0;
}
