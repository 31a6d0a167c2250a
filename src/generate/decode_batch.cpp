#include "generate/decode_batch.h"

#include <algorithm>
#include <optional>

#include "common/check.h"
#include "model/qwen2_5_vl.h"

namespace refract::generate {

namespace {
// Leading cache columns no row uses are dropped only when this many have piled up: a drop
// copies the whole cache.
constexpr int64_t kTrimColumns = 16;

// K and V of positions [0, length) of every layer: update() with zero new positions returns
// views of what the cache holds.
std::vector<std::pair<torch::Tensor, torch::Tensor>> cache_contents(model::Qwen2_5_VLImpl& model, model::KVCache& cache) {
  const auto& c = model.config();
  const torch::Tensor empty = torch::empty({cache.batch_size(), c.num_key_value_heads, 0, c.head_dim()},
                                           torch::TensorOptions().dtype(model.dtype()).device(model.device()));
  std::vector<std::pair<torch::Tensor, torch::Tensor>> kv;
  for (int64_t l = 0; l < cache.num_layers(); ++l) kv.push_back(cache.update(l, empty, empty));
  return kv;
}

// A new cache of `capacity` positions holding the rows of `parts` one after the other, each
// part's positions moved right by its shift (left padding, zeros) or left (-shift positions
// dropped). Stored K carry their RoPE already: moving them leaves attention unchanged when the
// mask moves alike and rope_deltas drop by the shift (decode position = cache position + delta).
struct CachePart {
  model::KVCache* cache;
  int64_t shift;
};
model::KVCache rebuild_cache(model::Qwen2_5_VLImpl& model, const std::vector<CachePart>& parts, int64_t capacity) {
  torch::NoGradGuard no_grad;
  int64_t rows = 0, length = -1;
  std::vector<torch::Tensor> deltas;
  std::vector<std::vector<std::pair<torch::Tensor, torch::Tensor>>> contents;
  for (const CachePart& p : parts) {
    const int64_t len = p.cache->length() + p.shift;
    REFRACT_CHECK(length < 0 || len == length) << "rebuild_cache: parts end at different positions";
    length = len;
    rows += p.cache->batch_size();
    deltas.push_back(p.cache->rope_deltas() - p.shift);
    contents.push_back(cache_contents(model, *p.cache));
  }
  REFRACT_CHECK(length >= 0 && length <= capacity) << "rebuild_cache: " << length << " positions, capacity " << capacity;
  model::KVCache out = model.make_cache(rows, capacity);
  for (int64_t l = 0; l < out.num_layers(); ++l) {
    std::vector<torch::Tensor> ks, vs;
    for (size_t i = 0; i < parts.size(); ++i) {
      auto move = [&](const torch::Tensor& t) {
        const int64_t shift = parts[i].shift;
        if (shift >= 0) {
          torch::Tensor pad = torch::zeros({t.size(0), t.size(1), shift, t.size(3)}, t.options());
          return torch::cat({pad, t}, 2);
        }
        return t.narrow(2, -shift, t.size(2) + shift);
      };
      ks.push_back(move(contents[i][l].first));
      vs.push_back(move(contents[i][l].second));
    }
    out.update(l, torch::cat(ks, 0), torch::cat(vs, 0));
  }
  out.advance(length);
  out.set_rope_deltas(torch::cat(deltas, 0));
  return out;
}
}  // namespace

DecodeBatch::DecodeBatch(model::Qwen2_5_VLImpl& model, std::function<std::string(const std::vector<int64_t>&)> decode)
    : model_(model), decode_(std::move(decode)) {}

int64_t DecodeBatch::needed_capacity(int64_t length) const {
  int64_t need = length;
  for (const Row& r : rows_)
    need = std::max<int64_t>(need, length + r.config->max_new_tokens - static_cast<int64_t>(r.completion.ids.size()));
  return need;
}

int64_t DecodeBatch::add(const PromptInput& prompt, const RowConfig& config, int64_t num_generations,
                         TokenCallback on_token) {
  torch::NoGradGuard no_grad;
  validate(config.sampling);
  REFRACT_CHECK(config.max_new_tokens >= 1) << "max_new_tokens must be >= 1, got " << config.max_new_tokens;
  REFRACT_CHECK(num_generations >= 1) << "num_generations must be >= 1, got " << num_generations;
  REFRACT_CHECK(config.stop_strings.empty() || decode_) << "stop_strings need a decode function";
  const int64_t n = static_cast<int64_t>(prompt.input_ids.size());
  REFRACT_CHECK(n > 0) << "the prompt has no tokens";
  const torch::Device device = model_.device();

  // ---- prefill alone (no padding), logits of the last position --------------------------------
  model::KVCache cache = model_.make_cache(1, n);
  model::ModelInputs in;
  in.input_ids = torch::tensor(prompt.input_ids, torch::kLong).view({1, n}).to(device);
  if (prompt.pixel_values.defined() && prompt.pixel_values.numel() > 0) {
    REFRACT_CHECK(prompt.image_grid_thw.defined()) << "the prompt has pixel_values but no image_grid_thw";
    in.pixel_values = prompt.pixel_values.to(device, model_.dtype());
    in.image_grid_thw = prompt.image_grid_thw.to(torch::kLong).view({-1, 3});
  }
  if (prompt.pixel_values_videos.defined() && prompt.pixel_values_videos.numel() > 0) {
    in.pixel_values_videos = prompt.pixel_values_videos.to(device, model_.dtype());
    in.video_grid_thw = prompt.video_grid_thw.to(torch::kLong).view({-1, 3});
    if (prompt.second_per_grid_ts.defined()) in.second_per_grid_ts = prompt.second_per_grid_ts;
  }
  in.logits_to_keep = 1;
  torch::Tensor logits = model_.forward(in, &cache).logits.select(1, 0);  // [1, V]
  if (num_generations > 1) {
    cache.repeat_rows(num_generations);
    logits = logits.repeat_interleave(num_generations, 0);
  }

  auto request = std::make_unique<Request>();
  request->id = next_id_++;
  request->config = config;
  request->on_token = std::move(on_token);

  // ---- join the running batch: both sides right-aligned to the longer length ---------------------
  const int64_t length = std::max(n, cache_.length());
  const int64_t capacity = std::max(needed_capacity(length), length + config.max_new_tokens);
  const torch::TensorOptions long_opts = torch::TensorOptions().dtype(torch::kLong).device(device);
  torch::Tensor new_mask = torch::ones({num_generations, capacity}, long_opts);
  const int64_t pad_new = length - n;
  new_mask.narrow(1, 0, pad_new).zero_();
  if (rows_.empty()) {
    cache_ = rebuild_cache(model_, {{&cache, pad_new}}, capacity);
    mask_ = new_mask;
    logits_ = logits;
  } else {
    const int64_t pad_old = length - cache_.length();
    torch::Tensor m = torch::ones({rows(), capacity}, long_opts);
    m.narrow(1, 0, pad_old).zero_();
    m.narrow(1, pad_old, cache_.length()).copy_(mask_.narrow(1, 0, cache_.length()));
    cache_ = rebuild_cache(model_, {{&cache_, pad_old}, {&cache, pad_new}}, capacity);
    mask_ = torch::cat({m, new_mask}, 0);
    logits_ = torch::cat({logits_, logits}, 0);
  }
  padded_ = (mask_.narrow(1, 0, length) == 0).any().item<bool>();

  const RowConfig* rc = &request->config;
  size_t max_stop_bytes = 0;
  for (const std::string& s : rc->stop_strings) max_stop_bytes = std::max(max_stop_bytes, s.size());
  for (int64_t g = 0; g < num_generations; ++g) {
    Row row;
    row.request = request->id;
    row.g = g;
    row.config = rc;
    row.completion.generation_index = g;
    row.completion.ids.reserve(rc->max_new_tokens);
    // The stream generate() gives completion g of prompt p: first_stream = p * G.
    if (rc->sampling.do_sample) row.generator.push_back(make_generator(rc->seed, rc->first_stream + g));
    if (rc->sampling.repetition_penalty != 1.0) row.history = prompt.input_ids;
    row.max_stop_bytes = max_stop_bytes;
    rows_.push_back(std::move(row));
  }
  requests_.push_back(std::move(request));
  return requests_.back()->id;
}

void DecodeBatch::keep_rows(const std::vector<int64_t>& keep) {
  if (static_cast<int64_t>(keep.size()) == rows()) return;
  std::vector<Row> kept;
  for (int64_t r : keep) kept.push_back(std::move(rows_[r]));
  rows_ = std::move(kept);
  // Requests with no row left are done.
  requests_.erase(std::remove_if(requests_.begin(), requests_.end(),
                                 [&](const std::unique_ptr<Request>& q) {
                                   return std::none_of(rows_.begin(), rows_.end(),
                                                       [&](const Row& r) { return r.request == q->id; });
                                 }),
                  requests_.end());
  if (rows_.empty()) {
    cache_ = model::KVCache();
    mask_ = logits_ = torch::Tensor();
    padded_ = false;
    return;
  }
  const torch::Tensor idx = torch::tensor(keep, torch::kLong).to(mask_.device());
  cache_.select_rows(idx);
  mask_ = mask_.index_select(0, idx);
  if (logits_.defined()) logits_ = logits_.index_select(0, idx);
  trim_front();
}

void DecodeBatch::trim_front() {
  if (!padded_) return;
  const int64_t length = cache_.length();
  const torch::Tensor used = mask_.narrow(1, 0, length);
  // First column any row uses (argmax finds each row's first 1).
  const int64_t first = used.argmax(1).min().item<int64_t>();
  if (first >= kTrimColumns) {
    cache_ = rebuild_cache(model_, {{&cache_, -first}}, cache_.capacity() - first);
    mask_ = mask_.narrow(1, first, mask_.size(1) - first).contiguous();
  }
  padded_ = (mask_.narrow(1, 0, cache_.length()) == 0).any().item<bool>();
}

void DecodeBatch::remove(int64_t id) {
  std::vector<int64_t> keep;
  for (int64_t r = 0; r < rows(); ++r)
    if (rows_[r].request != id) keep.push_back(r);
  keep_rows(keep);
}

void DecodeBatch::step() {
  if (rows_.empty()) return;
  torch::NoGradGuard no_grad;
  const int64_t n = rows();
  const torch::Tensor logits = logits_.to(torch::kFloat);  // [rows, V]
  logits_ = torch::Tensor();

  // ---- sample: each row with its own settings ---------------------------------------------------
  // Greedy rows without a penalty (the common serving case) take one batched argmax.
  const torch::Tensor argmax = logits.argmax(-1).to(torch::kCPU);
  const torch::Tensor lse = logits.logsumexp(-1).to(torch::kCPU);
  std::vector<int64_t> next(n);
  std::vector<float> logprob(n);
  bool any_top = false;
  for (int64_t r = 0; r < n; ++r) {
    Row& row = rows_[r];
    const SamplingConfig& sc = row.config->sampling;
    any_top = any_top || row.config->top_logprobs >= 0;
    if (!sc.do_sample && sc.repetition_penalty == 1.0) {
      next[r] = argmax[r].item<int64_t>();
      logprob[r] = logits[r][next[r]].item<float>() - lse[r].item<float>();
      continue;
    }
    torch::Tensor hist;
    if (sc.repetition_penalty != 1.0)
      hist = torch::tensor(row.history, torch::kLong).view({1, -1}).to(logits.device());
    const SampleOutput s = sample_next(logits.narrow(0, r, 1), hist, sc, row.generator);
    next[r] = s.ids.item<int64_t>();
    logprob[r] = s.logprobs.item<float>();
  }
  std::vector<RawLogprobs> raw;
  if (any_top) {
    int64_t k = 0;
    for (const Row& row : rows_) k = std::max(k, row.config->top_logprobs);
    raw = raw_logprobs(logits, torch::tensor(next, torch::kLong), k);
  }

  // ---- append, finish, call back ---------------------------------------------------------------------
  std::vector<int64_t> keep;
  for (int64_t r = 0; r < n; ++r) {
    Row& row = rows_[r];
    const RowConfig& rc = *row.config;
    Completion& c = row.completion;
    const int64_t id = next[r];
    c.ids.push_back(id);
    c.logprobs.push_back(logprob[r]);
    if (rc.top_logprobs >= 0) {
      RawLogprobs lp = raw[r];
      lp.top.resize(std::min<size_t>(lp.top.size(), static_cast<size_t>(rc.top_logprobs)));
      c.raw_logprobs.push_back(std::move(lp));
    }
    if (rc.sampling.repetition_penalty != 1.0) row.history.push_back(id);
    bool done = true;
    if (std::find(rc.stop_token_ids.begin(), rc.stop_token_ids.end(), id) != rc.stop_token_ids.end())
      c.finish_reason = FinishReason::kEos;
    else if (!rc.stop_strings.empty() && hits_stop_string(c.ids, rc.stop_strings, row.max_stop_bytes, decode_))
      c.finish_reason = FinishReason::kStop;
    else if (static_cast<int64_t>(c.ids.size()) >= rc.max_new_tokens)
      c.finish_reason = FinishReason::kLength;
    else
      done = false;
    if (!done) keep.push_back(r);
    for (const auto& q : requests_)
      if (q->id == row.request && q->on_token) q->on_token(row.g, c, done);
  }
  std::vector<int64_t> ids;
  for (int64_t r : keep) ids.push_back(next[r]);
  keep_rows(keep);
  if (rows_.empty()) return;

  // ---- one forward for every remaining row ---------------------------------------------------------
  const int64_t length = cache_.length();
  const torch::Tensor mask = padded_ ? mask_.narrow(1, 0, length + 1) : torch::Tensor();
  logits_ = model_.forward_decode(torch::tensor(ids, torch::kLong).view({-1, 1}).to(model_.device()), mask,
                                  cache_.rope_deltas(), cache_);
  ++decode_steps_;
}

std::vector<std::vector<Completion>> decode_all(model::Qwen2_5_VLImpl& model, size_t count,
                                                const std::function<DecodeRequest(size_t)>& make, int64_t max_num_seqs,
                                                std::function<std::string(const std::vector<int64_t>&)> decode) {
  REFRACT_CHECK(max_num_seqs >= 1) << "max_num_seqs must be >= 1, got " << max_num_seqs;
  std::vector<std::vector<Completion>> out(count);
  DecodeBatch batch(model, std::move(decode));
  std::optional<DecodeRequest> waiting;  // made, but its rows do not fit yet
  size_t next = 0;
  while (next < count || waiting || !batch.empty()) {
    while (waiting || next < count) {
      if (!waiting) waiting = make(next);
      if (!batch.empty() && batch.rows() + waiting->num_generations > max_num_seqs) break;
      const size_t r = next++;
      out[r].resize(static_cast<size_t>(waiting->num_generations));
      batch.add(waiting->prompt, waiting->config, waiting->num_generations,
                [&out, r](int64_t g, const Completion& c, bool finished) {
                  if (!finished) return;
                  Completion& o = out[r][static_cast<size_t>(g)];
                  o = c;
                  o.prompt_index = static_cast<int64_t>(r);
                });
      waiting.reset();
    }
    batch.step();
  }
  return out;
}

}  // namespace refract::generate
