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
#include <memory>
#include <vector>

#include "adder_core.h"

namespace pkkd {
namespace PKKD_ISA_NAMESPACE {

constexpr int W = Vec::kWidth;

// The register tiles only work if their loops over pixels and vectors are fully unrolled, so
// that the accumulator arrays become registers; gcc stops unrolling at about 16 by itself.
#define PKKD_UNROLL _Pragma("GCC unroll 32")

inline int64_t RoundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

#ifndef PKKD_CHUNK_BYTES
#define PKKD_CHUNK_BYTES (640 * 1024)
#endif
constexpr int64_t kChunkBytes = PKKD_CHUNK_BYTES;

// Per-thread scratch buffers kept between calls. Fresh multi-MB allocations per call were
// given back to the OS by malloc and page-faulted in again every time: 12% of a ResNet-20
// stage-3 forward at batch 128. The memory held is the largest workspace each calling thread
// has needed (a padded copy of one input, one filter), until the thread exits.
enum ScratchSlot { kPackedFilter, kFilterSums, kBlockedData, kPixelSums, kWindowSums, kSlots };

inline float* Scratch(ScratchSlot slot, int64_t n) {
  thread_local std::vector<float> buffers[kSlots];
  std::vector<float>& b = buffers[slot];
  if (static_cast<int64_t>(b.size()) < n) {
    b.clear();
    b.shrink_to_fit();
    b.resize(n);
  }
  return b.data();
}

// ---------------------------------------------------------------------------------------------
// Forward tile: acc[k][t] = sum over taps and c of min(w[tap, c, t-vector], x[pixel k, tap, c]).
//
// The input was copied into a zero-padded, channel-blocked layout xb[n][h][cb][w][kCBlock], so
// for one (tap, channel block) the tile's P pixels sit at one base pointer + k * S * kCBlock:
// with the column stride S a template constant, every broadcast is a constant displacement
// from a single register (no per-pixel pointers competing for the 16 general registers).
constexpr int kCBlock = 16;

struct FwdArgs {
  const float* x;          // xb at (n, first input row, block 0, first input column)
  int64_t tap_h_stride;    // floats between filter rows (dilation_h input rows)
  int64_t tap_w_stride;    // floats between filter columns (dilation_w input columns)
  int64_t block_stride;    // floats between channel blocks of one input row
  int64_t k_h, k_w, blocks;
  int64_t col_stride;      // stride_w (used when the template S is 0)
  const float* w;          // packed filter [tap][c padded][O padded] at this chunk's first vector
  int64_t w_c_stride;      // floats between consecutive input channels in the packed filter
  float* acc;              // out: [P][T * W]
};

template <int P, int T, int S>
void FwdTile(const FwdArgs& a) {
  typename Vec::V acc[P][T];
  PKKD_UNROLL for (int k = 0; k < P; ++k)
    PKKD_UNROLL for (int t = 0; t < T; ++t) acc[k][t] = Vec::Zero();
  const typename Vec::V ones = Vec::Opaque(Vec::Set1(1.0f));
  const int64_t pitch = (S > 0 ? S : a.col_stride) * kCBlock;
  const float* wt = a.w;
  for (int64_t i = 0; i < a.k_h; ++i) {
    for (int64_t j = 0; j < a.k_w; ++j) {
      const float* xrow = a.x + i * a.tap_h_stride + j * a.tap_w_stride;
      for (int64_t cb = 0; cb < a.blocks; ++cb) {
        const float* xb = xrow + cb * a.block_stride;
        for (int cc = 0; cc < kCBlock; ++cc) {
          typename Vec::V wv[T];
          PKKD_UNROLL for (int t = 0; t < T; ++t) wv[t] = Vec::Load(wt + t * W);
          wt += a.w_c_stride;
          PKKD_UNROLL for (int k = 0; k < P; ++k) {
            PKKD_UNROLL for (int t = 0; t < T; ++t) {
              acc[k][t] = Vec::AccumulateMinBcast(acc[k][t], wv[t], xb + k * pitch + cc, ones);
            }
          }
        }
      }
    }
  }
  PKKD_UNROLL for (int k = 0; k < P; ++k)
    PKKD_UNROLL for (int t = 0; t < T; ++t) Vec::Store(a.acc + (k * T + t) * W, acc[k][t]);
}

// ---------------------------------------------------------------------------------------------
// Input-gradient tile: acc[k][t] = sum over valid taps and o of dy[pixel k, tap, o] * clip term.
//
// Two forms of the clip, both exact: "bounds" min(max(w, x - 1), x + 1) (two add-pipe ops; the
// - x * sum(dy) part is added by the caller) and, where Vec::kMixedClip, "range"
// clip(w - x, -1, 1) = vrangeps(w * 1 - x, 1) (one FMA-pipe op and one add-pipe op). Odd
// (pixel, vector) pairs use the range form, even ones the bounds form, which balances the FMA
// and add pipes: measured 1.3x the rate of bounds alone. BwdUsesRange() says which pair is which.
//
// dy was copied into a channel-blocked, column-padded layout dyb[n][p][ob][q][kOBlock], so the
// tile's P output columns are one base pointer + k * kOBlock: constant displacements.
constexpr int kOBlock = 16;
static_assert(kOBlock == kCBlock, "PackBlocks serves both layouts");

// Copies one pixel's n channel values src[0, n) into blocks of kCBlock floats, block b at
// dst + b * block_stride, the last block zero-padded, and returns their sum. Vector loads,
// stores and partial sums, then one horizontal sum: written as scalar loops with a running
// or per-lane sum, gcc produced a serial chain of adds or stack round trips, which made this
// copy 35% of a ResNet-20 stage-2 forward (16 channels, stride 2).
inline float PackBlocks(const float* src, int64_t n, float* dst, int64_t block_stride) {
  typename Vec::V sum = Vec::Zero();
  const int64_t full = n / kCBlock;
  for (int64_t b = 0; b < full; ++b) {
    PKKD_UNROLL for (int v = 0; v < kCBlock / W; ++v) {
      const typename Vec::V val = Vec::Load(src + b * kCBlock + v * W);
      Vec::Store(dst + b * block_stride + v * W, val);
      sum = Vec::Add(sum, val);
    }
  }
  float total = Vec::ReduceAdd(sum);
  if (full * kCBlock < n) {
    float* d = dst + full * block_stride;
    for (int c = 0; c < kCBlock; ++c) {
      const int64_t i = full * kCBlock + c;
      const float v = i < n ? src[i] : 0.f;
      d[c] = v;
      total += v;
    }
  }
  return total;
}

constexpr bool BwdUsesRange(int k, int t, int T) { return Vec::kMixedClip && ((k * T + t) & 1); }

struct BwdArgs {
  const float* const* dyb;  // [ntaps] dyb at (n, p, block 0, q of pixel 0) for each valid tap
  const int64_t* tap_ids;   // [ntaps] filter tap index of each entry
  int64_t ntaps;
  int64_t blocks;           // output-channel blocks of kOBlock
  int64_t block_stride;     // floats between blocks in dyb
  const float* wt;          // transposed packed filter [tap][o][c] at the chunk's first c vector
  int64_t wt_o_stride;      // floats between consecutive output channels
  int64_t wt_tap_stride;    // floats between consecutive taps
  const float* x;           // [P][T * W] input values of the tile's pixels
  float* acc;               // out: [P][T * W]
};

template <int P, int T>
void BwdTile(const BwdArgs& a) {
  typename Vec::V acc[P][T], lo[P][T], hi[P][T];
  const typename Vec::V one = Vec::Opaque(Vec::Set1(1.0f));
  PKKD_UNROLL for (int k = 0; k < P; ++k) {
    PKKD_UNROLL for (int t = 0; t < T; ++t) {
      const typename Vec::V xv = Vec::Load(a.x + (k * T + t) * W);
      if (BwdUsesRange(k, t, T)) {
        lo[k][t] = xv;  // the range form needs x itself
      } else {
        lo[k][t] = Vec::Sub(xv, one);
        hi[k][t] = Vec::Add(xv, one);
      }
      acc[k][t] = Vec::Zero();
    }
  }
  for (int64_t e = 0; e < a.ntaps; ++e) {
    const float* wtap = a.wt + a.tap_ids[e] * a.wt_tap_stride;
    for (int64_t ob = 0; ob < a.blocks; ++ob) {
      const float* dy = a.dyb[e] + ob * a.block_stride;
      for (int oo = 0; oo < kOBlock; ++oo) {
        typename Vec::V wv[T];
        PKKD_UNROLL for (int t = 0; t < T; ++t) wv[t] = Vec::Load(wtap + t * W);
        wtap += a.wt_o_stride;
        PKKD_UNROLL for (int k = 0; k < P; ++k) {
          const typename Vec::V d = Vec::Set1(dy[k * kOBlock + oo]);
          PKKD_UNROLL for (int t = 0; t < T; ++t) {
            const typename Vec::V c = BwdUsesRange(k, t, T)
                                          ? Vec::ClipDiff(wv[t], lo[k][t], one)
                                          : Vec::Min(Vec::Max(wv[t], lo[k][t]), hi[k][t]);
            acc[k][t] = Vec::Fma(c, d, acc[k][t]);
          }
        }
      }
    }
  }
  PKKD_UNROLL for (int k = 0; k < P; ++k)
    PKKD_UNROLL for (int t = 0; t < T; ++t) Vec::Store(a.acc + (k * T + t) * W, acc[k][t]);
}

// ---------------------------------------------------------------------------------------------
// Tables of tile functions, so tails use exactly-sized tiles. Forward: [S][T][P], S in {0, 1, 2}
// (0: run-time column stride); only P * T <= budget is instantiated.
struct FwdTable {
  using Fn = void (*)(const FwdArgs&);
  Fn fn[3][Vec::kFwdMaxT + 1][Vec::kFwdBudget + 1] = {};
};

template <int S, int T, int P>
void FillFwd(FwdTable* tab) {
  if constexpr (T >= 1) {
    if constexpr (P >= 1) {
      tab->fn[S][T][P] = &FwdTile<P, T, S>;
      FillFwd<S, T, P - 1>(tab);
    } else if constexpr (T > 1) {
      FillFwd<S, T - 1, Vec::kFwdBudget / (T - 1)>(tab);
    }
  }
}

inline const FwdTable& GetFwdTable() {
  static const FwdTable* tab = [] {
    auto* t = new FwdTable();
    FillFwd<0, Vec::kFwdMaxT, Vec::kFwdBudget / Vec::kFwdMaxT>(t);
    FillFwd<1, Vec::kFwdMaxT, Vec::kFwdBudget / Vec::kFwdMaxT>(t);
    FillFwd<2, Vec::kFwdMaxT, Vec::kFwdBudget / Vec::kFwdMaxT>(t);
    return t;
  }();
  return *tab;
}

template <typename Args, int MaxT, int MaxP>
struct TileTable {
  using Fn = void (*)(const Args&);
  Fn fn[MaxT + 1][MaxP + 1] = {};
};

template <int T, int P>
void FillBwd(TileTable<BwdArgs, Vec::kBwdMaxT, Vec::kBwdMaxP>* tab) {
  if constexpr (T >= 1 && P >= 1) {
    tab->fn[T][P] = &BwdTile<P, T>;
    if constexpr (P > 1) FillBwd<T, P - 1>(tab);
    if constexpr (P == Vec::kBwdMaxP && T > 1) FillBwd<T - 1, Vec::kBwdMaxP>(tab);
  }
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

// ---------------------------------------------------------------------------------------------
// Forward's filter layout. Chunk width: as many output vectors as the register budget allows,
// but few enough that one chunk of the packed filter stays in a core's L2 cache (kChunkBytes):
// each filter value is reused by only P pixels per pass, so a chunk streamed from L3 or DRAM
// starves the FMAs (ResNet-18's 7x7x512 layer ran at 1/3 speed with 1.2 MB chunks).
inline int FwdTileT(const AdderGeometry& g) {
  const int64_t ntaps = g.k_h * g.k_w, c_pad = RoundUp(g.in_c, kCBlock);
  const int64_t groups = RoundUp(g.out_c, W) / W;
  int tile_t = static_cast<int>(std::min<int64_t>(groups, Vec::kFwdMaxT));
  while (tile_t > 1 && ntaps * c_pad * tile_t * W * 4 > kChunkBytes) --tile_t;
  return tile_t;
}

// Sizes (floats) of the packed filter and of the filter sums.
inline int64_t PackedFilterFloats(const AdderGeometry& g) {
  return g.k_h * g.k_w * RoundUp(g.in_c, kCBlock) * RoundUp(g.out_c, W);
}
inline int64_t PackedSumFloats(const AdderGeometry& g) { return RoundUp(g.out_c, W); }

// Packed filter, chunk-major: for each chunk of tile_t output vectors (the last may be
// narrower) a contiguous [tap][c padded to kCBlock][chunk width] block, so one chunk streams
// from cache while every output tile of a thread uses it. Zero padding: padded channels add
// min(0, 0) = 0 and padded outputs are discarded. wsum[o] = sum of filter o.
inline void PackForwardFilter(const AdderGeometry& g, const float* w, float* wp, float* wsum,
                              const ParallelFor& parallel_for) {
  const int64_t C = g.in_c, O = g.out_c, ntaps = g.k_h * g.k_w;
  const int64_t o_pad = RoundUp(O, W), c_pad = RoundUp(C, kCBlock);
  const int64_t groups = o_pad / W;
  const int tile_t = FwdTileT(g);
  std::fill(wp, wp + ntaps * c_pad * o_pad, 0.f);
  std::fill(wsum, wsum + o_pad, 0.f);
  // Where output channel o lives: its chunk's offset in wp, the chunk width, o's column.
  std::vector<int64_t> o_chunk(O), o_width(O), o_col(O);
  for (int64_t o = 0; o < O; ++o) {
    const int64_t g0 = (o / W) / tile_t * tile_t;  // first vector of o's chunk
    o_chunk[o] = g0 * W * ntaps * c_pad;
    o_width[o] = std::min<int64_t>(tile_t, groups - g0) * W;
    o_col[o] = o - g0 * W;
  }
  // Read w in its own order (sequential), one (tap, c) row at a time, in parallel over rows.
  parallel_for(ntaps * C, O * 2, [&](int64_t begin, int64_t end) {
    for (int64_t tc = begin; tc < end; ++tc) {
      const int64_t row = tc / C * c_pad + tc % C;  // (tap, c) row in the padded layout
      const float* src = w + tc * O;
      for (int64_t o = 0; o < O; ++o) wp[o_chunk[o] + row * o_width[o] + o_col[o]] = src[o];
    }
  });
  for (int64_t tc = 0; tc < ntaps * C; ++tc)
    for (int64_t o = 0; o < O; ++o) wsum[o] += w[tc * O + o];
}

// The forward on a filter packed by PackForwardFilter for the same filter sizes.
inline void ForwardPacked(const AdderGeometry& g, const float* x, const float* wp,
                          const float* wsum, float* y, const ParallelFor& parallel_for) {
  const int64_t C = g.in_c, O = g.out_c, ntaps = g.k_h * g.k_w;
  if (g.batch == 0 || g.out_h == 0 || g.out_w == 0 || O == 0) return;
  const int64_t out_pixels = g.batch * g.out_h * g.out_w;
  if (C == 0 || ntaps == 0) {
    std::fill(y, y + out_pixels * O, 0.f);
    return;
  }
  const int64_t o_pad = RoundUp(O, W), c_pad = RoundUp(C, kCBlock), blocks = c_pad / kCBlock;
  const int64_t groups = o_pad / W;
  const int tile_t = FwdTileT(g);
  // Zero-padded, channel-blocked copy of the input: xb[n][hp][cb][wp][kCBlock]. Rows and
  // columns beyond what any output reads are not stored; inside, only the rows and columns
  // some (output, tap) pair reads are copied (a strided 1x1 layer reads a quarter of them).
  const int64_t hp = (g.out_h - 1) * g.stride_h + (g.k_h - 1) * g.dil_h + 1;
  const int64_t wpad = (g.out_w - 1) * g.stride_w + (g.k_w - 1) * g.dil_w + 1;
  const int64_t row_floats = blocks * wpad * kCBlock;
  auto reads = [](int64_t size, int64_t out, int64_t k, int64_t s, int64_t d) {
    std::vector<char> used(size, 0);
    for (int64_t p = 0; p < out; ++p)
      for (int64_t i = 0; i < k; ++i) used[p * s + i * d] = 1;
    return used;
  };
  const std::vector<char> row_used = reads(hp, g.out_h, g.k_h, g.stride_h, g.dil_h);
  const std::vector<char> col_used = reads(wpad, g.out_w, g.k_w, g.stride_w, g.dil_w);
  float* xb = Scratch(kBlockedData, g.batch * hp * row_floats);  // rows zeroed below
  float* xsum = Scratch(kPixelSums, g.batch * g.in_h * g.in_w);
  parallel_for(g.batch * hp, row_floats, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t n = r / hp, h = r % hp - g.pad_top;
      float* dst = xb + r * row_floats;
      if (!row_used[r % hp]) continue;  // never read: left uninitialized
      if (h < 0 || h >= g.in_h) {
        std::fill(dst, dst + row_floats, 0.f);
        continue;
      }
      for (int64_t col = 0; col < wpad; ++col) {
        if (!col_used[col]) continue;
        const int64_t iw = col - g.pad_left;
        if (iw < 0 || iw >= g.in_w) {
          for (int64_t cb = 0; cb < blocks; ++cb)
            std::fill_n(dst + (cb * wpad + col) * kCBlock, kCBlock, 0.f);
          continue;
        }
        const float* src = x + ((n * g.in_h + h) * g.in_w + iw) * C;
        xsum[(n * g.in_h + h) * g.in_w + iw] =
            PackBlocks(src, C, dst + col * kCBlock, wpad * kCBlock);
      }
    }
  });

  const int max_p = Vec::kFwdBudget / tile_t;
  // Balanced tiles along the output row: ceil(out_w / max_p) tiles of (nearly) equal size.
  const int64_t ntiles = (g.out_w + max_p - 1) / max_p;
  const int tile_p = static_cast<int>((g.out_w + ntiles - 1) / ntiles);
  const int s_idx = g.stride_w == 1 ? 1 : g.stride_w == 2 ? 2 : 0;
  const auto& table = GetFwdTable();

  // Window sums of x over the in-bounds taps of every output pixel.
  float* sx = Scratch(kWindowSums, out_pixels);
  parallel_for(g.batch * g.out_h, g.out_w * ntaps * 4, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / g.out_h, p = row % g.out_h;
      float* out = sx + row * g.out_w;
      std::fill(out, out + g.out_w, 0.f);
      for (int64_t i = 0; i < g.k_h; ++i) {
        const int64_t h = p * g.stride_h + i * g.dil_h - g.pad_top;
        if (h < 0 || h >= g.in_h) continue;
        const float* xs = xsum + (n * g.in_h + h) * g.in_w;
        for (int64_t j = 0; j < g.k_w; ++j) {
          for (int64_t q = 0; q < g.out_w; ++q) {
            const int64_t col = q * g.stride_w + j * g.dil_w - g.pad_left;
            if (col >= 0 && col < g.in_w) out[q] += xs[col];
          }
        }
      }
    }
  });

  const int64_t rows = g.batch * g.out_h;
  const int64_t row_cost = g.out_w * o_pad * c_pad * ntaps / W + 1;
  parallel_for(rows, row_cost, [&](int64_t row_begin, int64_t row_end) {
    std::vector<float> acc(Vec::kFwdBudget * W);
    // Chunks outermost: a thread runs all its rows through one filter chunk before the next.
    for (int64_t g0 = 0; g0 < groups; g0 += tile_t) {
      const int tt = static_cast<int>(std::min<int64_t>(tile_t, groups - g0));
      const float* wchunk = wp + g0 * W * ntaps * c_pad;
      const int64_t o_begin = g0 * W, o_end = std::min<int64_t>(O, (g0 + tt) * W);
      const int64_t o_vec_end = o_begin + (o_end - o_begin) / W * W;
      for (int64_t row = row_begin; row < row_end; ++row) {
        const int64_t n = row / g.out_h, p = row % g.out_h;
        for (int64_t q0 = 0; q0 < g.out_w; q0 += tile_p) {
          const int pt = static_cast<int>(std::min<int64_t>(tile_p, g.out_w - q0));
          const float* xbase =
              xb + (n * hp + p * g.stride_h) * row_floats + q0 * g.stride_w * kCBlock;
          FwdArgs args{xbase, g.dil_h * row_floats, g.dil_w * kCBlock, wpad * kCBlock,
                       g.k_h, g.k_w, blocks, g.stride_w, wchunk, tt * W, acc.data()};
          table.fn[s_idx][tt][pt](args);
          for (int k = 0; k < pt; ++k) {
            const int64_t pix = row * g.out_w + q0 + k;
            float* out = y + pix * O;
            const float* a = acc.data() + k * tt * W - o_begin;
            // y = 2 acc - sum(x) - sum(w), a vector at a time, then the channel tail.
            const typename Vec::V two = Vec::Set1(2.f), sxv = Vec::Set1(sx[pix]);
            for (int64_t o = o_begin; o < o_vec_end; o += W) {
              Vec::Store(out + o, Vec::Sub(Vec::Fma(two, Vec::Load(a + o), Vec::Zero()),
                                           Vec::Add(sxv, Vec::Load(wsum + o))));
            }
            for (int64_t o = o_vec_end; o < o_end; ++o) out[o] = 2.f * a[o] - sx[pix] - wsum[o];
          }
        }
      }
    }
  });
}

inline void Forward(const AdderGeometry& g, const float* x, const float* w, float* y,
                    const ParallelFor& parallel_for) {
  if (g.batch == 0 || g.out_h == 0 || g.out_w == 0 || g.out_c == 0) return;
  if (g.in_c == 0 || g.k_h * g.k_w == 0) {
    std::fill(y, y + g.batch * g.out_h * g.out_w * g.out_c, 0.f);
    return;
  }
  float* wp = Scratch(kPackedFilter, PackedFilterFloats(g));
  float* wsum = Scratch(kFilterSums, PackedSumFloats(g));
  PackForwardFilter(g, w, wp, wsum, parallel_for);
  ForwardPacked(g, x, wp, wsum, y, parallel_for);
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
  const int64_t c_pad = RoundUp(C, W), o_pad = RoundUp(O, kOBlock), oblocks = o_pad / kOBlock;
  const int64_t groups = c_pad / W;
  int tile_t, tile_p;
  PickTile(groups, Vec::kBwdMaxT, Vec::kBwdMaxP, Vec::kBwdBudget, &tile_t, &tile_p);
  // Transposed packed filter, chunk-major like the forward one: for each chunk of tile_t input
  // vectors a contiguous [tap][o padded to kOBlock][chunk width] block; zero padding.
  float* wt = Scratch(kPackedFilter, ntaps * o_pad * c_pad);
  std::fill(wt, wt + ntaps * o_pad * c_pad, 0.f);
  parallel_for(ntaps * C, O * 2, [&](int64_t begin, int64_t end) {
    for (int64_t tc = begin; tc < end; ++tc) {
      const int64_t tap = tc / C, c = tc % C;
      const int64_t g0 = (c / W) / tile_t * tile_t;
      const int64_t width = std::min<int64_t>(tile_t, groups - g0) * W;
      float* dst = wt + g0 * W * ntaps * o_pad + tap * o_pad * width + (c - g0 * W);
      const float* src = w + tc * O;
      for (int64_t o = 0; o < O; ++o) dst[o * width] = src[o];
    }
  });
  // Output columns any input column can reach: q = (w + pad_left - j * dil_w) / stride_w.
  const int64_t q_min = std::min<int64_t>(
      0, -(((g.k_w - 1) * g.dil_w - g.pad_left + g.stride_w - 1) / g.stride_w));
  const int64_t q_max = std::max<int64_t>(g.out_w - 1, (g.in_w - 1 + g.pad_left) / g.stride_w);
  const int64_t qcols = q_max - q_min + 1;
  const int64_t block_stride = qcols * kOBlock, row_floats = oblocks * block_stride;
  // dyb[n][p][ob][q - q_min][kOBlock]: zero outside the real output columns and channels.
  const int64_t out_rows = g.batch * g.out_h;
  float* dyb = Scratch(kBlockedData, out_rows * row_floats);  // rows zeroed below
  float* dysum = Scratch(kPixelSums, out_rows * g.out_w);
  parallel_for(out_rows, row_floats, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float* dst = dyb + r * row_floats;
      std::fill(dst, dst + row_floats, 0.f);
      for (int64_t q = 0; q < g.out_w; ++q) {
        const float* src = dy + (r * g.out_w + q) * O;
        dysum[r * g.out_w + q] =
            PackBlocks(src, O, dst + (q - q_min) * kOBlock, block_stride);
      }
    }
  });

  const auto& table = BwdTable();

  const int64_t rows = g.batch * g.in_h;
  const int64_t row_cost = g.in_w * c_pad * o_pad * ntaps / (W * g.stride_h * g.stride_w) + 1;
  parallel_for(rows, row_cost, [&](int64_t row_begin, int64_t row_end) {
    std::vector<const float*> tap_dy(ntaps);
    std::vector<int64_t> tap_ids(ntaps), tap_i(g.k_h), tap_p(g.k_h), tap_j(g.k_w), tap_q(g.k_w);
    std::vector<float> xl(Vec::kBwdMaxP * Vec::kBwdMaxT * W);
    std::vector<float> acc(Vec::kBwdMaxP * Vec::kBwdMaxT * W);
    float sdy[Vec::kBwdMaxP];
    // Chunks outermost: a thread runs all its rows through one filter chunk before the next.
    for (int64_t g0 = 0; g0 < groups; g0 += tile_t) {
      const int tt = static_cast<int>(std::min<int64_t>(tile_t, groups - g0));
      const float* wchunk = wt + g0 * W * ntaps * o_pad;
      const int64_t c_begin = g0 * W, c_end = std::min<int64_t>(C, (g0 + tt) * W);
      for (int64_t row = row_begin; row < row_end; ++row) {
        const int64_t n = row / g.in_h, h = row % g.in_h;
        // Filter rows i that read input row h, with the output row p each one feeds.
        int64_t nrows = 0;
        for (int64_t i = 0; i < g.k_h; ++i) {
          const int64_t pn = h + g.pad_top - i * g.dil_h;
          if (pn < 0 || pn % g.stride_h != 0 || pn / g.stride_h >= g.out_h) continue;
          tap_i[nrows] = i;
          tap_p[nrows++] = pn / g.stride_h;
        }
        if (nrows == 0) {  // no output row reads input row h (strided layers): zero gradient
          for (int64_t col = 0; col < g.in_w; ++col) {
            float* out = dx + (row * g.in_w + col) * C;
            std::fill(out + c_begin, out + c_end, 0.f);
          }
          continue;
        }
        for (int64_t r = 0; r < std::min(g.stride_w, g.in_w); ++r) {
          // This residue's input columns r, r + s, ... form the tiles; their output columns
          // are consecutive for every tap. Filter columns j that read them, with the output
          // column of the residue's first input column.
          int64_t ncols = 0;
          for (int64_t j = 0; j < g.k_w; ++j) {
            const int64_t qn = r + g.pad_left - j * g.dil_w;
            if (((qn % g.stride_w) + g.stride_w) % g.stride_w != 0) continue;
            tap_j[ncols] = j;
            tap_q[ncols++] = qn / g.stride_w;  // exact: qn is a multiple
          }
          const int64_t count = (g.in_w - r + g.stride_w - 1) / g.stride_w;
          for (int64_t u0 = 0; u0 < count; u0 += tile_p) {
            const int pt = static_cast<int>(std::min<int64_t>(tile_p, count - u0));
            int64_t nvalid = 0;
            for (int k = 0; k < pt; ++k) sdy[k] = 0.f;
            for (int64_t a = 0; a < nrows; ++a) {
              const int64_t orow = n * g.out_h + tap_p[a];
              for (int64_t b = 0; b < ncols; ++b) {
                const int64_t q_first = tap_q[b] + u0;
                // Output columns of the tile in [0, out_w): k in [k_lo, k_hi).
                const int64_t k_lo = std::max<int64_t>(0, -q_first);
                const int64_t k_hi = std::min<int64_t>(pt, g.out_w - q_first);
                if (k_lo >= k_hi) continue;
                const float* ds = dysum + orow * g.out_w + q_first;
                for (int64_t k = k_lo; k < k_hi; ++k) sdy[k] += ds[k];
                tap_dy[nvalid] = dyb + orow * row_floats + (q_first - q_min) * kOBlock;
                tap_ids[nvalid++] = tap_i[a] * g.k_w + tap_j[b];
              }
            }
            if (nvalid == 0) {  // no tap reads these pixels: zero gradient
              for (int k = 0; k < pt; ++k) {
                float* out = dx + ((row * g.in_w) + r + (u0 + k) * g.stride_w) * C;
                std::fill(out + c_begin, out + c_end, 0.f);
              }
              continue;
            }
            for (int k = 0; k < pt; ++k) {
              const float* xin = x + ((row * g.in_w) + r + (u0 + k) * g.stride_w) * C;
              float* dst = xl.data() + k * tt * W;
              for (int t = 0; t < tt; ++t) {  // vector copies: no library call per pixel
                const int64_t c0 = c_begin + t * W;
                if (c0 + W <= c_end) {
                  Vec::Store(dst + t * W, Vec::Load(xin + c0));
                } else {
                  for (int l = 0; l < W; ++l) dst[t * W + l] = c0 + l < c_end ? xin[c0 + l] : 0.f;
                }
              }
            }
            {
              const int64_t width = tt * W;
              BwdArgs args{tap_dy.data(), tap_ids.data(), nvalid, oblocks, block_stride,
                           wchunk, width, o_pad * width, xl.data(), acc.data()};
              table.fn[tt][pt](args);
            }
            for (int k = 0; k < pt; ++k) {
              float* out = dx + ((row * g.in_w) + r + (u0 + k) * g.stride_w) * C + c_begin;
              const float* a = acc.data() + k * tt * W;
              const float* xv = xl.data() + k * tt * W;
              const typename Vec::V sdy_v = Vec::Set1(sdy[k]);
              for (int t = 0; t < tt; ++t) {
                // The bounds form left out - x * sum(dy); the range form did not.
                const bool range = BwdUsesRange(k, t, tt);
                const int64_t c0 = t * W, n_c = std::min<int64_t>(W, c_end - c_begin - c0);
                if (n_c <= 0) break;
                typename Vec::V v = Vec::Load(a + c0);
                if (!range) v = Vec::Sub(v, Vec::Fma(Vec::Load(xv + c0), sdy_v, Vec::Zero()));
                if (n_c == W) {
                  Vec::Store(out + c0, v);
                } else {
                  float tmp[W];
                  Vec::Store(tmp, v);
                  std::copy(tmp, tmp + n_c, out + c0);
                }
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

// The version's entry points, named with its suffix (declared in adder_core.cc): each ISA file
// says PKKD_DEFINE_ENTRY_POINTS(Avx2, avx2) after including this file.
#ifndef PKKD_DEFINE_ENTRY_POINTS
#define PKKD_DEFINE_ENTRY_POINTS(S, NS)                                                        \
  namespace pkkd {                                                                           \
  void Forward##S(const AdderGeometry& g, const float* x, const float* w, float* y,          \
                  const ParallelFor& pf) {                                                   \
    NS::Forward(g, x, w, y, pf);                                                             \
  }                                                                                          \
  int64_t PackedFilterFloats##S(const AdderGeometry& g) { return NS::PackedFilterFloats(g); } \
  int64_t PackedSumFloats##S(const AdderGeometry& g) { return NS::PackedSumFloats(g); }       \
  void PackFilter##S(const AdderGeometry& g, const float* w, float* wp, float* wsum,         \
                     const ParallelFor& pf) {                                                \
    NS::PackForwardFilter(g, w, wp, wsum, pf);                                               \
  }                                                                                          \
  void ForwardPacked##S(const AdderGeometry& g, const float* x, const float* wp,             \
                        const float* wsum, float* y, const ParallelFor& pf) {                \
    NS::ForwardPacked(g, x, wp, wsum, y, pf);                                                \
  }                                                                                          \
  void BackpropInput##S(const AdderGeometry& g, const float* x, const float* w,              \
                        const float* dy, float* dx, const ParallelFor& pf) {                 \
    NS::BackpropInput(g, x, w, dy, dx, pf);                                                  \
  }                                                                                          \
  }  // namespace pkkd
#endif
