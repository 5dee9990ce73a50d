// Registration of the adder ops: Pkkd>AdderConv2D and Pkkd>AdderConv2DBackpropInput.
// The filter gradient needs no op of its own: it is Conv2DBackpropFilter(x, dy) - w * sum(dy),
// composed in Python (keras_pkkd/ops/adder_conv2d.py).
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace pkkd {

using ::tensorflow::Status;
using ::tensorflow::errors::InvalidArgument;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

namespace {

Status CheckPair(InferenceContext* c, const char* name, std::vector<int32_t>* v) {
  TF_RETURN_IF_ERROR(c->GetAttr(name, v));
  if (v->size() != 2 || (*v)[0] < 1 || (*v)[1] < 1) {
    return InvalidArgument(name, " must be two positive integers [", name, "_h, ", name,
                           "_w]");
  }
  return Status();
}

// One spatial output size; unknown when the input size is.
Status OutputDim(InferenceContext* c, DimensionHandle in, int64_t k, int64_t s, int64_t d,
                 bool same, DimensionHandle* out) {
  if (!c->ValueKnown(in)) {
    *out = c->UnknownDim();
    return Status();
  }
  const int64_t n = c->Value(in), eff_k = (k - 1) * d + 1;
  if (same) {
    *out = c->MakeDim((n + s - 1) / s);
    return Status();
  }
  if (n < eff_k) {
    return InvalidArgument("AdderConv2D with VALID padding: input size ", n,
                           " is smaller than the dilated filter size ", eff_k);
  }
  *out = c->MakeDim((n - eff_k) / s + 1);
  return Status();
}

Status ForwardShape(InferenceContext* c) {
  ShapeHandle in, filter;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &in));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 4, &filter));
  DimensionHandle channels;
  TF_RETURN_IF_ERROR(c->Merge(c->Dim(in, 3), c->Dim(filter, 2), &channels));
  std::vector<int32_t> strides, dilations;
  TF_RETURN_IF_ERROR(CheckPair(c, "strides", &strides));
  TF_RETURN_IF_ERROR(CheckPair(c, "dilations", &dilations));
  std::string padding;
  TF_RETURN_IF_ERROR(c->GetAttr("padding", &padding));
  const bool same = padding == "SAME";
  DimensionHandle kh = c->Dim(filter, 0), kw = c->Dim(filter, 1);
  DimensionHandle out_h = c->UnknownDim(), out_w = c->UnknownDim();
  if (c->ValueKnown(kh)) {
    TF_RETURN_IF_ERROR(
        OutputDim(c, c->Dim(in, 1), c->Value(kh), strides[0], dilations[0], same, &out_h));
  }
  if (c->ValueKnown(kw)) {
    TF_RETURN_IF_ERROR(
        OutputDim(c, c->Dim(in, 2), c->Value(kw), strides[1], dilations[1], same, &out_w));
  }
  c->set_output(0, c->MakeShape({c->Dim(in, 0), out_h, out_w, c->Dim(filter, 3)}));
  return Status();
}

Status BackpropInputShape(InferenceContext* c) {
  TF_RETURN_IF_ERROR(ForwardShape(c));
  ShapeHandle dy, expected = c->output(0);
  TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 4, &dy));
  TF_RETURN_IF_ERROR(c->Merge(dy, expected, &dy));
  c->set_output(0, c->input(0));
  return Status();
}

}  // namespace

REGISTER_OP("Pkkd>AdderConv2D")
    .Input("input: T")
    .Input("filter: T")
    .Output("output: T")
    .Attr("T: {float, half, bfloat16}")
    .Attr("strides: list(int) = [1, 1]")
    .Attr("padding: {'SAME', 'VALID'} = 'VALID'")
    .Attr("dilations: list(int) = [1, 1]")
    .SetShapeFn(ForwardShape)
    .Doc(R"doc(
Adder (L1-distance) convolution of AdderNet, NHWC input and HWIO filter:
output[n,p,q,t] = -sum_{i,j,c} |input_pad[n, p*s_h + i*d_h, q*s_w + j*d_w, c] - filter[i,j,c,t]|.
Padded positions hold 0. strides and dilations are [h, w]. Accumulates in float32.
)doc");

REGISTER_OP("Pkkd>AdderConv2DBackpropInput")
    .Input("input: T")
    .Input("filter: T")
    .Input("out_backprop: T")
    .Output("input_backprop: T")
    .Attr("T: {float, half, bfloat16}")
    .Attr("strides: list(int) = [1, 1]")
    .Attr("padding: {'SAME', 'VALID'} = 'VALID'")
    .Attr("dilations: list(int) = [1, 1]")
    .SetShapeFn(BackpropInputShape)
    .Doc(R"doc(
AdderNet input gradient (HardTanh rule): input_backprop[n,h,w,c] = sum over the taps and output
pixels reading input[n,h,w,c] and over t of out_backprop * clip(filter - input, -1, 1).
)doc");

REGISTER_OP("Pkkd>AdderCpuIsa")
    .Output("isa: string")
    .SetShapeFn(::tensorflow::shape_inference::ScalarShape)
    .Doc(R"doc(
The instruction set the CPU kernels of the adder ops run on here: "avx512", "avx2" or "scalar"
(chosen once per process from the CPU, capped by the KERAS_PKKD_ISA environment variable).
)doc");

}  // namespace pkkd
