// The TFLite C structures the AdderConv2D kernel and delegate touch.
//
// No pip or Debian package ships TFLite's C headers, and LiteRT's Python wheel exports no C
// API, so for the Python runtime (an external delegate loaded with `load_delegate`) and for the
// Android delegate this file declares the structures itself, with the field order and types of
// LiteRT's tflite/core/c/common.h and c_api_types.h (unchanged from LiteRT v2.2.0 to the pinned
// ai-edge-litert 2.3.0). Only the members used here carry real types; the others keep their
// size and alignment. The static_asserts below pin the LP64 layout (x86-64 and aarch64); the
// delegate checks it again at run time against the model (adder_delegate.cc, LayoutCheck).
//
// Built inside TensorFlow / LiteRT (Bazel, with PKKD_USE_TFLITE_HEADERS defined) the real
// header is used instead and these declarations disappear.
#ifndef KERAS_PKKD_EXPORT_TFLITE_TFLITE_ABI_H_
#define KERAS_PKKD_EXPORT_TFLITE_TFLITE_ABI_H_

#if defined(PKKD_USE_TFLITE_HEADERS)
#include "tensorflow/lite/core/c/common.h"
#else

#include <stddef.h>
#include <stdint.h>

extern "C" {

typedef enum TfLiteStatus {
  kTfLiteOk = 0,
  kTfLiteError = 1,
  kTfLiteDelegateError = 2,
} TfLiteStatus;

typedef enum {
  kTfLiteNoType = 0,
  kTfLiteFloat32 = 1,
  kTfLiteInt32 = 2,
  kTfLiteUInt8 = 3,
  kTfLiteInt64 = 4,
  kTfLiteInt8 = 9,
} TfLiteType;

typedef enum TfLiteAllocationType {
  kTfLiteMemNone = 0,
  kTfLiteMmapRo,
  kTfLiteArenaRw,
  kTfLiteArenaRwPersistent,
  kTfLiteDynamic,
  kTfLitePersistentRo,
} TfLiteAllocationType;

typedef struct TfLiteIntArray {
  int size;
  int data[];
} TfLiteIntArray;

typedef struct TfLiteQuantizationParams {
  float scale;
  int32_t zero_point;
} TfLiteQuantizationParams;

typedef struct TfLiteQuantization {
  int type;  // TfLiteQuantizationType
  void* params;
} TfLiteQuantization;

// TfLiteQuantization::type of per-tensor / per-channel affine parameters, whose `params`
// points to a TfLiteAffineQuantization.
enum { kTfLiteNoQuantization = 0, kTfLiteAffineQuantization = 1 };

typedef struct TfLiteFloatArray {
  int size;
  float data[];
} TfLiteFloatArray;

typedef struct TfLiteAffineQuantization {
  TfLiteFloatArray* scale;
  TfLiteIntArray* zero_point;
  int32_t quantized_dimension;
} TfLiteAffineQuantization;

typedef union TfLitePtrUnion {
  float* f;
  int8_t* int8;
  int32_t* i32;
  char* raw;
  const char* raw_const;
  void* data;
} TfLitePtrUnion;

struct TfLiteDelegate;
struct TfLiteRegistration;

typedef struct TfLiteTensor {
  TfLiteType type;
  TfLitePtrUnion data;
  TfLiteIntArray* dims;
  TfLiteQuantizationParams params;
  TfLiteAllocationType allocation_type;
  size_t bytes;
  const void* allocation;
  const char* name;
  struct TfLiteDelegate* delegate;
  int buffer_handle;  // TfLiteBufferHandle
  bool data_is_stale;
  bool is_variable;
  TfLiteQuantization quantization;
  void* sparsity;  // TfLiteSparsity*
  const TfLiteIntArray* dims_signature;
} TfLiteTensor;

typedef struct TfLiteNode {
  TfLiteIntArray* inputs;
  TfLiteIntArray* outputs;
  TfLiteIntArray* intermediates;
  TfLiteIntArray* temporaries;
  void* user_data;
  void* builtin_data;
  const void* custom_initial_data;
  int custom_initial_data_size;
  struct TfLiteDelegate* delegate;
  bool might_have_side_effect;
} TfLiteNode;

typedef struct TfLiteDelegateParams {
  struct TfLiteDelegate* delegate;
  TfLiteIntArray* nodes_to_replace;
  TfLiteIntArray* input_tensors;
  TfLiteIntArray* output_tensors;
} TfLiteDelegateParams;

typedef struct TfLiteContext {
  size_t tensors_size;
  TfLiteStatus (*GetExecutionPlan)(struct TfLiteContext* context,
                                   TfLiteIntArray** execution_plan);
  TfLiteTensor* tensors;
  void* impl_;
  TfLiteStatus (*ResizeTensor)(struct TfLiteContext*, TfLiteTensor* tensor,
                               TfLiteIntArray* new_size);
  void (*ReportError)(struct TfLiteContext*, const char* msg, ...);
  TfLiteStatus (*AddTensors)(struct TfLiteContext*, int tensors_to_add,
                             int* first_new_tensor_index);
  TfLiteStatus (*GetNodeAndRegistration)(struct TfLiteContext*, int node_index,
                                         TfLiteNode** node,
                                         struct TfLiteRegistration** registration);
  TfLiteStatus (*ReplaceNodeSubsetsWithDelegateKernels)(
      struct TfLiteContext*, struct TfLiteRegistration registration,
      const TfLiteIntArray* nodes_to_replace, struct TfLiteDelegate* delegate);
  int recommended_num_threads;
  void* GetExternalContext;
  void* SetExternalContext;
  bool allow_fp32_relax_to_fp16;
  void* profiler;
  void* AllocatePersistentBuffer;
  void* AllocateBufferForEval;
  void* RequestScratchBufferInArena;
  void* GetScratchBuffer;
  void* ResizeTensorExplicit;
  void* PreviewDelegatePartitioning;
  void* GetTensor;
  void* GetEvalTensor;
  void* GetModelMetadata;
  void* AcquireSubgraphContext;
  void* ReleaseSubgraphContext;
} TfLiteContext;

typedef struct TfLiteRegistration {
  void* (*init)(TfLiteContext* context, const char* buffer, size_t length);
  void (*free)(TfLiteContext* context, void* buffer);
  TfLiteStatus (*prepare)(TfLiteContext* context, TfLiteNode* node);
  TfLiteStatus (*invoke)(TfLiteContext* context, TfLiteNode* node);
  const char* (*profiling_string)(const TfLiteContext* context, const TfLiteNode* node);
  int32_t builtin_code;
  const char* custom_name;
  int version;
  void* registration_external;  // TfLiteOperator*
  void* async_kernel;           // TfLiteAsyncKernel* (*)(TfLiteContext*, TfLiteNode*)
  uint64_t inplace_operator;
} TfLiteRegistration;

typedef enum TfLiteDelegateFlags {
  kTfLiteDelegateFlagsNone = 0,
  kTfLiteDelegateFlagsAllowDynamicTensors = 1,
} TfLiteDelegateFlags;

typedef struct TfLiteDelegate {
  void* data_;
  TfLiteStatus (*Prepare)(TfLiteContext* context, struct TfLiteDelegate* delegate);
  void* CopyFromBufferHandle;
  void* CopyToBufferHandle;
  void* FreeBufferHandle;
  int64_t flags;
  void* opaque_delegate_builder;
} TfLiteDelegate;

}  // extern "C"

#if defined(__LP64__) || defined(_LP64)
// LiteRT's layout on 64-bit targets (x86-64, aarch64), from its common.h.
static_assert(sizeof(TfLiteIntArray) == 4, "TfLiteIntArray");
static_assert(sizeof(TfLiteTensor) == 112, "TfLiteTensor size");
static_assert(offsetof(TfLiteTensor, data) == 8 && offsetof(TfLiteTensor, dims) == 16 &&
                  offsetof(TfLiteTensor, bytes) == 40 && offsetof(TfLiteTensor, name) == 56 &&
                  offsetof(TfLiteTensor, dims_signature) == 104,
              "TfLiteTensor fields");
static_assert(sizeof(TfLiteNode) == 80 && offsetof(TfLiteNode, custom_initial_data) == 48 &&
                  offsetof(TfLiteNode, custom_initial_data_size) == 56,
              "TfLiteNode");
static_assert(offsetof(TfLiteContext, tensors) == 16 &&
                  offsetof(TfLiteContext, ReplaceNodeSubsetsWithDelegateKernels) == 64 &&
                  offsetof(TfLiteContext, recommended_num_threads) == 72,
              "TfLiteContext");
static_assert(sizeof(TfLiteRegistration) == 88 &&
                  offsetof(TfLiteRegistration, builtin_code) == 40 &&
                  offsetof(TfLiteRegistration, custom_name) == 48 &&
                  offsetof(TfLiteRegistration, version) == 56,
              "TfLiteRegistration");
static_assert(sizeof(TfLiteAffineQuantization) == 24 &&
                  offsetof(TfLiteAffineQuantization, zero_point) == 8 &&
                  offsetof(TfLiteTensor, params) == 24 && offsetof(TfLiteTensor, quantization) == 80,
              "quantization parameters");
static_assert(sizeof(TfLiteDelegate) == 56 && offsetof(TfLiteDelegate, flags) == 40,
              "TfLiteDelegate");
#endif

#endif  // PKKD_USE_TFLITE_HEADERS

// Values of the .tflite schema (BuiltinOperator) this code needs.
constexpr int kPkkdBuiltinCustom = 32;

#endif  // KERAS_PKKD_EXPORT_TFLITE_TFLITE_ABI_H_
