// The training loader: deterministic shuffling, epochs, sharding by rank, an exactly
// resumable position, and background workers that decode + preprocess images ahead of use.
//
// Order: epoch e permutes the samples with data_seed (splitmix64 Fisher-Yates seeded by
// (seed, e)), then shards like torch's DistributedSampler (padded by wrapping to a multiple of
// world_size, rank r takes positions r, r + W, ...). A batch is the next batch_size samples of
// the rank's order; the last partial batch is kept unless drop_last. The state (epoch, index)
// is the position of the next batch: restoring it reproduces the rest of the run exactly.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "data/config.h"
#include "data/sample.h"
#include "vision/preprocess.h"

namespace refract::data {

struct LoaderConfig {
  int64_t batch_size = 1;
  bool shuffle = true;
  uint64_t seed = 42;            // data_seed
  int64_t rank = 0;
  int64_t world_size = 1;
  bool drop_last = false;
  int64_t num_workers = 2;       // 0 = decode on the caller's thread
  int64_t prefetch_factor = 2;   // batches in flight per worker
  vision::PreprocessConfig preprocess;
};

// seed = data_seed (else seed), num_workers, prefetch_factor, min/max_pixels from `c`.
LoaderConfig loader_config(const DataConfig& c, int64_t batch_size);

// A sample with its images decoded and preprocessed (ImageRef sizes and the prompt's
// image_tokens filled in).
struct LoadedSample {
  Sample sample;
  std::vector<vision::Preprocessed> images;
};

struct Batch {
  std::vector<LoadedSample> items;
  int64_t epoch = 0;
  int64_t index = 0;  // position of the first item in the rank's order for `epoch`
};

struct LoaderState {
  int64_t epoch = 0;
  int64_t index = 0;
  nlohmann::json to_json() const { return {{"epoch", epoch}, {"index", index}}; }
  static LoaderState from_json(const nlohmann::json& j);
};

// Decodes and preprocesses one sample's images (what the workers do).
LoadedSample load_sample(const Sample& s, const vision::PreprocessConfig& cfg);

class DataLoader {
 public:
  DataLoader(std::vector<Sample> samples, LoaderConfig cfg);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // The next batch (blocks until it is ready); rolls over to the next epoch at the end.
  Batch next();
  // Position of the batch the next call to next() returns.
  LoaderState state() const;
  void load_state(const LoaderState& s);

  int64_t samples_per_epoch() const;  // on this rank
  int64_t batches_per_epoch() const;
  // The rank's sample order for `epoch` (indices into the samples given).
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace refract::data
