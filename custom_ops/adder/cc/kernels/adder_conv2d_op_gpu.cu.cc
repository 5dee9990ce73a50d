// CUDA kernels of the adder ops, the AdderFunctors<Eigen::GpuDevice> specialisation and the GPU
// kernel registrations (float, half, bfloat16). Compiled by nvcc (custom_ops/build.py), only
// when GOOGLE_CUDA is defined; the CPU kernels are in adder_conv2d_op.cc.
//
// Both kernels are "implicit GEMMs" in which the multiply-add is replaced by the adder rule:
//
//   forward      y[m, t]  = -sum_k |A[m, k] - B[k, t]|
//                m = (n, p, q) an output pixel, t an output channel,
//                k = (i, j, c) = (i * k_w + j) * C_in + c a filter tap and input channel,
//                A[m, k] = x_pad[n, p*s_h + i*d_h - pad_top, q*s_w + j*d_w - pad_left, c]
//                          (0 outside the input), B[k, t] = w[i, j, c, t] (HWIO is already a
//                          row-major (k_h*k_w*C_in) x C_out matrix).
//
//   input grad   dx[m, c] = sum_k A[m, k] * clip(B[k, c] - x[m, c], -1, 1)
//                m = (n, h, w) an input pixel, c an input channel,
//                k = (i, j, t) = (i * k_w + j) * C_out + t a filter tap and output channel,
//                A[m, k] = dy[n, p, q, t] where p*s_h = h + pad_top - i*d_h and
//                          q*s_w = w + pad_left - j*d_w (0 when (p, q) is not an output pixel,
//                          i.e. that tap does not read x[n, h, w, :]), B[k, c] = w[i, j, c, t].
//                A gather per input element: every dx element is written by exactly one thread,
//                no atomics. With stride s the A rows are zero for all but 1/s^2 of the taps;
//                those zeros are still multiplied (simple and correct, not optimal).
//
// Tiling (same skeleton for both): a block of kThreads = 256 threads computes a BM x BN tile of
// the result (BM rows m, BN columns t or c). The reduction axis k is walked in chunks of
// kBK = 16: each chunk, the block stages A[m0:m0+BM, k0:k0+16] and B[k0:k0+16, n0:n0+BN] in
// shared memory (zeros outside the matrices, so padding and ragged edges need no special case in
// the inner loop), then every thread updates its TM x TN accumulators from shared memory.
// Thread (ty, tx) owns rows ty + r * (BM/TM) and columns tx + s * (BN/TN): strided, so a warp
// reads consecutive shared-memory words (no bank conflicts) and writes consecutive output words.
// Global loads are arranged so that consecutive threads read consecutive addresses: along c of x
// and along t of w in the forward, along t of dy and w in the input gradient.
// Accumulation is float32, in the order k = 0, 1, 2, ... within each thread.
#if GOOGLE_CUDA

#define EIGEN_USE_GPU

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>
#include <type_traits>

#include "adder_conv2d_op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"

namespace pkkd {

using GPUDevice = Eigen::GpuDevice;

namespace gpu {

constexpr int kThreads = 256;
constexpr int kBK = 16;

// Sizes as int (fast division on the GPU); row indices and memory offsets are int64.
struct Dims {
  int H, W, C;          // input
  int OH, OW, O;        // output
  int KW;               // filter width (the height only enters through K)
  int sh, sw, dh, dw;   // strides, dilations
  int pt, pl;           // zero rows before the input, zero columns before it
};

// ---------------------------------------------------------------------------------------------
// Forward: y[m, t] = -sum_k |A[m, k] - B[k, t]|   (see the top of the file).
// ---------------------------------------------------------------------------------------------
template <int BM, int BN, int TM, int TN>
__global__ void __launch_bounds__(kThreads)
    AdderForwardKernel(const float* __restrict__ x, const float* __restrict__ w,
                       float* __restrict__ y, int64_t M, int K, Dims d) {
  constexpr int kRowThreads = BM / TM;  // threads along the rows of the tile (ty)
  constexpr int kColThreads = BN / TN;  // threads along the columns of the tile (tx)
  static_assert(kRowThreads * kColThreads == kThreads, "tile does not match the block");
  constexpr int kALoads = kBK * BM / kThreads;  // A elements each thread stages per chunk
  constexpr int kARowStep = kThreads / kBK;
  constexpr int kBLoads = kBK * BN / kThreads;  // B elements each thread stages per chunk
  constexpr int kBRowStep = kThreads / BN;
  static_assert(kALoads * kThreads == kBK * BM && kBLoads * kThreads == kBK * BN, "");
  static_assert(kThreads % kBK == 0 && kThreads % BN == 0, "");

  // +1 column: the staging stores walk down a column (k varies fastest across threads).
  __shared__ float As[kBK][BM + 1];
  __shared__ float Bs[kBK][BN + 1];

  const int tid = threadIdx.x;
  const int tx = tid % kColThreads, ty = tid / kColThreads;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * BM;
  const int t0 = blockIdx.y * BN;

  // A staging: this thread loads column a_k of the chunk for the rows
  // a_row(r) = tid / kBK + r * kARowStep. Their output pixel (n, p, q) is decoded once here:
  // a_base = offset of image n in x, (a_h0, a_w0) = input position of tap (0, 0).
  const int a_k = tid % kBK;
  int64_t a_base[kALoads];
  int a_h0[kALoads], a_w0[kALoads];
  bool a_ok[kALoads];
#pragma unroll
  for (int r = 0; r < kALoads; ++r) {
    const int64_t m = m0 + tid / kBK + r * kARowStep;
    a_ok[r] = m < M;
    const int64_t mm = a_ok[r] ? m : 0;
    const int64_t pixels = static_cast<int64_t>(d.OH) * d.OW;
    const int64_t n = mm / pixels;
    const int rem = static_cast<int>(mm - n * pixels);
    const int p = rem / d.OW, q = rem % d.OW;
    a_base[r] = n * d.H * d.W * d.C;
    a_h0[r] = p * d.sh - d.pt;
    a_w0[r] = q * d.sw - d.pl;
  }
  // B staging: column b_t of the tile, rows b_k0 + r * kBRowStep of the chunk.
  const int b_t = tid % BN, b_k0 = tid / BN;
  const int b_col = t0 + b_t;
  const bool b_col_ok = b_col < d.O;

  float acc[TM][TN];
#pragma unroll
  for (int r = 0; r < TM; ++r)
#pragma unroll
    for (int s = 0; s < TN; ++s) acc[r][s] = 0.f;

  for (int k0 = 0; k0 < K; k0 += kBK) {
    // Stage A: decode k = (i * k_w + j) * C + c once, then gather one value per row.
    {
      const int k = k0 + a_k;
      const bool k_ok = k < K;
      int c = 0, i = 0, j = 0;
      if (k_ok) {
        c = k % d.C;
        const int tap = k / d.C;
        i = tap / d.KW;
        j = tap % d.KW;
      }
#pragma unroll
      for (int r = 0; r < kALoads; ++r) {
        float v = 0.f;  // outside the input (zero padding), past K or past M
        const int h = a_h0[r] + i * d.dh, wc = a_w0[r] + j * d.dw;
        if (k_ok && a_ok[r] && h >= 0 && h < d.H && wc >= 0 && wc < d.W) {
          v = x[a_base[r] + (static_cast<int64_t>(h) * d.W + wc) * d.C + c];
        }
        As[a_k][tid / kBK + r * kARowStep] = v;
      }
    }
    // Stage B: w is a row-major K x O matrix. Zero past K (|0 - 0| adds nothing) or past O.
#pragma unroll
    for (int r = 0; r < kBLoads; ++r) {
      const int kk = b_k0 + r * kBRowStep;
      const int k = k0 + kk;
      Bs[kk][b_t] = (k < K && b_col_ok) ? w[static_cast<int64_t>(k) * d.O + b_col] : 0.f;
    }
    __syncthreads();

#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      float a[TM], b[TN];
#pragma unroll
      for (int r = 0; r < TM; ++r) a[r] = As[kk][ty + r * kRowThreads];
#pragma unroll
      for (int s = 0; s < TN; ++s) b[s] = Bs[kk][tx + s * kColThreads];
#pragma unroll
      for (int r = 0; r < TM; ++r)
#pragma unroll
        for (int s = 0; s < TN; ++s) acc[r][s] += fabsf(a[r] - b[s]);
    }
    __syncthreads();
  }

#pragma unroll
  for (int r = 0; r < TM; ++r) {
    const int64_t m = m0 + ty + r * kRowThreads;
    if (m >= M) continue;
#pragma unroll
    for (int s = 0; s < TN; ++s) {
      const int t = t0 + tx + s * kColThreads;
      if (t < d.O) y[m * d.O + t] = -acc[r][s];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Input gradient: dx[m, c] = sum_k A[m, k] * clip(B[k, c] - x[m, c], -1, 1)   (see the top).
// ---------------------------------------------------------------------------------------------
template <int BM, int BN, int TM, int TN>
__global__ void __launch_bounds__(kThreads)
    AdderBackpropInputKernel(const float* __restrict__ x, const float* __restrict__ w,
                             const float* __restrict__ dy, float* __restrict__ dx, int64_t M,
                             int K, Dims d) {
  constexpr int kRowThreads = BM / TM;
  constexpr int kColThreads = BN / TN;
  static_assert(kRowThreads * kColThreads == kThreads, "tile does not match the block");
  constexpr int kALoads = kBK * BM / kThreads;
  constexpr int kARowStep = kThreads / kBK;
  constexpr int kBLoads = kBK * BN / kThreads;
  constexpr int kBColStep = kThreads / kBK;
  static_assert(kALoads * kThreads == kBK * BM && kBLoads * kThreads == kBK * BN, "");
  static_assert(kThreads % kBK == 0, "");

  __shared__ float As[kBK][BM + 1];
  __shared__ float Bs[kBK][BN + 1];

  const int tid = threadIdx.x;
  const int tx = tid % kColThreads, ty = tid / kColThreads;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * BM;
  const int c0 = blockIdx.y * BN;

  // A staging: column a_k of the chunk, rows tid / kBK + r * kARowStep. Their input pixel
  // (n, h, w) is decoded once: a_base = offset of image n in dy, (a_h, a_w) = (h + pad_top,
  // w + pad_left), so that tap (i, j) reads output row p = (a_h - i*d_h) / s_h when divisible.
  const int a_k = tid % kBK;
  int64_t a_base[kALoads];
  int a_h[kALoads], a_w[kALoads];
  bool a_ok[kALoads];
#pragma unroll
  for (int r = 0; r < kALoads; ++r) {
    const int64_t m = m0 + tid / kBK + r * kARowStep;
    a_ok[r] = m < M;
    const int64_t mm = a_ok[r] ? m : 0;
    const int64_t pixels = static_cast<int64_t>(d.H) * d.W;
    const int64_t n = mm / pixels;
    const int rem = static_cast<int>(mm - n * pixels);
    a_base[r] = n * d.OH * d.OW * d.O;
    a_h[r] = rem / d.W + d.pt;
    a_w[r] = rem % d.W + d.pl;
  }
  // B staging uses the same chunk column a_k (k varies fastest across threads: consecutive t,
  // consecutive addresses in w), for the tile columns tid / kBK + r * kBColStep.

  // The x values of this thread's outputs stay in registers for the whole reduction.
  float xv[TM][TN];
  float acc[TM][TN];
#pragma unroll
  for (int r = 0; r < TM; ++r) {
    const int64_t m = m0 + ty + r * kRowThreads;
#pragma unroll
    for (int s = 0; s < TN; ++s) {
      const int c = c0 + tx + s * kColThreads;
      xv[r][s] = (m < M && c < d.C) ? x[m * d.C + c] : 0.f;
      acc[r][s] = 0.f;
    }
  }

  for (int k0 = 0; k0 < K; k0 += kBK) {
    const int k = k0 + a_k;
    const bool k_ok = k < K;
    int t = 0, i = 0, j = 0, tap = 0;
    if (k_ok) {
      t = k % d.O;
      tap = k / d.O;
      i = tap / d.KW;
      j = tap % d.KW;
    }
    // Stage A: dy at the output pixel that reads (h, w) through tap (i, j), or 0 if none does.
#pragma unroll
    for (int r = 0; r < kALoads; ++r) {
      float v = 0.f;
      const int ph = a_h[r] - i * d.dh, qw = a_w[r] - j * d.dw;
      if (k_ok && a_ok[r] && ph >= 0 && qw >= 0 && ph % d.sh == 0 && qw % d.sw == 0) {
        const int p = ph / d.sh, q = qw / d.sw;
        if (p < d.OH && q < d.OW) {
          v = dy[a_base[r] + (static_cast<int64_t>(p) * d.OW + q) * d.O + t];
        }
      }
      As[a_k][tid / kBK + r * kARowStep] = v;
    }
    // Stage B: w[i, j, c, t] = w[(tap * C + c) * O + t]. Zero past K (A is zero there too).
#pragma unroll
    for (int r = 0; r < kBLoads; ++r) {
      const int cl = tid / kBK + r * kBColStep;
      const int c = c0 + cl;
      Bs[a_k][cl] = (k_ok && c < d.C)
                        ? w[(static_cast<int64_t>(tap) * d.C + c) * d.O + t]
                        : 0.f;
    }
    __syncthreads();

#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      float a[TM], b[TN];
#pragma unroll
      for (int r = 0; r < TM; ++r) a[r] = As[kk][ty + r * kRowThreads];
#pragma unroll
      for (int s = 0; s < TN; ++s) b[s] = Bs[kk][tx + s * kColThreads];
#pragma unroll
      for (int r = 0; r < TM; ++r)
#pragma unroll
        for (int s = 0; s < TN; ++s)
          acc[r][s] += a[r] * fminf(fmaxf(b[s] - xv[r][s], -1.f), 1.f);
    }
    __syncthreads();
  }

#pragma unroll
  for (int r = 0; r < TM; ++r) {
    const int64_t m = m0 + ty + r * kRowThreads;
    if (m >= M) continue;
#pragma unroll
    for (int s = 0; s < TN; ++s) {
      const int c = c0 + tx + s * kColThreads;
      if (c < d.C) dx[m * d.C + c] = acc[r][s];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// float <-> half / bfloat16 staging. On raw 16-bit patterns, so that no Eigen GPU expression
// (and no Eigen half/bfloat16 device code) has to compile under nvcc.
// ---------------------------------------------------------------------------------------------
__device__ __forceinline__ float BitsToFloat(uint16_t b, std::true_type /*is_half*/) {
  return __half2float(__ushort_as_half(b));
}
__device__ __forceinline__ float BitsToFloat(uint16_t b, std::false_type /*bfloat16*/) {
  return __uint_as_float(static_cast<uint32_t>(b) << 16);
}
__device__ __forceinline__ uint16_t FloatToBits(float f, std::true_type /*is_half*/) {
  return __half_as_ushort(__float2half_rn(f));
}
__device__ __forceinline__ uint16_t FloatToBits(float f, std::false_type /*bfloat16*/) {
  // Round to nearest even, as Eigen::bfloat16 does; NaN stays a (quiet) NaN.
  const uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

template <bool kIsHalf>
__global__ void ToFloatKernel(const uint16_t* __restrict__ in, float* __restrict__ out,
                              int64_t n) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[e] = BitsToFloat(in[e], std::integral_constant<bool, kIsHalf>());
  }
}

template <bool kIsHalf>
__global__ void FromFloatKernel(const float* __restrict__ in, uint16_t* __restrict__ out,
                                int64_t n) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[e] = FloatToBits(in[e], std::integral_constant<bool, kIsHalf>());
  }
}

inline int ElementwiseBlocks(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 4096 ? (blocks > 0 ? blocks : 1) : 4096);
}

// Reports a failed launch (no GPU code for this card, a driver too old for the CUDA runtime
// the library was built with, ...) as an op error instead of leaving it for a later op.
inline bool CheckLaunch(tensorflow::OpKernelContext* ctx, const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess) return true;
  ctx->SetStatus(tensorflow::errors::Internal(
      "keras_pkkd adder op: launching the CUDA kernel ", what, " failed: ",
      cudaGetErrorName(err), " (", cudaGetErrorString(err),
      "). The library was built with CUDA ", CUDART_VERSION / 1000, ".",
      (CUDART_VERSION % 1000) / 10,
      "; the GPU driver must support it and the card must be one it was compiled for. "
      "Rebuild with KERAS_PKKD_CUDA=0 to use the CPU kernels."));
  return false;
}

template <typename T>
inline void ToFloat(tensorflow::OpKernelContext* ctx, const T* in, float* out, int64_t n) {
  constexpr bool kIsHalf = std::is_same<T, Eigen::half>::value;
  ToFloatKernel<kIsHalf><<<ElementwiseBlocks(n), kThreads, 0,
                           ctx->eigen_device<GPUDevice>().stream()>>>(
      reinterpret_cast<const uint16_t*>(in), out, n);
  CheckLaunch(ctx, "ToFloat");
}

template <typename T>
inline void FromFloat(tensorflow::OpKernelContext* ctx, const float* in, T* out, int64_t n) {
  constexpr bool kIsHalf = std::is_same<T, Eigen::half>::value;
  FromFloatKernel<kIsHalf><<<ElementwiseBlocks(n), kThreads, 0,
                             ctx->eigen_device<GPUDevice>().stream()>>>(
      in, reinterpret_cast<uint16_t*>(out), n);
  CheckLaunch(ctx, "FromFloat");
}

// Geometry in int; false (and an op error) when a size does not fit.
inline bool MakeDims(tensorflow::OpKernelContext* ctx, const AdderGeometry& g, Dims* d) {
  constexpr int64_t kMax = std::numeric_limits<int>::max();
  const int64_t taps = g.k_h * g.k_w;
  const int64_t values[] = {g.in_h,   g.in_w,     g.in_c,     g.out_h,   g.out_w,
                            g.out_c,  g.k_w,      g.stride_h, g.stride_w, g.dil_h,
                            g.dil_w,  g.pad_top,  g.pad_left, taps * g.in_c, taps * g.out_c,
                            g.in_h + g.pad_top + g.k_h * g.dil_h,
                            g.in_w + g.pad_left + g.k_w * g.dil_w};
  for (int64_t v : values) {
    if (v > kMax || v < 0) {
      ctx->SetStatus(tensorflow::errors::InvalidArgument(
          "keras_pkkd adder op (GPU): a size of this convolution exceeds 2^31"));
      return false;
    }
  }
  d->H = static_cast<int>(g.in_h);
  d->W = static_cast<int>(g.in_w);
  d->C = static_cast<int>(g.in_c);
  d->OH = static_cast<int>(g.out_h);
  d->OW = static_cast<int>(g.out_w);
  d->O = static_cast<int>(g.out_c);
  d->KW = static_cast<int>(g.k_w);
  d->sh = static_cast<int>(g.stride_h);
  d->sw = static_cast<int>(g.stride_w);
  d->dh = static_cast<int>(g.dil_h);
  d->dw = static_cast<int>(g.dil_w);
  d->pt = static_cast<int>(g.pad_top);
  d->pl = static_cast<int>(g.pad_left);
  return true;
}

// The tile shapes, chosen by the number of result columns (C_out forward, C_in backward):
// narrow layers get tall tiles so that few columns are wasted.
enum class Tile { kNarrow16, kMedium32, kWide64Tall, kWide64 };

inline Tile ChooseTile(int64_t rows, int cols) {
  if (cols <= 16) return Tile::kNarrow16;
  if (cols <= 32) return Tile::kMedium32;
  // 128-row tiles unless that leaves too few blocks to fill a large GPU.
  const int64_t blocks128 = ((rows + 127) / 128) * ((cols + 63) / 64);
  return blocks128 >= 512 ? Tile::kWide64Tall : Tile::kWide64;
}

template <int BM, int BN, int TM, int TN>
void LaunchForward(cudaStream_t stream, const float* x, const float* w, float* y, int64_t M,
                   int K, const Dims& d) {
  const dim3 grid(static_cast<unsigned>((M + BM - 1) / BM),
                  static_cast<unsigned>((d.O + BN - 1) / BN));
  AdderForwardKernel<BM, BN, TM, TN><<<grid, kThreads, 0, stream>>>(x, w, y, M, K, d);
}

template <int BM, int BN, int TM, int TN>
void LaunchBackpropInput(cudaStream_t stream, const float* x, const float* w, const float* dy,
                         float* dx, int64_t M, int K, const Dims& d) {
  const dim3 grid(static_cast<unsigned>((M + BM - 1) / BM),
                  static_cast<unsigned>((d.C + BN - 1) / BN));
  AdderBackpropInputKernel<BM, BN, TM, TN><<<grid, kThreads, 0, stream>>>(x, w, dy, dx, M, K,
                                                                          d);
}

}  // namespace gpu

template <>
void AdderFunctors<GPUDevice>::Forward(tensorflow::OpKernelContext* ctx, const AdderGeometry& g,
                                       const float* x, const float* w, float* y) {
  gpu::Dims d;
  if (!gpu::MakeDims(ctx, g, &d)) return;
  const int64_t M = g.batch * g.out_h * g.out_w;
  const int K = static_cast<int>(g.k_h * g.k_w * g.in_c);
  if (M == 0 || d.O == 0) return;
  const cudaStream_t stream = ctx->eigen_device<GPUDevice>().stream();
  switch (gpu::ChooseTile(M, d.O)) {
    case gpu::Tile::kNarrow16:
      gpu::LaunchForward<128, 16, 4, 2>(stream, x, w, y, M, K, d);
      break;
    case gpu::Tile::kMedium32:
      gpu::LaunchForward<128, 32, 4, 4>(stream, x, w, y, M, K, d);
      break;
    case gpu::Tile::kWide64Tall:
      gpu::LaunchForward<128, 64, 8, 4>(stream, x, w, y, M, K, d);
      break;
    case gpu::Tile::kWide64:
      gpu::LaunchForward<64, 64, 4, 4>(stream, x, w, y, M, K, d);
      break;
  }
  gpu::CheckLaunch(ctx, "AdderForward");
}

template <>
void AdderFunctors<GPUDevice>::BackpropInput(tensorflow::OpKernelContext* ctx,
                                             const AdderGeometry& g, const float* x,
                                             const float* w, const float* dy, float* dx) {
  gpu::Dims d;
  if (!gpu::MakeDims(ctx, g, &d)) return;
  const int64_t M = g.batch * g.in_h * g.in_w;
  const int K = static_cast<int>(g.k_h * g.k_w * g.out_c);
  if (M == 0 || d.C == 0) return;
  const cudaStream_t stream = ctx->eigen_device<GPUDevice>().stream();
  // No 128 x 64 tile here: each thread also keeps the x values of its TM x TN outputs in
  // registers, and 8 x 4 of them would push the kernel past 170 registers.
  switch (gpu::ChooseTile(M, d.C)) {
    case gpu::Tile::kNarrow16:
      gpu::LaunchBackpropInput<128, 16, 4, 2>(stream, x, w, dy, dx, M, K, d);
      break;
    case gpu::Tile::kMedium32:
      gpu::LaunchBackpropInput<128, 32, 4, 4>(stream, x, w, dy, dx, M, K, d);
      break;
    case gpu::Tile::kWide64Tall:
    case gpu::Tile::kWide64:
      gpu::LaunchBackpropInput<64, 64, 4, 4>(stream, x, w, dy, dx, M, K, d);
      break;
  }
  gpu::CheckLaunch(ctx, "AdderBackpropInput");
}

// float32 staging of half / bfloat16 tensors on the GPU (see FloatConvert in
// adder_conv2d_op.h).
template <typename T>
struct FloatConvert<GPUDevice, T> {
  static void ToFloat(tensorflow::OpKernelContext* ctx, const T* in, float* out, int64_t n) {
    gpu::ToFloat<T>(ctx, in, out, n);
  }
  static void FromFloat(tensorflow::OpKernelContext* ctx, const float* in, T* out, int64_t n) {
    gpu::FromFloat<T>(ctx, in, out, n);
  }
};

PKKD_REGISTER_ADDER_KERNELS(tensorflow::DEVICE_GPU, GPUDevice, float);
PKKD_REGISTER_ADDER_KERNELS(tensorflow::DEVICE_GPU, GPUDevice, Eigen::half);
PKKD_REGISTER_ADDER_KERNELS(tensorflow::DEVICE_GPU, GPUDevice, Eigen::bfloat16);

}  // namespace pkkd

#endif  // GOOGLE_CUDA
