// Compute core of the adder (L1-distance) convolution: float32, NHWC input, HWIO filter.
//
// No TensorFlow headers: the TF op and the TFLite kernel share this code. Work is split by the
// caller's ParallelFor (TF's intra-op pool in the TF op, a plain loop elsewhere). The x86-64
// build carries an AVX-512 and an AVX2 version, picked at run time; the aarch64 build a NEON
// version; other CPUs get a portable scalar version.
#ifndef KERAS_PKKD_CUSTOM_OPS_ADDER_CORE_H_
#define KERAS_PKKD_CUSTOM_OPS_ADDER_CORE_H_

#include <cstdint>
#include <functional>
#include <vector>

namespace pkkd {

// Sizes of one adder convolution. pad_top / pad_left are the zero rows / columns before the
// input (SAME padding puts the odd one after, as TF does); out_h / out_w follow from them.
struct AdderGeometry {
  int64_t batch = 0, in_h = 0, in_w = 0, in_c = 0;
  int64_t k_h = 0, k_w = 0, out_c = 0;
  int64_t stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1;
  int64_t pad_top = 0, pad_left = 0;
  int64_t out_h = 0, out_w = 0;
};

// Fills out_h, out_w, pad_top, pad_left from the rest, like tf.nn.conv2d. Returns false when the
// output would be empty (VALID padding with an input smaller than the dilated filter).
bool ComputeAdderGeometry(bool same_padding, AdderGeometry* g);

// Runs fn(begin, end) over [0, total) in pieces, possibly in parallel; cost_per_unit is an
// estimate of the work in one unit (in cycles), used to choose the piece size.
using ParallelFor = std::function<void(int64_t total, int64_t cost_per_unit,
                                       const std::function<void(int64_t, int64_t)>& fn)>;

// A ParallelFor that runs everything on the calling thread.
void SerialFor(int64_t total, int64_t cost_per_unit,
               const std::function<void(int64_t, int64_t)>& fn);

// y[n,p,q,t] = -sum_{i,j,c} |x_pad[n, p*sh + i*dh, q*sw + j*dw, c] - w[i,j,c,t]|,
// x_pad being x with zero padding. Computed as sum(x) + sum(w) - 2 sum(min(x, w)).
void AdderForward(const AdderGeometry& g, const float* x, const float* w, float* y,
                  const ParallelFor& parallel_for);

// Inference with a constant filter: pack it once (AdderPackFilter), then run any number of
// forwards on it (AdderForwardPacked) instead of AdderForward, which packs on every call.
// The layout belongs to the kernel version of this CPU (AdderIsaName) and to the filter sizes.
struct AdderPackedFilter {
  std::vector<float> data, sums;
  int64_t k_h = -1, k_w = -1, in_c = -1, out_c = -1;
  const char* isa = nullptr;
};

// Packs w (HWIO, sizes from g.k_h, g.k_w, g.in_c, g.out_c).
void AdderPackFilter(const AdderGeometry& g, const float* w, AdderPackedFilter* packed,
                     const ParallelFor& parallel_for);

// Same result as AdderForward(g, x, w, y). Returns false (and computes nothing) when `packed`
// was made for other filter sizes or another kernel version.
bool AdderForwardPacked(const AdderGeometry& g, const float* x, const AdderPackedFilter& packed,
                        float* y, const ParallelFor& parallel_for);

// dx[n,h,w,c] = sum over the (tap, output pixel) pairs that read x[n,h,w,c] and over t of
// dy[n,p,q,t] * clip(w[i,j,c,t] - x[n,h,w,c], -1, 1)   (AdderNet's HardTanh input rule).
void AdderBackpropInput(const AdderGeometry& g, const float* x, const float* w,
                        const float* dy, float* dx, const ParallelFor& parallel_for);

// "avx512", "avx2", "neon" or "scalar": the version the two functions above run on this CPU.
const char* AdderIsaName();

}  // namespace pkkd

#endif  // KERAS_PKKD_CUSTOM_OPS_ADDER_CORE_H_
