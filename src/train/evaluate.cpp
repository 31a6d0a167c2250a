#include "train/evaluate.h"

#include <chrono>

#include "common/atomic_file.h"
#include "common/check.h"
#include "generate/generator.h"
#include "rewards/registry.h"
#include "text/tokenizer.h"
#include "train/encode.h"

namespace refract::train {

std::vector<GreedyCompletion> generate_greedy(const model::OpenedModel& m, const std::vector<data::Sample>& samples,
                                              int64_t batch_size, int64_t max_new_tokens) {
  REFRACT_CHECK(batch_size >= 1) << "evaluation batch size must be >= 1";
  model::Qwen2_5_VLImpl& model = *m.model.ptr();  // generation mutates the module (KV cache, mode)
  const text::Tokenizer& tok = m.tok();
  const bool was_training = model.is_training();
  model.eval();
  std::vector<GreedyCompletion> out(samples.size());
  for (size_t s = 0; s < samples.size(); s += static_cast<size_t>(batch_size)) {
    const size_t e = std::min(samples.size(), s + static_cast<size_t>(batch_size));
    std::vector<generate::PromptInput> prompts;
    std::vector<EncodedSample> enc;
    for (size_t i = s; i < e; ++i) enc.push_back(encode_sample(samples[i], tok, m.processor, false));
    for (const auto& en : enc) prompts.push_back({en.prompt_ids, en.pixel_values, en.image_grid_thw});
    generate::GenerationConfig gc;
    gc.max_new_tokens = max_new_tokens;
    gc.do_sample = false;
    gc.stop_token_ids = m.stop_token_ids;
    gc.num_generations = 1;
    gc.pad_token_id = m.pad_token_id;
    auto gen = generate::generate(model, prompts, gc);
    for (const auto& c : gen.completions) {
      const size_t row = static_cast<size_t>(c.prompt_index);
      GreedyCompletion& g = out[s + row];
      g.ids.assign(c.ids.begin(), c.ids.end());
      g.completion = tok.decode(g.ids, true);
      g.prompt = enc[row].prompt_text;
      g.images = enc[row].image_sizes;
    }
  }
  if (was_training) model.train();
  return out;
}

RecEvalResult evaluate_rec(const model::OpenedModel& m, const std::vector<data::Sample>& samples,
                           const RecEvalOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  RecEvalResult res;
  auto iou_fn = rewards::make_reward("iou", {{"coords", opt.coordinate_format}});
  const auto greedy = generate_greedy(m, samples, opt.batch_size, opt.max_new_tokens);
  std::vector<rewards::RewardInput> inputs(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    auto& in = inputs[i];
    in.completion_ids = greedy[i].ids;
    in.completion = greedy[i].completion;
    in.solution = samples[i].solution;
    in.extra = samples[i].extra;
    in.images = greedy[i].images;
    in.prompt = greedy[i].prompt;
  }
  const auto ious = iou_fn(inputs);
  double iou_sum = 0, hits = 0;
  std::string preds;
  for (size_t i = 0; i < ious.size(); ++i) {
    const double v = ious[i].value_or(0.0);
    iou_sum += v;
    hits += v > 0.5 ? 1 : 0;
    if (!opt.predictions_path.empty())
      preds += nlohmann::json{{"id", samples[i].id}, {"completion", inputs[i].completion}, {"iou", v}}.dump() + "\n";
  }
  res.num_samples = static_cast<int64_t>(samples.size());
  res.acc50 = res.num_samples ? hits / res.num_samples : 0;
  res.miou = res.num_samples ? iou_sum / res.num_samples : 0;
  if (!opt.predictions_path.empty()) write_file_atomic(opt.predictions_path, preds);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace refract::train
