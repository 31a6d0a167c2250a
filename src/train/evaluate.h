// Greedy REC evaluation of a model on held-out samples: Acc@0.5 (IoU strictly > 0.5, the
// VLM-R1 / RefCOCO convention) and mean IoU, with boxes read from the completion the way the
// `iou` reward reads them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/sample.h"
#include "model/open_model.h"
#include "rewards/reward.h"

namespace refract::train {

// Greedy generation for every sample, in sample order (batches of batch_size prompts): the
// decoded completion (special tokens skipped, as VLM-R1 decodes) with what scoring needs.
struct GreedyCompletion {
  std::vector<int32_t> ids;
  std::string completion;
  std::string prompt;                         // rendered prompt text
  std::vector<rewards::ImageSize> images;     // original and resized sizes
};
// Stops at the model's stop ids; images go through the model's processor.
std::vector<GreedyCompletion> generate_greedy(const model::OpenedModel& m, const std::vector<data::Sample>& samples,
                                              int64_t batch_size, int64_t max_new_tokens);

struct RecEvalResult {
  int64_t num_samples = 0;
  double acc50 = 0;
  double miou = 0;
  double seconds = 0;
};

struct RecEvalOptions {
  int64_t batch_size = 32;
  int64_t max_new_tokens = 64;
  std::string coordinate_format = "absolute_resized";
  std::string predictions_path;  // optional JSONL of {id, completion, iou}
};

RecEvalResult evaluate_rec(const model::OpenedModel& m, const std::vector<data::Sample>& samples,
                           const RecEvalOptions& opt);

}  // namespace refract::train
