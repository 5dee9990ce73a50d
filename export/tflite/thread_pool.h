// A small persistent thread pool for the TFLite kernel: the compute core's ParallelFor over
// the interpreter's thread count (TfLiteContext::recommended_num_threads).
//
// Workers are started once and kept; a call splits [0, total) into one contiguous piece per
// thread, runs the first piece on the calling thread and waits for the rest. At batch 1 a layer
// takes tens of microseconds, so waking a sleeping thread (a futex round trip) would cost as
// much as the work: workers spin for a short while (kSpinIterations pauses, a few microseconds) after
// each piece before they sleep, and the caller spins while the pieces finish. Work too small
// to pay for any hand-off (total * cost_per_unit below kMinParallelCycles) runs on the caller.
#ifndef KERAS_PKKD_EXPORT_TFLITE_THREAD_POOL_H_
#define KERAS_PKKD_EXPORT_TFLITE_THREAD_POOL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace pkkd {

class ThreadPool {
 public:
  ThreadPool() = default;
  ~ThreadPool() { Resize(1); }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Total threads used by ParallelFor, the caller included; values below 1 mean 1.
  // Not to be called while a ParallelFor runs.
  void Resize(int num_threads);
  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // One caller at a time (an interpreter invokes its nodes sequentially).
  void ParallelFor(int64_t total, int64_t cost_per_unit,
                   const std::function<void(int64_t, int64_t)>& fn);

 private:
  static constexpr int64_t kMinParallelCycles = 40000;
  static constexpr int kSpinIterations = 300;
  void WorkerLoop(int index, uint64_t seen);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  std::vector<std::pair<int64_t, int64_t>> pieces_;  // one per worker
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace pkkd

#endif  // KERAS_PKKD_EXPORT_TFLITE_THREAD_POOL_H_
