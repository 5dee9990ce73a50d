// The adder-convolution kernels, written once over a small SIMD interface `Vec`.
//
// Each ISA file (adder_core_avx512.cc, adder_core_avx2.cc, adder_core_scalar.cc) defines
// PKKD_ISA_NAMESPACE and a struct Vec in it, then includes this file; each is compiled with
// its own -m flags, and the namespaces keep the instantiations apart (no ODR mixing).
//
// Forward. |x - w| = x + w - 2 min(x, w), so with the window sums of x and the filter sums of w
// computed once, the inner loop is one min and one fused multiply-add by 1.0 per 16 (or 8)
// products: min and add share the two FP-add pipes on current x86 cores, the FMA pipes are
// otherwise idle, so accumulating through an FMA doubles the rate over a plain add. A register
// tile holds P output pixels x T vectors of output channels; each x value is broadcast from
// memory once per tile, each filter vector loaded once per tile. Padded taps read a zero
// buffer, which yields min(0, w) and keeps the identity exact.
//
// Input gradient. clip(w - x, -1, 1) = min(max(w, x - 1), x + 1) - x, so
// dx = sum dy * min(max(w, x - 1), x + 1) - x * sum dy: max, min and one FMA per term. It is
// computed per input pixel (a gather over the taps that read it), so threads never write the
// same element and no atomics are needed. Pixels of a tile share their column's residue modulo
// the stride, so a tap is valid or not for the whole tile.
//
// Memory: the packed filter, the per-pixel channel sums of x (or of dy), and a few KB of tile
// buffers per thread. No im2col buffer.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "adder_core.h"

namespace pkkd {
namespace PKKD_ISA_NAMESPACE {

constexpr int W = Vec::kWidth;

inline int64_t RoundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// ---------------------------------------------------------------------------------------------
// Forward tile: acc[k][t] = sum over taps and c of min(w[tap, c, t-vector], x_k[tap][c]).
struct FwdArgs {
  const float* const* xp;  // [ntaps][kMaxP] pointers to the C input values of (tap, pixel)
  int64_t ntaps;
  const float* w;          // packed filter at the first channel vector of this chunk
  int64_t c;               // input channels
  int64_t w_c_stride;      // floats between consecutive input channels in the packed filter
  int64_t w_tap_stride;    // floats between consecutive taps in the packed filter
  float* acc;              // out: [P][T * W]
};

template <int P, int T>
void FwdTile(const FwdArgs& a) {
  typename Vec::V acc[P][T];
  for (int k = 0; k < P; ++k)
    for (int t = 0; t < T; ++t) acc[k][t] = Vec::Zero();
  const typename Vec::V ones = Vec::Opaque(Vec::Set1(1.0f));
  for (int64_t tap = 0; tap < a.ntaps; ++tap) {
    const float* px[P];
    for (int k = 0; k < P; ++k) px[k] = a.xp[tap * Vec::kFwdMaxP + k];
    const float* wt = a.w + tap * a.w_tap_stride;
    for (int64_t c = 0; c < a.c; ++c) {
      typename Vec::V wv[T];
      for (int t = 0; t < T; ++t) wv[t] = Vec::Load(wt + c * a.w_c_stride + t * W);
      for (int k = 0; k < P; ++k) {
        for (int t = 0; t < T; ++t) {
          acc[k][t] = Vec::AccumulateMin(acc[k][t], wv[t], px[k] + c, ones);
        }
      }
    }
  }
  for (int k = 0; k < P; ++k)
    for (int t = 0; t < T; ++t) Vec::Store(a.acc + (k * T + t) * W, acc[k][t]);
}

// ---------------------------------------------------------------------------------------------
// Input-gradient tile: acc[k][t] = sum over valid taps and o of
//   dy_k[tap][o] * min(max(wt[tap, o, t-vector], x_k - 1), x_k + 1).
struct BwdArgs {
  const float* const* dyp;  // [ntaps][kMaxP] pointers to the C_out upstream values
  const int64_t* tap_ids;   // [ntaps] filter tap index of each entry
  int64_t ntaps;
  const float* wt;          // transposed packed filter at the first channel vector of the chunk
  int64_t out_c;
  int64_t wt_o_stride;      // floats between consecutive output channels
  int64_t wt_tap_stride;    // floats between consecutive taps
  const float* x;           // [P][T * W] input values of the tile's pixels
  float* acc;               // out: [P][T * W]
};

template <int P, int T>
void BwdTile(const BwdArgs& a) {
  typename Vec::V acc[P][T], lo[P][T], hi[P][T];
  const typename Vec::V one = Vec::Set1(1.0f);
  for (int k = 0; k < P; ++k) {
    for (int t = 0; t < T; ++t) {
      const typename Vec::V xv = Vec::Load(a.x + (k * T + t) * W);
      lo[k][t] = Vec::Sub(xv, one);
      hi[k][t] = Vec::Add(xv, one);
      acc[k][t] = Vec::Zero();
    }
  }
  for (int64_t e = 0; e < a.ntaps; ++e) {
    const float* pd[P];
    for (int k = 0; k < P; ++k) pd[k] = a.dyp[e * Vec::kBwdMaxP + k];
    const float* wtap = a.wt + a.tap_ids[e] * a.wt_tap_stride;
    for (int64_t o = 0; o < a.out_c; ++o) {
      typename Vec::V wv[T];
      for (int t = 0; t < T; ++t) wv[t] = Vec::Load(wtap + o * a.wt_o_stride + t * W);
      for (int k = 0; k < P; ++k) {
        const typename Vec::V d = Vec::Set1(pd[k][o]);
        for (int t = 0; t < T; ++t) {
          acc[k][t] = Vec::Fma(Vec::Min(Vec::Max(wv[t], lo[k][t]), hi[k][t]), d, acc[k][t]);
        }
      }
    }
  }
  for (int k = 0; k < P; ++k)
    for (int t = 0; t < T; ++t) Vec::Store(a.acc + (k * T + t) * W, acc[k][t]);
}

// ---------------------------------------------------------------------------------------------
// Tables of tile functions indexed by [T][P], so tails use exactly-sized tiles.
template <typename Args, int MaxT, int MaxP>
struct TileTable {
  using Fn = void (*)(const Args&);
  Fn fn[MaxT + 1][MaxP + 1] = {};
};

template <int T, int P>
void FillFwd(TileTable<FwdArgs, Vec::kFwdMaxT, Vec::kFwdMaxP>* tab) {
  if constexpr (T >= 1 && P >= 1) {
    tab->fn[T][P] = &FwdTile<P, T>;
    if constexpr (P > 1) FillFwd<T, P - 1>(tab);
    if constexpr (P == Vec::kFwdMaxP && T > 1) FillFwd<T - 1, Vec::kFwdMaxP>(tab);
  }
}

template <int T, int P>
void FillBwd(TileTable<BwdArgs, Vec::kBwdMaxT, Vec::kBwdMaxP>* tab) {
  if constexpr (T >= 1 && P >= 1) {
    tab->fn[T][P] = &BwdTile<P, T>;
    if constexpr (P > 1) FillBwd<T, P - 1>(tab);
    if constexpr (P == Vec::kBwdMaxP && T > 1) FillBwd<T - 1, Vec::kBwdMaxP>(tab);
  }
}

inline const TileTable<FwdArgs, Vec::kFwdMaxT, Vec::kFwdMaxP>& FwdTable() {
  static const auto* tab = [] {
    auto* t = new TileTable<FwdArgs, Vec::kFwdMaxT, Vec::kFwdMaxP>();
    FillFwd<Vec::kFwdMaxT, Vec::kFwdMaxP>(t);
    return t;
  }();
  return *tab;
}

inline const TileTable<BwdArgs, Vec::kBwdMaxT, Vec::kBwdMaxP>& BwdTable() {
  static const auto* tab = [] {
    auto* t = new TileTable<BwdArgs, Vec::kBwdMaxT, Vec::kBwdMaxP>();
    FillBwd<Vec::kBwdMaxT, Vec::kBwdMaxP>(t);
    return t;
  }();
  return *tab;
}

// Tile shape for `groups` channel vectors: T vectors, P pixels, P * T <= budget.
inline void PickTile(int64_t groups, int max_t, int max_p, int budget, int* t, int* p) {
  *t = static_cast<int>(std::min<int64_t>(groups, max_t));
  *p = std::max(1, std::min(max_p, budget / *t));
}

// Per-pixel channel sums: out[i] = sum_c in[i * c + ...]. Parallel over pixels.
inline void ChannelSums(const float* in, int64_t pixels, int64_t c, float* out,
                        const ParallelFor& parallel_for) {
  parallel_for(pixels, c, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* row = in + i * c;
      float s = 0.f;
      for (int64_t j = 0; j < c; ++j) s += row[j];
      out[i] = s;
    }
  });
}

// ---------------------------------------------------------------------------------------------
inline void Forward(const AdderGeometry& g, const float* x, const float* w, float* y,
                    const ParallelFor& parallel_for) {
  const int64_t C = g.in_c, O = g.out_c, ntaps = g.k_h * g.k_w;
  if (g.batch == 0 || g.out_h == 0 || g.out_w == 0 || O == 0) return;
  const int64_t out_pixels = g.batch * g.out_h * g.out_w;
  if (C == 0 || ntaps == 0) {
    std::fill(y, y + out_pixels * O, 0.f);
    return;
  }
  // Packed filter [tap][c][O padded to W], zero-filled padding (its outputs are discarded).
  const int64_t o_pad = RoundUp(O, W);
  std::vector<float> wp(ntaps * C * o_pad, 0.f);
  std::vector<float> wsum(o_pad, 0.f);
  for (int64_t tap = 0; tap < ntaps; ++tap)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t o = 0; o < O; ++o) {
        const float v = w[(tap * C + c) * O + o];
        wp[(tap * C + c) * o_pad + o] = v;
        wsum[o] += v;
      }
  const int64_t in_pixels = g.batch * g.in_h * g.in_w;
  std::vector<float> xsum(in_pixels);
  ChannelSums(x, in_pixels, C, xsum.data(), parallel_for);
  const std::vector<float> zeros(C, 0.f);

  const int64_t groups = o_pad / W;
  int tile_t, tile_p;
  PickTile(groups, Vec::kFwdMaxT, Vec::kFwdMaxP, Vec::kFwdBudget, &tile_t, &tile_p);
  const auto& table = FwdTable();

  const int64_t rows = g.batch * g.out_h;
  const int64_t row_cost = g.out_w * o_pad * C * ntaps / W + 1;
  parallel_for(rows, row_cost, [&](int64_t row_begin, int64_t row_end) {
    std::vector<const float*> xp(ntaps * Vec::kFwdMaxP);
    std::vector<float> acc(Vec::kFwdMaxP * Vec::kFwdMaxT * W);
    float sx[Vec::kFwdMaxP];
    for (int64_t row = row_begin; row < row_end; ++row) {
      const int64_t n = row / g.out_h, p = row % g.out_h;
      for (int64_t q0 = 0; q0 < g.out_w; q0 += tile_p) {
        const int pt = static_cast<int>(std::min<int64_t>(tile_p, g.out_w - q0));
        for (int k = 0; k < pt; ++k) sx[k] = 0.f;
        for (int64_t i = 0; i < g.k_h; ++i) {
          const int64_t h = p * g.stride_h + i * g.dil_h - g.pad_top;
          const bool h_ok = h >= 0 && h < g.in_h;
          for (int64_t j = 0; j < g.k_w; ++j) {
            const int64_t tap = i * g.k_w + j;
            for (int k = 0; k < pt; ++k) {
              const int64_t col = (q0 + k) * g.stride_w + j * g.dil_w - g.pad_left;
              if (h_ok && col >= 0 && col < g.in_w) {
                const int64_t pix = (n * g.in_h + h) * g.in_w + col;
                xp[tap * Vec::kFwdMaxP + k] = x + pix * C;
                sx[k] += xsum[pix];
              } else {
                xp[tap * Vec::kFwdMaxP + k] = zeros.data();
              }
            }
          }
        }
        for (int64_t g0 = 0; g0 < groups; g0 += tile_t) {
          const int tt = static_cast<int>(std::min<int64_t>(tile_t, groups - g0));
          FwdArgs args{xp.data(), ntaps, wp.data() + g0 * W, C, o_pad, C * o_pad, acc.data()};
          table.fn[tt][pt](args);
          const int64_t o_begin = g0 * W, o_end = std::min<int64_t>(O, (g0 + tt) * W);
          for (int k = 0; k < pt; ++k) {
            float* out = y + ((row * g.out_w) + q0 + k) * O;
            const float* a = acc.data() + k * tt * W - o_begin;
            for (int64_t o = o_begin; o < o_end; ++o) {
              out[o] = 2.f * a[o] - sx[k] - wsum[o];
            }
          }
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
inline void BackpropInput(const AdderGeometry& g, const float* x, const float* w,
                          const float* dy, float* dx, const ParallelFor& parallel_for) {
  const int64_t C = g.in_c, O = g.out_c, ntaps = g.k_h * g.k_w;
  const int64_t in_pixels = g.batch * g.in_h * g.in_w;
  if (in_pixels == 0 || C == 0) return;
  if (O == 0 || ntaps == 0 || g.out_h == 0 || g.out_w == 0) {
    std::fill(dx, dx + in_pixels * C, 0.f);
    return;
  }
  // Transposed packed filter [tap][o][C padded to W].
  const int64_t c_pad = RoundUp(C, W);
  std::vector<float> wt(ntaps * O * c_pad, 0.f);
  for (int64_t tap = 0; tap < ntaps; ++tap)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t o = 0; o < O; ++o) wt[(tap * O + o) * c_pad + c] = w[(tap * C + c) * O + o];
  const int64_t out_pixels = g.batch * g.out_h * g.out_w;
  std::vector<float> dysum(out_pixels);
  ChannelSums(dy, out_pixels, O, dysum.data(), parallel_for);
  const std::vector<float> zeros(O, 0.f);

  const int64_t groups = c_pad / W;
  int tile_t, tile_p;
  PickTile(groups, Vec::kBwdMaxT, Vec::kBwdMaxP, Vec::kBwdBudget, &tile_t, &tile_p);
  const auto& table = BwdTable();

  const int64_t rows = g.batch * g.in_h;
  const int64_t row_cost = g.in_w * c_pad * O * ntaps / (W * g.stride_h * g.stride_w) + 1;
  parallel_for(rows, row_cost, [&](int64_t row_begin, int64_t row_end) {
    std::vector<const float*> dyp(ntaps * Vec::kBwdMaxP);
    std::vector<int64_t> tap_ids(ntaps);
    std::vector<float> xl(Vec::kBwdMaxP * Vec::kBwdMaxT * W);
    std::vector<float> acc(Vec::kBwdMaxP * Vec::kBwdMaxT * W);
    float sdy[Vec::kBwdMaxP];
    for (int64_t row = row_begin; row < row_end; ++row) {
      const int64_t n = row / g.in_h, h = row % g.in_h;
      for (int64_t r = 0; r < std::min(g.stride_w, g.in_w); ++r) {
        const int64_t count = (g.in_w - r + g.stride_w - 1) / g.stride_w;
        for (int64_t u0 = 0; u0 < count; u0 += tile_p) {
          const int pt = static_cast<int>(std::min<int64_t>(tile_p, count - u0));
          // The taps that read this tile's pixels, with the output pixel each one feeds.
          int64_t nvalid = 0;
          for (int k = 0; k < pt; ++k) sdy[k] = 0.f;
          for (int64_t i = 0; i < g.k_h; ++i) {
            const int64_t pn = h + g.pad_top - i * g.dil_h;
            if (pn < 0 || pn % g.stride_h != 0 || pn / g.stride_h >= g.out_h) continue;
            const int64_t p = pn / g.stride_h;
            for (int64_t j = 0; j < g.k_w; ++j) {
              const int64_t qn = r + g.pad_left - j * g.dil_w;
              // Python-style modulo: qn may be negative.
              if (((qn % g.stride_w) + g.stride_w) % g.stride_w != 0) continue;
              const int64_t q_first = qn / g.stride_w + u0;  // exact: qn is a multiple
              bool any = false;
              for (int k = 0; k < pt; ++k) {
                const int64_t q = q_first + k;
                if (q >= 0 && q < g.out_w) {
                  const int64_t opix = (n * g.out_h + p) * g.out_w + q;
                  dyp[nvalid * Vec::kBwdMaxP + k] = dy + opix * O;
                  sdy[k] += dysum[opix];
                  any = true;
                } else {
                  dyp[nvalid * Vec::kBwdMaxP + k] = zeros.data();
                }
              }
              if (any) tap_ids[nvalid++] = i * g.k_w + j;
            }
          }
          for (int64_t g0 = 0; g0 < groups; g0 += tile_t) {
            const int tt = static_cast<int>(std::min<int64_t>(tile_t, groups - g0));
            const int64_t c_begin = g0 * W, c_end = std::min<int64_t>(C, (g0 + tt) * W);
            for (int k = 0; k < pt; ++k) {
              const float* xin = x + ((row * g.in_w) + r + (u0 + k) * g.stride_w) * C;
              float* dst = xl.data() + k * tt * W;
              for (int64_t c = c_begin; c < c_begin + tt * W; ++c)
                dst[c - c_begin] = c < c_end ? xin[c] : 0.f;
            }
            if (nvalid > 0) {
              BwdArgs args{dyp.data(), tap_ids.data(), nvalid, wt.data() + g0 * W, O, c_pad,
                           O * c_pad, xl.data(), acc.data()};
              table.fn[tt][pt](args);
            }
            for (int k = 0; k < pt; ++k) {
              float* out = dx + ((row * g.in_w) + r + (u0 + k) * g.stride_w) * C;
              const float* a = acc.data() + k * tt * W - c_begin;
              const float* xv = xl.data() + k * tt * W - c_begin;
              for (int64_t c = c_begin; c < c_end; ++c) {
                out[c] = nvalid > 0 ? a[c] - xv[c] * sdy[k] : 0.f;
              }
            }
          }
        }
      }
    }
  });
}

}  // namespace PKKD_ISA_NAMESPACE
}  // namespace pkkd
