// CPU kernels of the adder ops: the compute core on TF's intra-op thread pool.
#define EIGEN_USE_THREADS
#include "adder_conv2d_op.h"

#include "tensorflow/core/framework/register_types.h"
#include "tensorflow/core/lib/core/threadpool.h"

namespace pkkd {

using CPUDevice = Eigen::ThreadPoolDevice;

namespace {
ParallelFor IntraOpPool(tensorflow::OpKernelContext* ctx) {
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  return [pool](int64_t total, int64_t cost_per_unit,
                const std::function<void(int64_t, int64_t)>& fn) {
    pool->ParallelFor(total, cost_per_unit, fn);
  };
}
}  // namespace

template <typename T>
struct FloatConvert<CPUDevice, T> {
  static void ToFloat(tensorflow::OpKernelContext* ctx, const T* in, float* out, int64_t n) {
    Eigen::TensorMap<Eigen::Tensor<const T, 1>> src(in, n);
    Eigen::TensorMap<Eigen::Tensor<float, 1>> dst(out, n);
    dst.device(ctx->eigen_device<CPUDevice>()) = src.template cast<float>();
  }
  static void FromFloat(tensorflow::OpKernelContext* ctx, const float* in, T* out, int64_t n) {
    Eigen::TensorMap<Eigen::Tensor<const float, 1>> src(in, n);
    Eigen::TensorMap<Eigen::Tensor<T, 1>> dst(out, n);
    dst.device(ctx->eigen_device<CPUDevice>()) = src.template cast<T>();
  }
};

template <>
void AdderFunctors<CPUDevice>::Forward(tensorflow::OpKernelContext* ctx, const AdderGeometry& g,
                                       const float* x, const float* w, float* y) {
  AdderForward(g, x, w, y, IntraOpPool(ctx));
}

template <>
void AdderFunctors<CPUDevice>::BackpropInput(tensorflow::OpKernelContext* ctx,
                                             const AdderGeometry& g, const float* x,
                                             const float* w, const float* dy, float* dx) {
  AdderBackpropInput(g, x, w, dy, dx, IntraOpPool(ctx));
}

class AdderCpuIsaOp : public tensorflow::OpKernel {
 public:
  using tensorflow::OpKernel::OpKernel;
  void Compute(tensorflow::OpKernelContext* ctx) override {
    tensorflow::Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, tensorflow::TensorShape({}), &out));
    out->scalar<tensorflow::tstring>()() = AdderIsaName();
  }
};
REGISTER_KERNEL_BUILDER(Name("Pkkd>AdderCpuIsa").Device(tensorflow::DEVICE_CPU), AdderCpuIsaOp);

PKKD_REGISTER_ADDER_KERNELS(tensorflow::DEVICE_CPU, CPUDevice, float);
PKKD_REGISTER_ADDER_KERNELS(tensorflow::DEVICE_CPU, CPUDevice, Eigen::half);
PKKD_REGISTER_ADDER_KERNELS(tensorflow::DEVICE_CPU, CPUDevice, Eigen::bfloat16);

}  // namespace pkkd
