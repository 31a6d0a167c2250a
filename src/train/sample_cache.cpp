#include "train/sample_cache.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <set>
#include <thread>

namespace refract::train {

struct SampleCache::Workers {
  std::mutex mu;
  std::condition_variable cv;
  std::set<int64_t> in_flight;                 // being encoded by some thread
  std::deque<std::pair<int64_t, bool>> queue;  // (index, with_response) waiting for a worker
  std::vector<std::thread> threads;
  bool stop = false;
};

SampleCache::SampleCache(const std::vector<data::Sample>& samples, const text::Tokenizer& tok,
                         vision::PreprocessConfig processor, int64_t num_workers)
    : samples_(samples), tok_(tok), processor_(processor), slots_(samples.size()) {
  if (num_workers <= 0) return;
  workers_ = std::make_unique<Workers>();
  for (int64_t i = 0; i < num_workers; ++i) workers_->threads.emplace_back([this] { work(); });
}

SampleCache::~SampleCache() {
  if (!workers_) return;
  {
    std::lock_guard<std::mutex> lock(workers_->mu);
    workers_->stop = true;
  }
  workers_->cv.notify_all();
  for (auto& t : workers_->threads) t.join();
}

const EncodedSample& SampleCache::encode(int64_t index, bool with_response) {
  auto& slot = slots_[static_cast<size_t>(index)];
  if (!workers_) {
    if (!slot) slot = encode_sample(samples_[index], tok_, processor_, with_response);
    return *slot;
  }
  Workers& w = *workers_;
  std::unique_lock<std::mutex> lock(w.mu);
  w.cv.wait(lock, [&] { return slot.has_value() || !w.in_flight.count(index); });
  if (slot) return *slot;
  w.in_flight.insert(index);
  lock.unlock();
  std::optional<EncodedSample> e;
  std::exception_ptr error;
  try {
    e = encode_sample(samples_[index], tok_, processor_, with_response);
  } catch (...) {
    error = std::current_exception();
  }
  lock.lock();
  if (e) slot = std::move(e);
  w.in_flight.erase(index);
  w.cv.notify_all();
  if (error) std::rethrow_exception(error);
  return *slot;
}

void SampleCache::prefetch(const std::vector<int64_t>& indices, bool with_response) {
  if (!workers_) return;
  {
    std::lock_guard<std::mutex> lock(workers_->mu);
    for (int64_t i : indices) workers_->queue.emplace_back(i, with_response);
  }
  workers_->cv.notify_all();
}

// A worker encodes queued samples nobody has encoded or is encoding. Its errors are dropped:
// the step that needs the sample encodes it again and reports the error with its name.
void SampleCache::work() {
  Workers& w = *workers_;
  for (;;) {
    std::pair<int64_t, bool> job;
    {
      std::unique_lock<std::mutex> lock(w.mu);
      w.cv.wait(lock, [&] { return w.stop || !w.queue.empty(); });
      if (w.stop) return;
      job = w.queue.front();
      w.queue.pop_front();
      if (slots_[static_cast<size_t>(job.first)] || w.in_flight.count(job.first)) continue;
      w.in_flight.insert(job.first);
    }
    std::optional<EncodedSample> e;
    try {
      e = encode_sample(samples_[job.first], tok_, processor_, job.second);
    } catch (...) {
    }
    std::lock_guard<std::mutex> lock(w.mu);
    if (e) slots_[static_cast<size_t>(job.first)] = std::move(e);
    w.in_flight.erase(job.first);
    w.cv.notify_all();
  }
}

}  // namespace refract::train
