// Sizes, field offsets and enum values of the TFLite C structures that export/tflite declares
// itself (tflite_abi.h), for check_host_build.sh to compare with a runtime's real common.h.
//
// Compiled twice with the same compiler and target: once as is (the project's declarations),
// once with -DPKKD_USE_TFLITE_HEADERS and -I<LiteRT headers> (tflite_abi.h then includes the
// real header). The table is a constant array: the script compares the two builds' values,
// running the probe on the host, or reading the array from the assembly (-S) for a cross
// target it cannot run (aarch64, 32-bit ARM). The names are in the same order, for messages.
#include <stddef.h>

#include "tflite_abi.h"

#define PKKD_LAYOUT(X)                                        \
  X(sizeof(TfLiteStatus))                                     \
  X(kTfLiteOk)                                                \
  X(kTfLiteError)                                             \
  X(kTfLiteDelegateError)                                     \
  X(sizeof(TfLiteType))                                       \
  X(kTfLiteNoType)                                            \
  X(kTfLiteFloat32)                                           \
  X(kTfLiteInt32)                                             \
  X(kTfLiteUInt8)                                             \
  X(kTfLiteInt64)                                             \
  X(kTfLiteInt8)                                              \
  X(sizeof(TfLiteAllocationType))                             \
  X(kTfLiteMemNone)                                           \
  X(kTfLiteMmapRo)                                            \
  X(kTfLiteArenaRw)                                           \
  X(kTfLiteArenaRwPersistent)                                 \
  X(kTfLiteDynamic)                                           \
  X(kTfLitePersistentRo)                                      \
  X(kTfLiteDelegateFlagsAllowDynamicTensors)                  \
  X(sizeof(TfLiteIntArray))                                   \
  X(offsetof(TfLiteIntArray, size))                           \
  X(offsetof(TfLiteIntArray, data))                           \
  X(sizeof(TfLiteQuantizationParams))                         \
  X(sizeof(TfLiteQuantization))                               \
  X(offsetof(TfLiteQuantization, params))                     \
  X(sizeof(TfLitePtrUnion))                                   \
  X(sizeof(TfLiteTensor))                                     \
  X(offsetof(TfLiteTensor, type))                             \
  X(offsetof(TfLiteTensor, data))                             \
  X(offsetof(TfLiteTensor, dims))                             \
  X(offsetof(TfLiteTensor, params))                           \
  X(offsetof(TfLiteTensor, allocation_type))                  \
  X(offsetof(TfLiteTensor, bytes))                            \
  X(offsetof(TfLiteTensor, allocation))                       \
  X(offsetof(TfLiteTensor, name))                             \
  X(offsetof(TfLiteTensor, delegate))                         \
  X(offsetof(TfLiteTensor, buffer_handle))                    \
  X(offsetof(TfLiteTensor, data_is_stale))                    \
  X(offsetof(TfLiteTensor, is_variable))                      \
  X(offsetof(TfLiteTensor, quantization))                     \
  X(offsetof(TfLiteTensor, sparsity))                         \
  X(offsetof(TfLiteTensor, dims_signature))                   \
  X(sizeof(TfLiteNode))                                       \
  X(offsetof(TfLiteNode, inputs))                             \
  X(offsetof(TfLiteNode, outputs))                            \
  X(offsetof(TfLiteNode, intermediates))                      \
  X(offsetof(TfLiteNode, temporaries))                        \
  X(offsetof(TfLiteNode, user_data))                          \
  X(offsetof(TfLiteNode, builtin_data))                       \
  X(offsetof(TfLiteNode, custom_initial_data))                \
  X(offsetof(TfLiteNode, custom_initial_data_size))           \
  X(offsetof(TfLiteNode, delegate))                           \
  X(offsetof(TfLiteNode, might_have_side_effect))             \
  X(sizeof(TfLiteDelegateParams))                             \
  X(offsetof(TfLiteDelegateParams, delegate))                 \
  X(offsetof(TfLiteDelegateParams, nodes_to_replace))         \
  X(offsetof(TfLiteDelegateParams, input_tensors))            \
  X(offsetof(TfLiteDelegateParams, output_tensors))           \
  X(offsetof(TfLiteContext, tensors_size))                    \
  X(offsetof(TfLiteContext, GetExecutionPlan))                \
  X(offsetof(TfLiteContext, tensors))                         \
  X(offsetof(TfLiteContext, impl_))                           \
  X(offsetof(TfLiteContext, ResizeTensor))                    \
  X(offsetof(TfLiteContext, ReportError))                     \
  X(offsetof(TfLiteContext, AddTensors))                      \
  X(offsetof(TfLiteContext, GetNodeAndRegistration))          \
  X(offsetof(TfLiteContext, ReplaceNodeSubsetsWithDelegateKernels)) \
  X(offsetof(TfLiteContext, recommended_num_threads))         \
  X(offsetof(TfLiteContext, GetExternalContext))              \
  X(offsetof(TfLiteContext, SetExternalContext))              \
  X(offsetof(TfLiteContext, allow_fp32_relax_to_fp16))        \
  X(offsetof(TfLiteContext, profiler))                        \
  X(offsetof(TfLiteContext, AllocatePersistentBuffer))        \
  X(offsetof(TfLiteContext, AllocateBufferForEval))           \
  X(offsetof(TfLiteContext, RequestScratchBufferInArena))     \
  X(offsetof(TfLiteContext, GetScratchBuffer))                \
  X(offsetof(TfLiteContext, ResizeTensorExplicit))            \
  X(offsetof(TfLiteContext, PreviewDelegatePartitioning))     \
  X(offsetof(TfLiteContext, GetTensor))                       \
  X(offsetof(TfLiteContext, GetEvalTensor))                   \
  X(offsetof(TfLiteContext, GetModelMetadata))                \
  X(offsetof(TfLiteContext, AcquireSubgraphContext))          \
  X(offsetof(TfLiteContext, ReleaseSubgraphContext))          \
  X(sizeof(TfLiteRegistration))                               \
  X(offsetof(TfLiteRegistration, init))                       \
  X(offsetof(TfLiteRegistration, free))                       \
  X(offsetof(TfLiteRegistration, prepare))                    \
  X(offsetof(TfLiteRegistration, invoke))                     \
  X(offsetof(TfLiteRegistration, profiling_string))           \
  X(offsetof(TfLiteRegistration, builtin_code))               \
  X(offsetof(TfLiteRegistration, custom_name))                \
  X(offsetof(TfLiteRegistration, version))                    \
  X(offsetof(TfLiteRegistration, registration_external))      \
  X(offsetof(TfLiteRegistration, async_kernel))               \
  X(offsetof(TfLiteRegistration, inplace_operator))           \
  X(sizeof(TfLiteDelegate))                                   \
  X(offsetof(TfLiteDelegate, data_))                          \
  X(offsetof(TfLiteDelegate, Prepare))                        \
  X(offsetof(TfLiteDelegate, CopyFromBufferHandle))           \
  X(offsetof(TfLiteDelegate, CopyToBufferHandle))             \
  X(offsetof(TfLiteDelegate, FreeBufferHandle))               \
  X(offsetof(TfLiteDelegate, flags))                          \
  X(offsetof(TfLiteDelegate, opaque_delegate_builder))

#define PKKD_VALUE(e) static_cast<int>(e),
#define PKKD_NAME(e) #e,

// Two markers frame the table in the assembly.
extern "C" {
extern const int pkkd_layout[];
const int pkkd_layout[] = {0x7f6b6b64, PKKD_LAYOUT(PKKD_VALUE) 0x7f6b6b65};
}

#if !defined(PKKD_PROBE_TABLE_ONLY)
#include <stdio.h>

static const char* const kNames[] = {PKKD_LAYOUT(PKKD_NAME)};

int main() {
  const int n = static_cast<int>(sizeof(kNames) / sizeof(kNames[0]));
  for (int i = 0; i < n; ++i) printf("%s %d\n", kNames[i], pkkd_layout[i + 1]);
  return 0;
}
#endif  // PKKD_PROBE_TABLE_ONLY
