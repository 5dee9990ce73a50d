// Prints the sizes and field offsets of the TFLite structures the delegate uses. Compiled once
// against LiteRT's real headers and once against tflite_abi.h (check_layout.sh), the two
// outputs must be identical.
#include <cstddef>
#include <cstdio>

#include PKKD_LAYOUT_HEADER

#define FIELD(T, f) std::printf("%s.%s %zu\n", #T, #f, offsetof(T, f));

int main() {
  std::printf("sizeof TfLiteTensor %zu TfLiteNode %zu TfLiteRegistration %zu TfLiteDelegate %zu "
              "TfLiteDelegateParams %zu TfLiteIntArray %zu\n",
              sizeof(TfLiteTensor), sizeof(TfLiteNode), sizeof(TfLiteRegistration),
              sizeof(TfLiteDelegate), sizeof(TfLiteDelegateParams), sizeof(TfLiteIntArray));
  FIELD(TfLiteTensor, type) FIELD(TfLiteTensor, data) FIELD(TfLiteTensor, dims)
  FIELD(TfLiteTensor, params) FIELD(TfLiteTensor, allocation_type) FIELD(TfLiteTensor, bytes)
  FIELD(TfLiteTensor, allocation) FIELD(TfLiteTensor, name) FIELD(TfLiteTensor, delegate)
  FIELD(TfLiteTensor, buffer_handle) FIELD(TfLiteTensor, data_is_stale)
  FIELD(TfLiteTensor, is_variable) FIELD(TfLiteTensor, quantization)
  FIELD(TfLiteTensor, sparsity) FIELD(TfLiteTensor, dims_signature)
  FIELD(TfLiteNode, inputs) FIELD(TfLiteNode, outputs) FIELD(TfLiteNode, intermediates)
  FIELD(TfLiteNode, temporaries) FIELD(TfLiteNode, user_data) FIELD(TfLiteNode, builtin_data)
  FIELD(TfLiteNode, custom_initial_data) FIELD(TfLiteNode, custom_initial_data_size)
  FIELD(TfLiteNode, delegate) FIELD(TfLiteNode, might_have_side_effect)
  FIELD(TfLiteContext, tensors_size) FIELD(TfLiteContext, GetExecutionPlan)
  FIELD(TfLiteContext, tensors) FIELD(TfLiteContext, ResizeTensor)
  FIELD(TfLiteContext, ReportError) FIELD(TfLiteContext, GetNodeAndRegistration)
  FIELD(TfLiteContext, ReplaceNodeSubsetsWithDelegateKernels)
  FIELD(TfLiteContext, recommended_num_threads) FIELD(TfLiteContext, allow_fp32_relax_to_fp16)
  FIELD(TfLiteContext, ReleaseSubgraphContext)
  FIELD(TfLiteRegistration, init) FIELD(TfLiteRegistration, builtin_code)
  FIELD(TfLiteRegistration, custom_name) FIELD(TfLiteRegistration, version)
  FIELD(TfLiteRegistration, registration_external) FIELD(TfLiteRegistration, async_kernel)
  FIELD(TfLiteRegistration, inplace_operator)
  FIELD(TfLiteDelegate, data_) FIELD(TfLiteDelegate, Prepare) FIELD(TfLiteDelegate, flags)
  FIELD(TfLiteDelegate, opaque_delegate_builder)
  FIELD(TfLiteDelegateParams, nodes_to_replace) FIELD(TfLiteDelegateParams, input_tensors)
  FIELD(TfLiteDelegateParams, output_tensors)
  std::printf("sizeof TfLiteAffineQuantization %zu TfLiteFloatArray %zu\n",
              sizeof(TfLiteAffineQuantization), sizeof(TfLiteFloatArray));
  FIELD(TfLiteAffineQuantization, scale) FIELD(TfLiteAffineQuantization, zero_point)
  FIELD(TfLiteAffineQuantization, quantized_dimension)
  FIELD(TfLiteQuantization, type) FIELD(TfLiteQuantization, params)
  FIELD(TfLiteQuantizationParams, scale) FIELD(TfLiteQuantizationParams, zero_point)
  return 0;
}
