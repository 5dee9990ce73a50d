#include "thread_pool.h"

#include <algorithm>

namespace pkkd {

void ThreadPool::Resize(int num_threads) {
  const size_t wanted = static_cast<size_t>(std::max(1, num_threads) - 1);
  if (wanted == workers_.size()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  stop_ = false;
  pieces_.assign(wanted, {0, 0});
  for (size_t i = 0; i < wanted; ++i) workers_.emplace_back(&ThreadPool::WorkerLoop, this, i);
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int64_t, int64_t)>* job;
    std::pair<int64_t, int64_t> piece;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
      piece = pieces_[index];
    }
    if (piece.first < piece.second) (*job)(piece.first, piece.second);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) done_.notify_one();
    }
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    for (size_t i = 0; i < workers_.size(); ++i) {
      const int64_t t = static_cast<int64_t>(i) + 1;
      pieces_[i] = t < threads ? std::make_pair(bound(t), bound(t + 1))
                               : std::make_pair(int64_t{0}, int64_t{0});
    }
    pending_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  wake_.notify_all();
  fn(0, bound(1));
  std::unique_lock<std::mutex> lock(mu_);
  done_.wait(lock, [&] { return pending_ == 0; });
  job_ = nullptr;
}

}  // namespace pkkd
