// Shared pieces of the TF kernels of the adder ops (CPU in adder_conv2d_op.cc, CUDA in
// adder_conv2d_op_gpu.cu.cc): attribute parsing, shape checks, float32 staging of half inputs.
#ifndef KERAS_PKKD_CUSTOM_OPS_ADDER_CONV2D_OP_H_
#define KERAS_PKKD_CUSTOM_OPS_ADDER_CONV2D_OP_H_

#include <string>
#include <type_traits>
#include <vector>

#include "adder_core.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"

namespace pkkd {

// The float32 computations a device provides (AdderGeometry is in adder_core.h).
template <typename Device>
struct AdderFunctors {
  static void Forward(tensorflow::OpKernelContext* ctx, const AdderGeometry& g, const float* x,
                      const float* w, float* y);
  static void BackpropInput(tensorflow::OpKernelContext* ctx, const AdderGeometry& g,
                            const float* x, const float* w, const float* dy, float* dx);
};

struct AdderAttrs {
  std::vector<int32_t> strides, dilations;
  bool same = false;

  tensorflow::Status Init(tensorflow::OpKernelConstruction* ctx) {
    TF_RETURN_IF_ERROR(ctx->GetAttr("strides", &strides));
    TF_RETURN_IF_ERROR(ctx->GetAttr("dilations", &dilations));
    std::string padding;
    TF_RETURN_IF_ERROR(ctx->GetAttr("padding", &padding));
    if (strides.size() != 2 || strides[0] < 1 || strides[1] < 1) {
      return tensorflow::errors::InvalidArgument(
          "AdderConv2D strides must be two positive integers [s_h, s_w]");
    }
    if (dilations.size() != 2 || dilations[0] < 1 || dilations[1] < 1) {
      return tensorflow::errors::InvalidArgument(
          "AdderConv2D dilations must be two positive integers [d_h, d_w]");
    }
    same = padding == "SAME";
    return tensorflow::Status();
  }
};

inline tensorflow::Status MakeGeometry(const AdderAttrs& a, const tensorflow::TensorShape& x,
                                       const tensorflow::TensorShape& w, AdderGeometry* g) {
  using tensorflow::errors::InvalidArgument;
  if (x.dims() != 4) {
    return InvalidArgument("AdderConv2D input must be rank 4 (N, H, W, C), got shape ",
                           x.DebugString());
  }
  if (w.dims() != 4) {
    return InvalidArgument("AdderConv2D filter must be rank 4 (k_h, k_w, C_in, C_out), got shape ",
                           w.DebugString());
  }
  if (x.dim_size(3) != w.dim_size(2)) {
    return InvalidArgument("AdderConv2D input has ", x.dim_size(3),
                           " channels but the filter expects ", w.dim_size(2), " (input ",
                           x.DebugString(), ", filter ", w.DebugString(), ")");
  }
  if (w.dim_size(0) < 1 || w.dim_size(1) < 1) {
    return InvalidArgument("AdderConv2D filter height and width must be >= 1, got ",
                           w.DebugString());
  }
  g->batch = x.dim_size(0);
  g->in_h = x.dim_size(1);
  g->in_w = x.dim_size(2);
  g->in_c = x.dim_size(3);
  g->k_h = w.dim_size(0);
  g->k_w = w.dim_size(1);
  g->out_c = w.dim_size(3);
  g->stride_h = a.strides[0];
  g->stride_w = a.strides[1];
  g->dil_h = a.dilations[0];
  g->dil_w = a.dilations[1];
  if (!ComputeAdderGeometry(a.same, g) && !a.same) {
    return InvalidArgument("AdderConv2D with VALID padding: input ", x.DebugString(),
                           " is smaller than the dilated filter ", w.DebugString());
  }
  return tensorflow::Status();
}

// Conversion of half / bfloat16 buffers to and from float32 on a device. Specialized for
// CPUDevice in adder_conv2d_op.cc (Eigen) and for GPUDevice in adder_conv2d_op_gpu.cu.cc.
template <typename Device, typename T>
struct FloatConvert;  // static void ToFloat(ctx, const T*, float*, n), FromFloat(ctx, const float*, T*, n)

// A float32 view of a T tensor: the tensor itself for float, a converted copy otherwise.
template <typename Device, typename T>
class FloatInput {
 public:
  FloatInput(tensorflow::OpKernelContext* ctx, const tensorflow::Tensor& t) {
    if constexpr (std::is_same<T, float>::value) {
      data_ = t.flat<float>().data();
    } else {
      status_ = ctx->allocate_temp(tensorflow::DT_FLOAT, t.shape(), &copy_);
      if (!status_.ok()) return;
      FloatConvert<Device, T>::ToFloat(ctx, t.flat<T>().data(), copy_.flat<float>().data(),
                                       t.NumElements());
      data_ = copy_.flat<float>().data();
    }
  }
  const tensorflow::Status& status() const { return status_; }
  const float* data() const { return data_; }

 private:
  tensorflow::Status status_;
  tensorflow::Tensor copy_;
  const float* data_ = nullptr;
};

// A float32 buffer for a T output; Finish() converts it into the output when T is not float.
template <typename Device, typename T>
class FloatOutput {
 public:
  FloatOutput(tensorflow::OpKernelContext* ctx, tensorflow::Tensor* out) : ctx_(ctx), out_(out) {
    if constexpr (std::is_same<T, float>::value) {
      data_ = out->flat<float>().data();
    } else {
      status_ = ctx->allocate_temp(tensorflow::DT_FLOAT, out->shape(), &buffer_);
      if (status_.ok()) data_ = buffer_.flat<float>().data();
    }
  }
  const tensorflow::Status& status() const { return status_; }
  float* data() { return data_; }
  void Finish() {
    if constexpr (!std::is_same<T, float>::value) {
      if (!ctx_->status().ok()) return;  // the compute kernel already failed
      FloatConvert<Device, T>::FromFloat(ctx_, buffer_.flat<float>().data(),
                                         out_->flat<T>().data(), out_->NumElements());
    }
  }

 private:
  tensorflow::OpKernelContext* ctx_;
  tensorflow::Tensor* out_;
  tensorflow::Status status_;
  tensorflow::Tensor buffer_;
  float* data_ = nullptr;
};

template <typename Device, typename T>
class AdderConv2DOp : public tensorflow::OpKernel {
 public:
  explicit AdderConv2DOp(tensorflow::OpKernelConstruction* ctx) : tensorflow::OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, attrs_.Init(ctx));
  }

  void Compute(tensorflow::OpKernelContext* ctx) override {
    const tensorflow::Tensor& x = ctx->input(0);
    const tensorflow::Tensor& w = ctx->input(1);
    AdderGeometry g;
    OP_REQUIRES_OK(ctx, MakeGeometry(attrs_, x.shape(), w.shape(), &g));
    tensorflow::Tensor* y = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(
                            0, tensorflow::TensorShape({g.batch, g.out_h, g.out_w, g.out_c}), &y));
    if (y->NumElements() == 0) return;
    FloatInput<Device, T> xf(ctx, x), wf(ctx, w);
    OP_REQUIRES_OK(ctx, xf.status());
    OP_REQUIRES_OK(ctx, wf.status());
    FloatOutput<Device, T> yf(ctx, y);
    OP_REQUIRES_OK(ctx, yf.status());
    AdderFunctors<Device>::Forward(ctx, g, xf.data(), wf.data(), yf.data());
    yf.Finish();
  }

 private:
  AdderAttrs attrs_;
};

template <typename Device, typename T>
class AdderConv2DBackpropInputOp : public tensorflow::OpKernel {
 public:
  explicit AdderConv2DBackpropInputOp(tensorflow::OpKernelConstruction* ctx)
      : tensorflow::OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, attrs_.Init(ctx));
  }

  void Compute(tensorflow::OpKernelContext* ctx) override {
    const tensorflow::Tensor& x = ctx->input(0);
    const tensorflow::Tensor& w = ctx->input(1);
    const tensorflow::Tensor& dy = ctx->input(2);
    AdderGeometry g;
    OP_REQUIRES_OK(ctx, MakeGeometry(attrs_, x.shape(), w.shape(), &g));
    const tensorflow::TensorShape expected({g.batch, g.out_h, g.out_w, g.out_c});
    OP_REQUIRES(ctx, dy.shape() == expected,
                tensorflow::errors::InvalidArgument(
                    "AdderConv2DBackpropInput out_backprop has shape ", dy.shape().DebugString(),
                    " but the forward output has shape ", expected.DebugString()));
    tensorflow::Tensor* dx = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x.shape(), &dx));
    if (dx->NumElements() == 0) return;
    FloatInput<Device, T> xf(ctx, x), wf(ctx, w), dyf(ctx, dy);
    OP_REQUIRES_OK(ctx, xf.status());
    OP_REQUIRES_OK(ctx, wf.status());
    OP_REQUIRES_OK(ctx, dyf.status());
    FloatOutput<Device, T> dxf(ctx, dx);
    OP_REQUIRES_OK(ctx, dxf.status());
    AdderFunctors<Device>::BackpropInput(ctx, g, xf.data(), wf.data(), dyf.data(), dxf.data());
    dxf.Finish();
  }

 private:
  AdderAttrs attrs_;
};

// Registers both adder kernels for one device and dtype (used by the CPU and the CUDA file).
#define PKKD_REGISTER_ADDER_KERNELS(DEVICE_TYPE, DeviceClass, T)                                   \
  REGISTER_KERNEL_BUILDER(                                                                \
      Name("Pkkd>AdderConv2D").Device(DEVICE_TYPE).TypeConstraint<T>("T"),                     \
      ::pkkd::AdderConv2DOp<DeviceClass, T>);                                                  \
  REGISTER_KERNEL_BUILDER(                                                                \
      Name("Pkkd>AdderConv2DBackpropInput").Device(DEVICE_TYPE).TypeConstraint<T>("T"),        \
      ::pkkd::AdderConv2DBackpropInputOp<DeviceClass, T>)

}  // namespace pkkd

#endif  // KERAS_PKKD_CUSTOM_OPS_ADDER_CONV2D_OP_H_
