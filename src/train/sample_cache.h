// The training data pipeline's second half (the first is data::DataOrder): samples encoded
// for the model (chat template, decoded and preprocessed images) once, on demand or ahead of
// time by background workers, so the step that needs a sample finds it ready.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "data/sample.h"
#include "train/encode.h"
#include "vision/preprocess.h"

namespace refract::text {
class Tokenizer;
}

namespace refract::train {

class SampleCache {
 public:
  // `samples` and `tok` must outlive the cache. num_workers = 0: encode on demand only.
  SampleCache(const std::vector<data::Sample>& samples, const text::Tokenizer& tok,
              vision::PreprocessConfig processor, int64_t num_workers);
  ~SampleCache();
  SampleCache(const SampleCache&) = delete;
  SampleCache& operator=(const SampleCache&) = delete;

  // The encoded sample; waits for a worker already encoding it. Errors name the sample.
  const EncodedSample& encode(int64_t index, bool with_response);
  // Queues these samples for the workers (a no-op without workers). The results are the same
  // as encode() on demand: workers only move the work earlier.
  void prefetch(const std::vector<int64_t>& indices, bool with_response);

 private:
  struct Workers;  // threads, queue and the lock guarding slots_ while they run
  void work();
  const std::vector<data::Sample>& samples_;
  const text::Tokenizer& tok_;
  const vision::PreprocessConfig processor_;
  std::vector<std::optional<EncodedSample>> slots_;  // a filled slot is never written again
  std::unique_ptr<Workers> workers_;
};

}  // namespace refract::train
