#include "thread_pool.h"

#include <algorithm>

namespace pkkd {
namespace {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield");
#endif
}

}  // namespace

void ThreadPool::Resize(int num_threads) {
  const size_t wanted = static_cast<size_t>(std::max(1, num_threads) - 1);
  if (wanted == workers_.size()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  stop_.store(false);
  pieces_.assign(wanted, {0, 0});
  const uint64_t generation = generation_.load();
  for (size_t i = 0; i < wanted; ++i) {
    workers_.emplace_back(&ThreadPool::WorkerLoop, this, static_cast<int>(i), generation);
  }
}

// `seen`: the generation when the worker was created (read before it starts, so that a job
// published before the thread first runs is not missed).
void ThreadPool::WorkerLoop(int index, uint64_t seen) {
  for (;;) {
    int spins = 0;
    uint64_t gen;
    while ((gen = generation_.load(std::memory_order_acquire)) == seen) {
      if (stop_.load(std::memory_order_acquire)) return;
      if (++spins < kSpinIterations) {
        CpuRelax();
        continue;
      }
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] {
        return stop_.load() || generation_.load(std::memory_order_acquire) != seen;
      });
      spins = 0;
    }
    if (stop_.load(std::memory_order_acquire)) return;
    seen = gen;
    const std::pair<int64_t, int64_t> piece = pieces_[index];
    if (piece.first < piece.second) (*job_)(piece.first, piece.second);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::ParallelFor(int64_t total, int64_t cost_per_unit,
                             const std::function<void(int64_t, int64_t)>& fn) {
  if (total <= 0) return;
  const int64_t threads = std::min<int64_t>(num_threads(), total);
  if (threads <= 1 || total * std::max<int64_t>(cost_per_unit, 1) < kMinParallelCycles) {
    fn(0, total);
    return;
  }
  // Contiguous, nearly equal pieces; piece 0 runs here.
  auto bound = [&](int64_t i) { return total * i / threads; };
  job_ = &fn;
  for (size_t i = 0; i < workers_.size(); ++i) {
    const int64_t t = static_cast<int64_t>(i) + 1;
    pieces_[i] = t < threads ? std::make_pair(bound(t), bound(t + 1))
                             : std::make_pair(int64_t{0}, int64_t{0});
  }
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  {
    // A worker between its last check and its wait holds the mutex: taking it here means
    // it either saw the new generation or is waiting and gets the notification.
    std::lock_guard<std::mutex> lock(mu_);
  }
  wake_.notify_all();
  fn(0, bound(1));
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < kSpinIterations) {
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
  }
  job_ = nullptr;
}

}  // namespace pkkd
