#include "generate/generator.h"

#include <algorithm>
#include <chrono>
#include <ctime>

#include "common/check.h"
#include "model/qwen2_5_vl.h"

namespace refract::generate {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

SamplingConfig sampling_of(const GenerationConfig& c) {
  SamplingConfig s;
  s.do_sample = c.do_sample;
  s.temperature = c.temperature;
  s.top_k = c.top_k;
  s.top_p = c.top_p;
  s.min_p = c.min_p;
  s.repetition_penalty = c.repetition_penalty;
  return s;
}

// The batch as the model sees it after prefill: row r of every tensor belongs to sample
// row_sample[r]. Compaction selects the same rows everywhere.
struct ActiveBatch {
  std::vector<int64_t> row_sample;     // row -> completion index
  std::vector<at::Generator> generators;
  torch::Tensor attention_mask;        // [rows, capacity] int64 (undefined: no padding anywhere)
  torch::Tensor history;               // [rows, capacity] int64 (only with repetition_penalty)
};

}  // namespace

std::vector<RawLogprobs> raw_logprobs(const torch::Tensor& logits, const torch::Tensor& ids, int64_t top_logprobs) {
  torch::Tensor lp = logits.to(torch::kFloat).log_softmax(-1);  // [B, V]
  const torch::Tensor chosen =
      lp.gather(1, ids.to(lp.device(), torch::kLong).view({-1, 1})).squeeze(1).to(torch::kCPU).contiguous();
  const int64_t k = std::min<int64_t>(std::max<int64_t>(top_logprobs, 0), lp.size(1));
  auto top = lp.topk(k, /*dim=*/-1);
  const torch::Tensor values = std::get<0>(top).to(torch::kCPU).contiguous();
  const torch::Tensor indices = std::get<1>(top).to(torch::kCPU, torch::kLong).contiguous();
  std::vector<RawLogprobs> out(static_cast<size_t>(lp.size(0)));
  for (int64_t r = 0; r < lp.size(0); ++r) {
    out[r].logprob = chosen.data_ptr<float>()[r];
    for (int64_t j = 0; j < k; ++j)
      out[r].top.push_back({indices.data_ptr<int64_t>()[r * k + j], values.data_ptr<float>()[r * k + j]});
  }
  return out;
}

bool hits_stop_string(const std::vector<int64_t>& ids, const std::vector<std::string>& stops, size_t max_stop_bytes,
                      const std::function<std::string(const std::vector<int64_t>&)>& decode) {
  size_t n = std::min(ids.size(), max_stop_bytes + 3);
  std::vector<int64_t> tail(ids.end() - static_cast<std::ptrdiff_t>(n), ids.end());
  std::string text = decode(tail);
  for (const auto& s : stops)
    if (!s.empty() && text.find(s) != std::string::npos) return true;
  return false;
}

PrefilledBatch prefill_batch(model::Qwen2_5_VLImpl& model, const std::vector<PromptInput>& prompts, int64_t pad_id,
                             int64_t capacity) {
  torch::NoGradGuard no_grad;
  REFRACT_CHECK(!prompts.empty()) << "prefill_batch: no prompts";
  const int64_t num_prompts = static_cast<int64_t>(prompts.size());
  PrefilledBatch out;
  for (size_t p = 0; p < prompts.size(); ++p) {
    REFRACT_CHECK(!prompts[p].input_ids.empty()) << "prompt " << p << " has no tokens";
    out.length = std::max<int64_t>(out.length, prompts[p].input_ids.size());
  }
  REFRACT_CHECK(capacity == 0 || capacity >= out.length)
      << "prefill_batch: capacity " << capacity << " < the longest prompt (" << out.length << ")";
  torch::Tensor input_ids = torch::full({num_prompts, out.length}, pad_id, torch::kLong);
  out.prompt_mask = torch::zeros({num_prompts, out.length}, torch::kLong);
  std::vector<torch::Tensor> pixel_values, grids, video_values, video_grids, video_seconds;
  for (int64_t p = 0; p < num_prompts; ++p) {
    const auto& ids = prompts[p].input_ids;
    const int64_t n = static_cast<int64_t>(ids.size());
    const int64_t off = out.length - n;
    out.padded = out.padded || off > 0;
    input_ids[p].narrow(0, off, n).copy_(torch::tensor(ids, torch::kLong));
    out.prompt_mask[p].narrow(0, off, n).fill_(1);
    if (prompts[p].pixel_values.defined() && prompts[p].pixel_values.numel() > 0) {
      REFRACT_CHECK(prompts[p].image_grid_thw.defined())
          << "prompt " << p << " has pixel_values but no image_grid_thw";
      pixel_values.push_back(prompts[p].pixel_values);
      grids.push_back(prompts[p].image_grid_thw.to(torch::kLong).view({-1, 3}));
    }
    if (prompts[p].pixel_values_videos.defined() && prompts[p].pixel_values_videos.numel() > 0) {
      REFRACT_CHECK(prompts[p].video_grid_thw.defined())
          << "prompt " << p << " has pixel_values_videos but no video_grid_thw";
      const torch::Tensor grid = prompts[p].video_grid_thw.to(torch::kLong).view({-1, 3});
      video_values.push_back(prompts[p].pixel_values_videos);
      video_grids.push_back(grid);
      // Batch-mates may mix given and absent seconds: absent ones are 1.0 per video, which is
      // what the model reads an undefined tensor as.
      video_seconds.push_back(prompts[p].second_per_grid_ts.defined()
                                  ? prompts[p].second_per_grid_ts.to(torch::kFloat32).view({-1})
                                  : torch::ones({grid.size(0)}, torch::kFloat32));
    }
  }
  const torch::Device device = model.device();
  out.cache = model.make_cache(num_prompts, capacity > 0 ? capacity : out.length);
  model::ModelInputs in;
  in.input_ids = input_ids.to(device);
  if (out.padded) in.attention_mask = out.prompt_mask.to(device);
  if (!pixel_values.empty()) {
    in.pixel_values = torch::cat(pixel_values, 0).to(device, model.dtype());
    in.image_grid_thw = torch::cat(grids, 0);
  }
  if (!video_values.empty()) {
    in.pixel_values_videos = torch::cat(video_values, 0).to(device, model.dtype());
    in.video_grid_thw = torch::cat(video_grids, 0);
    in.second_per_grid_ts = torch::cat(video_seconds, 0);
  }
  in.logits_to_keep = 1;
  out.logits = model.forward(in, &out.cache).logits.select(1, 0);  // [P, V]
  return out;
}

GenerationResult generate(model::Qwen2_5_VLImpl& model, const std::vector<PromptInput>& prompts,
                          const GenerationConfig& config, const GenerateOptions& options) {
  torch::NoGradGuard no_grad;
  const SamplingConfig sampling = sampling_of(config);
  validate(sampling);
  REFRACT_CHECK(config.max_new_tokens >= 1)
      << "max_new_tokens must be >= 1, got " << config.max_new_tokens;
  REFRACT_CHECK(config.num_generations >= 1)
      << "num_generations must be >= 1, got " << config.num_generations;
  REFRACT_CHECK(config.stop_strings.empty() || options.decode)
      << "stop_strings need a decode function (GenerateOptions::decode)";
  GenerationResult result;
  if (prompts.empty()) return result;

  const int64_t num_prompts = static_cast<int64_t>(prompts.size());
  const int64_t g = config.num_generations;
  const int64_t num_samples = num_prompts * g;
  REFRACT_CHECK(options.prompt_streams.empty() || static_cast<int64_t>(options.prompt_streams.size()) == num_prompts)
      << "prompt_streams has " << options.prompt_streams.size() << " entries for " << num_prompts << " prompts";
  const torch::Device device = model.device();
  const int64_t pad_id = config.pad_token_id >= 0   ? config.pad_token_id
                         : !config.stop_token_ids.empty() ? config.stop_token_ids[0]
                                                          : 0;
  size_t max_stop_bytes = 0;
  for (const auto& s : config.stop_strings) max_stop_bytes = std::max(max_stop_bytes, s.size());

  int64_t prompt_len = 0;
  for (size_t p = 0; p < prompts.size(); ++p) {
    REFRACT_CHECK(!prompts[p].input_ids.empty()) << "prompt " << p << " has no tokens";
    prompt_len = std::max<int64_t>(prompt_len, prompts[p].input_ids.size());
  }
  const int64_t capacity = prompt_len + config.max_new_tokens;
  // History for the repetition penalty: left pads hold a copy of the row's first real token
  // (harmless duplicate). note: HF penalises the pad id too when a batch is padded, which
  // makes a prompt's result depend on its batch-mates; refract does not.
  const bool need_history = config.repetition_penalty != 1.0;
  torch::Tensor history;
  if (need_history) {
    history = torch::zeros({num_prompts, capacity}, torch::kLong);
    for (int64_t p = 0; p < num_prompts; ++p) {
      const auto& ids = prompts[p].input_ids;
      const int64_t n = static_cast<int64_t>(ids.size());
      const int64_t off = prompt_len - n;
      history[p].narrow(0, 0, off).fill_(ids[0]);
      history[p].narrow(0, off, n).copy_(torch::tensor(ids, torch::kLong));
    }
  }

  // ---- prefill: once per prompt, one left-padded batch ---------------------------------------
  auto t0 = Clock::now();
  double c0 = cpu_seconds();
  PrefilledBatch pre = prefill_batch(model, prompts, pad_id, capacity);
  model::KVCache cache = std::move(pre.cache);
  torch::Tensor logits = pre.logits;
  const bool any_padding = pre.padded;
  const torch::Tensor& prompt_mask = pre.prompt_mask;
  result.stats.prompt_tokens = num_prompts * prompt_len;

  // ---- G rows per prompt -------------------------------------------------------------------------
  ActiveBatch batch;
  if (g > 1) {
    cache.repeat_rows(g);  // rope_deltas follow
    logits = logits.repeat_interleave(g, 0);
  }
  if (any_padding) {
    batch.attention_mask = torch::ones({num_prompts, capacity}, torch::kLong);
    batch.attention_mask.narrow(1, 0, prompt_len).copy_(prompt_mask);
    batch.attention_mask = batch.attention_mask.repeat_interleave(g, 0).to(device);
  }
  if (need_history) batch.history = history.repeat_interleave(g, 0).to(device);
  result.completions.resize(num_samples);
  for (int64_t n = 0; n < num_samples; ++n) {
    auto& c = result.completions[n];
    c.prompt_index = n / g;
    c.generation_index = n % g;
    c.ids.reserve(config.max_new_tokens);
    c.logprobs.reserve(config.max_new_tokens);
    batch.row_sample.push_back(n);
    // Stream = sample index, so a completion's randomness depends only on (seed, p, g).
    const int64_t stream = options.prompt_streams.empty() ? n : options.prompt_streams[n / g] * g + n % g;
    if (config.do_sample) batch.generators.push_back(make_generator(config.seed, static_cast<uint64_t>(stream)));
  }
  std::vector<std::vector<torch::Tensor>> step_logits(options.record_step_logits ? num_samples : 0);
  std::vector<char> finished(num_samples, 0);  // rows not yet compacted away may be finished
  result.stats.prefill_seconds = seconds_since(t0);
  result.stats.prefill_cpu_seconds = cpu_seconds() - c0;

  // ---- decode loop ---------------------------------------------------------------------------------
  t0 = Clock::now();
  c0 = cpu_seconds();
  for (int64_t step = 0;; ++step) {
    const int64_t rows = static_cast<int64_t>(batch.row_sample.size());
    const int64_t hist_len = prompt_len + step;
    torch::Tensor hist = need_history ? batch.history.narrow(1, 0, hist_len) : torch::Tensor();
    SampleOutput s = sample_next(logits, hist, sampling, batch.generators);
    torch::Tensor ids_cpu = s.ids.to(torch::kCPU, torch::kLong).contiguous();
    torch::Tensor lp_cpu = s.logprobs.to(torch::kCPU, torch::kFloat).contiguous();
    const int64_t* ids_ptr = ids_cpu.data_ptr<int64_t>();
    const float* lp_ptr = lp_cpu.data_ptr<float>();
    std::vector<RawLogprobs> raw_top;
    if (options.top_logprobs >= 0) raw_top = raw_logprobs(logits, s.ids, options.top_logprobs);
    if (options.record_step_logits) {
      torch::Tensor l = logits.to(torch::kCPU, torch::kFloat);
      for (int64_t r = 0; r < rows; ++r)
        if (!finished[batch.row_sample[r]]) step_logits[batch.row_sample[r]].push_back(l[r]);
    }

    std::vector<int64_t> keep;  // rows still generating
    keep.reserve(rows);
    int64_t newly_generated = 0;
    for (int64_t r = 0; r < rows; ++r) {
      if (finished[batch.row_sample[r]]) continue;
      ++newly_generated;
      auto& c = result.completions[batch.row_sample[r]];
      const int64_t id = ids_ptr[r];
      c.ids.push_back(id);
      c.logprobs.push_back(lp_ptr[r]);
      if (options.top_logprobs >= 0) c.raw_logprobs.push_back(raw_top[r]);
      bool done = true;
      if (std::find(config.stop_token_ids.begin(), config.stop_token_ids.end(), id) !=
          config.stop_token_ids.end()) {
        c.finish_reason = FinishReason::kEos;
      } else if (!config.stop_strings.empty() &&
                 hits_stop_string(c.ids, config.stop_strings, max_stop_bytes, options.decode)) {
        c.finish_reason = FinishReason::kStop;
      } else if (static_cast<int64_t>(c.ids.size()) >= config.max_new_tokens) {
        c.finish_reason = FinishReason::kLength;
      } else {
        done = false;
      }
      if (done) finished[batch.row_sample[r]] = 1;
      else keep.push_back(r);
      if (options.on_token) options.on_token(batch.row_sample[r], c, done);
    }
    result.stats.generated_tokens += newly_generated;
    if (keep.empty()) break;

    // Finished rows stay in the batch (fed pad, output ignored) until they are numerous
    // enough that dropping them beats the cost of copying the cache rows.
    const int64_t dead = rows - static_cast<int64_t>(keep.size());
    torch::Tensor next_ids = ids_cpu;
    if (dead > 0 && static_cast<double>(dead) >= options.compact_fraction * rows) {
      torch::Tensor idx = torch::tensor(keep, torch::kLong);
      torch::Tensor idx_dev = idx.to(device);
      cache.select_rows(idx_dev);
      std::vector<int64_t> row_sample;
      std::vector<at::Generator> gens;
      for (int64_t r : keep) {
        row_sample.push_back(batch.row_sample[r]);
        if (config.do_sample) gens.push_back(batch.generators[r]);
      }
      batch.row_sample = std::move(row_sample);
      batch.generators = std::move(gens);
      if (batch.attention_mask.defined())
        batch.attention_mask = batch.attention_mask.index_select(0, idx_dev);
      if (need_history) batch.history = batch.history.index_select(0, idx_dev);
      next_ids = ids_cpu.index_select(0, idx);
      s.ids = s.ids.index_select(0, idx_dev);
      ++result.stats.compactions;
    }
    if (need_history) batch.history.select(1, hist_len).copy_(s.ids);

    const int64_t len = cache.length();
    torch::Tensor mask = batch.attention_mask.defined() ? batch.attention_mask.narrow(1, 0, len + 1)
                                                        : torch::Tensor();
    if (options.before_step) options.before_step();
    logits = model.forward_decode(next_ids.view({-1, 1}).to(device), mask, cache.rope_deltas(), cache);
    ++result.stats.decode_steps;
    result.stats.decoded_rows += next_ids.size(0);
  }
  result.stats.decode_seconds = seconds_since(t0);
  result.stats.decode_cpu_seconds = cpu_seconds() - c0;

  if (options.record_step_logits)
    for (int64_t n = 0; n < num_samples; ++n)
      result.completions[n].step_logits = torch::stack(step_logits[n]);
  return result;
}

PaddedCompletions pad_completions(const std::vector<Completion>& completions, int64_t pad_token_id,
                                  torch::Device device) {
  const int64_t n = static_cast<int64_t>(completions.size());
  int64_t t = 0;
  for (const auto& c : completions) t = std::max<int64_t>(t, c.ids.size());
  PaddedCompletions out;
  out.completion_ids = torch::full({n, t}, pad_token_id, torch::kLong);
  out.completion_mask = torch::zeros({n, t}, torch::kLong);
  out.logprobs = torch::zeros({n, t}, torch::kFloat);
  for (int64_t i = 0; i < n; ++i) {
    const auto& c = completions[i];
    const int64_t len = static_cast<int64_t>(c.ids.size());
    if (len == 0) continue;
    out.completion_ids[i].narrow(0, 0, len).copy_(torch::tensor(c.ids, torch::kLong));
    out.completion_mask[i].narrow(0, 0, len).fill_(1);
    out.logprobs[i].narrow(0, 0, len).copy_(torch::tensor(c.logprobs, torch::kFloat));
  }
  out.completion_ids = out.completion_ids.to(device);
  out.completion_mask = out.completion_mask.to(device);
  out.logprobs = out.logprobs.to(device);
  return out;
}

}  // namespace refract::generate
