#include "generate/decode_batch.h"

#include <algorithm>
#include <optional>

#include "common/check.h"
#include "model/qwen2_5_vl.h"

namespace refract::generate {

namespace {

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

// Rows of a cache placed in a new one: `rows` (undefined = all) moved right by `shift`
// positions (left padding) or left by -shift (leading positions dropped).
struct CachePart {
  model::KVCache* cache;
  torch::Tensor rows;  // int64 row indices, or undefined
  int64_t shift;
};

// t [rows, ..., src positions] -> [rows, ..., src + shift] along `dim`, zeros in front when
// shift > 0 (what a masked left pad holds), leading entries dropped when shift < 0.
torch::Tensor shift_positions(const torch::Tensor& t, int64_t dim, int64_t shift) {
  if (shift < 0) return t.narrow(dim, -shift, t.size(dim) + shift);
  if (shift == 0) return t;
  std::vector<int64_t> pad_shape = t.sizes().vec();
  pad_shape[static_cast<size_t>(dim)] = shift;
  return torch::cat({torch::zeros(pad_shape, t.options()), t}, dim);
}

// A new cache of `capacity` positions holding the parts' rows one after the other. Stored K
// carry their RoPE already: moving them leaves attention unchanged when the mask moves alike and
// rope_deltas drop by the shift (decode position = cache position + delta).
model::KVCache rebuild_cache(model::Qwen2_5_VLImpl& model, const std::vector<CachePart>& parts, int64_t capacity) {
  torch::NoGradGuard no_grad;
  int64_t rows = 0, length = -1;
  std::vector<torch::Tensor> deltas;
  std::vector<std::vector<std::pair<torch::Tensor, torch::Tensor>>> contents;
  for (const CachePart& p : parts) {
    const int64_t len = p.cache->length() + p.shift;
    REFRACT_CHECK(length < 0 || len == length) << "rebuild_cache: parts end at different positions";
    length = len;
    torch::Tensor d = p.cache->rope_deltas();
    auto kv = cache_contents(model, *p.cache);
    if (p.rows.defined()) {
      d = d.index_select(0, p.rows.to(d.device()));
      const torch::Tensor idx = p.rows.to(model.device());
      for (auto& [k, v] : kv) k = k.index_select(0, idx), v = v.index_select(0, idx);
    }
    rows += d.size(0);
    deltas.push_back(d - p.shift);
    contents.push_back(std::move(kv));
  }
  REFRACT_CHECK(rows > 0 && length >= 0 && length <= capacity)
      << "rebuild_cache: " << rows << " rows of " << length << " positions, capacity " << capacity;
  model::KVCache out = model.make_cache(rows, capacity);
  for (int64_t l = 0; l < out.num_layers(); ++l) {
    std::vector<torch::Tensor> ks, vs;
    for (size_t i = 0; i < parts.size(); ++i) {
      ks.push_back(shift_positions(contents[i][l].first, 2, parts[i].shift));
      vs.push_back(shift_positions(contents[i][l].second, 2, parts[i].shift));
    }
    out.update(l, ks.size() == 1 ? ks[0] : torch::cat(ks, 0), vs.size() == 1 ? vs[0] : torch::cat(vs, 0));
  }
  out.advance(length);
  out.set_rope_deltas(torch::cat(deltas, 0));
  return out;
}

// The prompts of a join in prefill batches: longest first, a batch takes the next prompt while
// at least half of what it computes (prompts x its longest) is real tokens, so one long prompt
// does not make many short ones compute its length (a text request next to an image one).
std::vector<std::vector<size_t>> prefill_groups(const std::vector<int64_t>& lengths) {
  std::vector<size_t> order(lengths.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return lengths[a] > lengths[b]; });
  std::vector<std::vector<size_t>> groups;
  int64_t real = 0;
  for (size_t i : order) {
    if (!groups.empty()) {
      const int64_t longest = lengths[groups.back().front()];
      const int64_t computed = longest * static_cast<int64_t>(groups.back().size() + 1);
      if (2 * (real + lengths[i]) >= computed) {
        groups.back().push_back(i);
        real += lengths[i];
        continue;
      }
    }
    groups.push_back({i});
    real = lengths[i];
  }
  return groups;
}

// The first position any of `mask`'s rows uses ([rows, >= length] int64, 1 = used).
int64_t first_used_column(const torch::Tensor& mask, int64_t length) {
  if (length == 0) return 0;
  // argmax finds each row's first 1 (a row always has its last position).
  return mask.narrow(1, 0, length).argmax(1).min().item<int64_t>();
}

}  // namespace

DecodeBatch::DecodeBatch(model::Qwen2_5_VLImpl& model, std::function<std::string(const std::vector<int64_t>&)> decode)
    : model_(model), decode_(std::move(decode)) {}

std::vector<int64_t> DecodeBatch::live_rows() const {
  std::vector<int64_t> live;
  for (int64_t r = 0; r < static_cast<int64_t>(rows_.size()); ++r)
    if (!rows_[r].done) live.push_back(r);
  return live;
}

int64_t DecodeBatch::needed_capacity(int64_t length) const {
  int64_t need = length;
  for (const Row& r : rows_)
    if (!r.done)
      need = std::max<int64_t>(need, length + r.request->config.max_new_tokens -
                                         static_cast<int64_t>(r.completion.ids.size()));
  return need;
}

int64_t DecodeBatch::add(const PromptInput& prompt, const RowConfig& config, int64_t num_generations,
                         TokenCallback on_token) {
  return add({NewRequest{&prompt, config, num_generations, std::move(on_token)}}).front();
}

std::vector<int64_t> DecodeBatch::add(const std::vector<NewRequest>& requests) {
  torch::NoGradGuard no_grad;
  if (requests.empty()) return {};
  std::vector<int64_t> lengths;
  int64_t max_new = 0, prompt_len = 0;
  for (const NewRequest& q : requests) {
    REFRACT_CHECK(q.prompt) << "DecodeBatch::add: no prompt";
    validate(q.config.sampling);
    REFRACT_CHECK(q.config.max_new_tokens >= 1) << "max_new_tokens must be >= 1, got " << q.config.max_new_tokens;
    REFRACT_CHECK(q.num_generations >= 1) << "num_generations must be >= 1, got " << q.num_generations;
    REFRACT_CHECK(q.config.stop_strings.empty() || decode_) << "stop_strings need a decode function";
    REFRACT_CHECK(!q.prompt->input_ids.empty()) << "the prompt has no tokens";
    lengths.push_back(static_cast<int64_t>(q.prompt->input_ids.size()));
    max_new = std::max(max_new, q.config.max_new_tokens);
    prompt_len = std::max(prompt_len, lengths.back());
  }
  const torch::Device device = model_.device();
  const torch::TensorOptions long_opts = torch::TensorOptions().dtype(torch::kLong).device(device);

  // ---- where the running rows go: still-live rows right-aligned to the common length, the
  // leading columns none of them uses dropped ---------------------------------------------------
  const std::vector<int64_t> live = live_rows();
  int64_t old_len = 0, old_first = 0;
  torch::Tensor live_idx;
  if (!live.empty()) {
    live_idx = torch::tensor(live, torch::kLong).to(device);
    old_len = cache_.length();
    old_first = first_used_column(mask_.index_select(0, live_idx), old_len);
  }
  const int64_t length = std::max(prompt_len, old_len - old_first);
  const int64_t capacity = std::max(needed_capacity(length), length + max_new);

  // ---- prefill the new prompts, grouped by length; an empty batch that needs one group takes
  // its cache as it is (allocated with the final capacity), anything else is one cache copy ------
  const std::vector<std::vector<size_t>> groups = prefill_groups(lengths);
  const bool direct = live.empty() && groups.size() == 1;
  std::vector<PrefilledBatch> prefilled;
  std::vector<torch::Tensor> masks, logits;
  std::vector<size_t> row_request;  // new row -> index into `requests`, in cache order
  for (const std::vector<size_t>& group : groups) {
    std::vector<PromptInput> prompts;  // shallow copies (tensors are shared)
    std::vector<int64_t> repeat;
    for (size_t i : group) {
      prompts.push_back(*requests[i].prompt);
      repeat.push_back(requests[i].num_generations);
      for (int64_t g = 0; g < requests[i].num_generations; ++g) row_request.push_back(i);
    }
    PrefilledBatch pre = prefill_batch(model_, prompts, /*pad_id=*/0, direct ? capacity : 0);
    torch::Tensor prompt_mask = pre.prompt_mask.to(device);
    torch::Tensor l = pre.logits;
    if (std::any_of(repeat.begin(), repeat.end(), [](int64_t n) { return n > 1; })) {
      // n > 1: a request's rows share its prompt's prefill
      const torch::Tensor idx = torch::repeat_interleave(torch::tensor(repeat, torch::kLong)).to(device);
      pre.cache.select_rows(idx);
      prompt_mask = prompt_mask.index_select(0, idx);
      l = l.index_select(0, idx);
    }
    const int64_t pad = length - pre.length;
    torch::Tensor m = torch::ones({prompt_mask.size(0), capacity}, long_opts);
    m.narrow(1, 0, pad).zero_();
    m.narrow(1, pad, pre.length).copy_(prompt_mask);
    masks.push_back(m);
    logits.push_back(l);
    prefilled.push_back(std::move(pre));
  }

  model::KVCache cache;
  if (direct) {
    cache = std::move(prefilled[0].cache);
  } else {
    std::vector<CachePart> parts;
    if (!live.empty()) {
      const int64_t shift_old = length - old_len;  // may be < 0: unused leading columns dropped
      torch::Tensor m = torch::ones({static_cast<int64_t>(live.size()), capacity}, long_opts);
      m.narrow(1, 0, length).copy_(shift_positions(mask_.index_select(0, live_idx).narrow(1, 0, old_len), 1, shift_old));
      masks.insert(masks.begin(), m);
      logits.insert(logits.begin(), logits_.index_select(0, live_idx));
      parts.push_back({&cache_, live_idx, shift_old});
    }
    for (PrefilledBatch& pre : prefilled) parts.push_back({&pre.cache, torch::Tensor(), length - pre.length});
    cache = rebuild_cache(model_, parts, capacity);
  }
  torch::Tensor mask = masks.size() == 1 ? masks[0] : torch::cat(masks, 0);
  torch::Tensor next_logits = logits.size() == 1 ? logits[0] : torch::cat(logits, 0);

  // ---- nothing has thrown: commit ---------------------------------------------------------------
  std::vector<Row> rows;
  for (int64_t r : live) rows.push_back(std::move(rows_[r]));
  rows_ = std::move(rows);
  cache_ = std::move(cache);
  mask_ = mask;
  logits_ = next_logits;
  padded_ = (mask_.narrow(1, 0, length) == 0).any().item<bool>();
  ++joins_;
  std::vector<Request*> added;
  std::vector<int64_t> ids;
  for (const NewRequest& q : requests) {
    auto request = std::make_unique<Request>();
    request->id = next_id_++;
    request->config = q.config;
    request->on_token = q.on_token;
    ids.push_back(request->id);
    added.push_back(request.get());
    requests_.push_back(std::move(request));
  }
  std::vector<int64_t> next_g(requests.size(), 0);
  for (size_t i : row_request) {
    const RowConfig& rc = added[i]->config;
    Row row;
    row.request = added[i];
    row.g = next_g[i]++;
    row.completion.generation_index = row.g;
    row.completion.ids.reserve(static_cast<size_t>(rc.max_new_tokens));
    // The stream generate() gives completion g of prompt p: first_stream = p * G.
    if (rc.sampling.do_sample) row.generator.push_back(make_generator(rc.seed, rc.first_stream + row.g));
    if (rc.sampling.repetition_penalty != 1.0) row.history = requests[i].prompt->input_ids;
    for (const std::string& s : rc.stop_strings) row.max_stop_bytes = std::max(row.max_stop_bytes, s.size());
    rows_.push_back(std::move(row));
  }
  live_ = static_cast<int64_t>(rows_.size());
  // Requests whose rows were all dropped (finished before this join) are done.
  requests_.erase(std::remove_if(requests_.begin(), requests_.end(),
                                 [&](const std::unique_ptr<Request>& q) {
                                   return std::none_of(rows_.begin(), rows_.end(),
                                                       [&](const Row& r) { return r.request == q.get(); });
                                 }),
                  requests_.end());
  return ids;
}

void DecodeBatch::keep_rows(const std::vector<int64_t>& keep) {
  if (static_cast<int64_t>(keep.size()) == static_cast<int64_t>(rows_.size())) return;
  std::vector<Row> kept;
  for (int64_t r : keep) kept.push_back(std::move(rows_[r]));
  rows_ = std::move(kept);
  live_ = static_cast<int64_t>(live_rows().size());
  // Requests with no row left are done.
  requests_.erase(std::remove_if(requests_.begin(), requests_.end(),
                                 [&](const std::unique_ptr<Request>& q) {
                                   return std::none_of(rows_.begin(), rows_.end(),
                                                       [&](const Row& r) { return r.request == q.get(); });
                                 }),
                  requests_.end());
  if (rows_.empty()) {
    cache_ = model::KVCache();
    mask_ = logits_ = torch::Tensor();
    padded_ = false;
    return;
  }
  const torch::Tensor idx = torch::tensor(keep, torch::kLong).to(mask_.device());
  // Leading columns no kept row uses go with them.
  const int64_t length = cache_.length();
  const torch::Tensor kept_mask = mask_.index_select(0, idx);
  const int64_t first = padded_ ? first_used_column(kept_mask, length) : 0;
  if (first > 0) {
    cache_ = rebuild_cache(model_, {{&cache_, idx, -first}}, cache_.capacity() - first);
    mask_ = kept_mask.narrow(1, first, kept_mask.size(1) - first).contiguous();
  } else {
    cache_.select_rows(idx);
    mask_ = kept_mask;
  }
  if (logits_.defined()) logits_ = logits_.index_select(0, idx);
  padded_ = (mask_.narrow(1, 0, cache_.length()) == 0).any().item<bool>();
}

void DecodeBatch::compact() {
  keep_rows(live_rows());
  ++compactions_;
}

void DecodeBatch::remove(int64_t id) {
  bool any = false;
  for (Row& r : rows_)
    if (r.request->id == id && !r.done) r.done = true, any = true;
  if (any) compact();  // a cancelled request's rows (and its long prompt's columns) go now
}

void DecodeBatch::step() {
  if (live_ == 0) return;
  torch::NoGradGuard no_grad;
  const int64_t n = static_cast<int64_t>(rows_.size());
  const torch::Tensor logits = logits_.to(torch::kFloat);  // [rows, V]
  logits_ = torch::Tensor();

  // ---- sample: each live row with its own settings -------------------------------------------------
  // Greedy rows without a penalty (the common serving case) take one batched argmax.
  const torch::Tensor argmax = logits.argmax(-1).to(torch::kCPU).contiguous();
  const torch::Tensor lse = logits.logsumexp(-1).to(torch::kCPU).contiguous();
  const torch::Tensor chosen = logits.gather(1, argmax.to(logits.device()).view({-1, 1})).to(torch::kCPU).contiguous();
  std::vector<int64_t> next(n);
  std::vector<float> logprob(n);
  bool any_top = false;
  for (int64_t r = 0; r < n; ++r) {
    Row& row = rows_[r];
    next[r] = row.completion.ids.empty() ? 0 : row.completion.ids.back();  // dead rows: fed, ignored
    if (row.done) continue;
    const RowConfig& rc = row.request->config;
    const SamplingConfig& sc = rc.sampling;
    any_top = any_top || rc.top_logprobs >= 0;
    if (!sc.do_sample && sc.repetition_penalty == 1.0) {
      next[r] = argmax.data_ptr<int64_t>()[r];
      logprob[r] = chosen.data_ptr<float>()[r] - lse.data_ptr<float>()[r];
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
    for (const Row& row : rows_)
      if (!row.done) k = std::max(k, row.request->config.top_logprobs);
    raw = raw_logprobs(logits, torch::tensor(next, torch::kLong), k);
  }

  // ---- append, finish, call back ---------------------------------------------------------------------
  for (int64_t r = 0; r < n; ++r) {
    Row& row = rows_[r];
    if (row.done) continue;
    const RowConfig& rc = row.request->config;
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
    if (done) row.done = true, --live_;
    if (row.request->on_token) row.request->on_token(row.g, c, done);
  }
  if (live_ == 0) {
    keep_rows({});
    return;
  }
  // Dead rows stay (fed their last token, output ignored) until they are numerous enough that
  // dropping them beats the cost of copying the cache, or until the next join drops them.
  const int64_t dead = n - live_;
  if (dead > 0 && static_cast<double>(dead) >= compact_fraction * static_cast<double>(n)) {
    std::vector<int64_t> ids;
    for (int64_t r : live_rows()) ids.push_back(next[r]);
    compact();
    next = std::move(ids);
  }

  // ---- one forward for every remaining row ---------------------------------------------------------
  const int64_t length = cache_.length();
  const torch::Tensor mask = padded_ ? mask_.narrow(1, 0, length + 1) : torch::Tensor();
  logits_ = model_.forward_decode(torch::tensor(next, torch::kLong).view({-1, 1}).to(model_.device()), mask,
                                  cache_.rope_deltas(), cache_);
  ++decode_steps_;
}

std::vector<std::vector<Completion>> decode_all(model::Qwen2_5_VLImpl& model, size_t count,
                                                const std::function<DecodeRequest(size_t)>& make, int64_t max_num_seqs,
                                                std::function<std::string(const std::vector<int64_t>&)> decode,
                                                int64_t join_rows) {
  REFRACT_CHECK(max_num_seqs >= 1) << "max_num_seqs must be >= 1, got " << max_num_seqs;
  REFRACT_CHECK(join_rows >= 0) << "join_rows must be >= 0, got " << join_rows;
  if (join_rows == 0) join_rows = std::max<int64_t>(1, max_num_seqs / 4);
  std::vector<std::vector<Completion>> out(count);
  DecodeBatch batch(model, std::move(decode));
  auto keep_result = [&out](size_t r) {
    return [&out, r](int64_t g, const Completion& c, bool finished) {
      if (!finished) return;
      Completion& o = out[r][static_cast<size_t>(g)];
      o = c;
      o.prompt_index = static_cast<int64_t>(r);
    };
  };
  std::optional<DecodeRequest> waiting;  // made, not yet admitted: request `next`
  size_t next = 0;
  while (next < count || !batch.empty()) {
    if (next < count) {
      if (!waiting) waiting = make(next);
      // Rows the requests left want (assuming they ask as many as the next one).
      const int64_t wanted = static_cast<int64_t>(count - next) * waiting->num_generations;
      if (batch.empty() || max_num_seqs - batch.rows() >= std::min(join_rows, wanted)) {
        std::vector<DecodeRequest> group;  // holds the prompts until add() has prefilled them
        const size_t first = next;
        int64_t rows = batch.rows();
        while (waiting && (rows == 0 || rows + waiting->num_generations <= max_num_seqs)) {
          rows += waiting->num_generations;
          group.push_back(std::move(*waiting));
          waiting.reset();
          if (++next < count) waiting = make(next);
        }
        std::vector<DecodeBatch::NewRequest> joining;
        for (size_t i = 0; i < group.size(); ++i) {
          out[first + i].resize(static_cast<size_t>(group[i].num_generations));
          joining.push_back({&group[i].prompt, group[i].config, group[i].num_generations, keep_result(first + i)});
        }
        batch.add(joining);
      }
    }
    batch.step();
  }
  return out;
}

}  // namespace refract::generate
