// Plain TFLite registration of the AdderConv2D custom op, for runtimes built from source with
// this kernel linked in (route (b) of export/android/README.md: a custom TFLite AAR from
// TensorFlow's tensorflow/lite/tools/build_aar.sh, or any C++ program that links TFLite):
//
//   tflite::ops::builtin::BuiltinOpResolver resolver;
//   resolver.AddCustom("AdderConv2D", tflite::ops::custom::Register_ADDER_CONV2D(),
//                      /*min_version=*/1, /*max_version=*/2);   // 1 float32, 2 int8
//
// build_aar.sh's selective registration calls Register_ADDER_CONV2D() by itself (its name is
// the custom code "AdderConv2D" normalized: ADDER_CONV2D), so the AAR's stock Java Interpreter
// runs the op without a delegate.
//
// Built with PKKD_USE_TFLITE_HEADERS (export/tflite/BUILD sets it), so tflite_abi.h includes
// the runtime's own common.h. The node steps are those of adder_kernel.h, the ones the external
// delegate (adder_delegate.cc) runs.
//
// Threads: one ThreadPool per TfLiteContext (one interpreter subgraph), shared by the adder
// nodes of that subgraph and sized in Prepare from context->recommended_num_threads (the
// interpreter's SetNumThreads; 1 when unset). A subgraph runs its nodes one after another, so
// its nodes never use the pool at the same time; interpreters on different threads have
// different contexts, hence different pools. The pool lives as long as the nodes using it.
#include <cstddef>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "adder_kernel.h"
#include "thread_pool.h"
#include "tflite_abi.h"

namespace pkkd {
namespace {

struct SharedPool {
  ThreadPool pool;
  int users = 0;
};

// The pools by context. Never destroyed (no static destruction order to care about).
std::mutex& PoolsMutex() {
  static std::mutex* mu = new std::mutex;
  return *mu;
}
std::unordered_map<const TfLiteContext*, std::unique_ptr<SharedPool>>& Pools() {
  static auto* pools = new std::unordered_map<const TfLiteContext*, std::unique_ptr<SharedPool>>;
  return *pools;
}

struct RegisteredNode {
  AdderNode* kernel = nullptr;
  const TfLiteContext* owner = nullptr;
  SharedPool* shared = nullptr;
};

void* Init(TfLiteContext* context, const char* buffer, size_t length) {
  auto* node = new RegisteredNode;
  node->kernel = AdderInit(buffer, buffer == nullptr ? 0 : length);
  node->owner = context;
  std::lock_guard<std::mutex> lock(PoolsMutex());
  std::unique_ptr<SharedPool>& slot = Pools()[context];
  if (!slot) slot.reset(new SharedPool);
  ++slot->users;
  node->shared = slot.get();
  return node;
}

void Free(TfLiteContext*, void* buffer) {
  auto* node = static_cast<RegisteredNode*>(buffer);
  if (node == nullptr) return;
  std::unique_ptr<SharedPool> last;  // destroyed (its threads joined) outside the lock
  {
    std::lock_guard<std::mutex> lock(PoolsMutex());
    auto it = Pools().find(node->owner);
    if (it != Pools().end() && --it->second->users == 0) {
      last = std::move(it->second);
      Pools().erase(it);
    }
  }
  AdderFree(node->kernel);
  delete node;
}

TfLiteStatus Prepare(TfLiteContext* context, TfLiteNode* node) {
  auto* n = static_cast<RegisteredNode*>(node->user_data);
  if (n == nullptr) {
    context->ReportError(context, "AdderConv2D: no kernel state (Init failed)");
    return kTfLiteError;
  }
  if (AdderPrepare(context, n->kernel, node->inputs, node->outputs) != kTfLiteOk) {
    return kTfLiteError;
  }
  n->shared->pool.Resize(context->recommended_num_threads > 0 ? context->recommended_num_threads
                                                              : 1);
  return kTfLiteOk;
}

TfLiteStatus Eval(TfLiteContext* context, TfLiteNode* node) {
  auto* n = static_cast<RegisteredNode*>(node->user_data);
  return AdderEval(context, n->kernel, &n->shared->pool);
}

}  // namespace
}  // namespace pkkd

namespace tflite {
namespace ops {
namespace custom {

TfLiteRegistration* Register_ADDER_CONV2D() {
  static TfLiteRegistration registration = [] {
    TfLiteRegistration r = {};  // every member zero / null, whatever the runtime's version adds
    r.init = pkkd::Init;
    r.free = pkkd::Free;
    r.prepare = pkkd::Prepare;
    r.invoke = pkkd::Eval;
    r.custom_name = pkkd::kAdderCustomName;
    r.version = 1;
    return r;
  }();
  return &registration;
}

}  // namespace custom
}  // namespace ops
}  // namespace tflite
