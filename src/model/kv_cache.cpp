#include "model/kv_cache.h"

#include <limits>
#include <optional>

#include "common/check.h"

namespace refract::model {

KVCache::KVCache(const Qwen2_5_VLConfig& c, int64_t batch_size, int64_t capacity, torch::Device device,
                 torch::ScalarType dtype)
    : batch_size_(batch_size), capacity_(capacity) {
  REFRACT_CHECK(batch_size > 0 && capacity > 0)
      << "KVCache needs a positive batch size and capacity (got " << batch_size << ", " << capacity << ")";
  auto opts = torch::TensorOptions().device(device).dtype(dtype);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    keys_.push_back(torch::zeros({batch_size, c.num_key_value_heads, capacity, c.head_dim()}, opts));
    values_.push_back(torch::zeros({batch_size, c.num_key_value_heads, capacity, c.head_dim()}, opts));
  }
}

KVCache KVCache::differentiable(const Qwen2_5_VLConfig& c, int64_t batch_size) {
  REFRACT_CHECK(batch_size > 0) << "KVCache needs a positive batch size (got " << batch_size << ")";
  KVCache cache;
  cache.differentiable_ = true;
  cache.batch_size_ = batch_size;
  cache.capacity_ = std::numeric_limits<int64_t>::max();
  cache.keys_.resize(c.num_hidden_layers);
  cache.values_.resize(c.num_hidden_layers);
  return cache;
}

std::pair<torch::Tensor, torch::Tensor> KVCache::update(int64_t layer, const torch::Tensor& k,
                                                        const torch::Tensor& v) {
  REFRACT_CHECK(layer >= 0 && layer < num_layers()) << "KVCache: layer " << layer << " out of range";
  const int64_t s = k.size(2);
  REFRACT_CHECK(k.size(0) == batch_size_)
      << "KVCache: batch " << k.size(0) << " does not match the cache's " << batch_size_;
  REFRACT_CHECK(length_ + s <= capacity_)
      << "KVCache: " << length_ << " + " << s << " positions exceed the capacity " << capacity_
      << " (allocate prompt length + max_new_tokens)";
  if (differentiable_) {
    keys_[layer] = length_ == 0 ? k : torch::cat({keys_[layer], k}, 2);
    values_[layer] = length_ == 0 ? v : torch::cat({values_[layer], v}, 2);
    return {keys_[layer], values_[layer]};
  }
  torch::NoGradGuard no_grad;  // the inference cache: storage written in place
  keys_[layer].narrow(2, length_, s).copy_(k);
  values_[layer].narrow(2, length_, s).copy_(v);
  return {keys_[layer].narrow(2, 0, length_ + s), values_[layer].narrow(2, 0, length_ + s)};
}

void KVCache::advance(int64_t s) {
  REFRACT_CHECK(length_ + s <= capacity_) << "KVCache: advance beyond capacity";
  length_ += s;
}

void KVCache::select_rows(const torch::Tensor& index) {
  std::optional<torch::NoGradGuard> no_grad;
  if (!differentiable_) no_grad.emplace();
  auto idx = index.to(torch::kLong);
  if (!keys_.empty() && keys_[0].defined()) idx = idx.to(keys_[0].device());
  for (auto& k : keys_)
    if (k.defined()) k = k.index_select(0, idx);
  for (auto& v : values_)
    if (v.defined()) v = v.index_select(0, idx);
  if (rope_deltas_.defined()) rope_deltas_ = rope_deltas_.index_select(0, idx.to(rope_deltas_.device()));
  batch_size_ = idx.size(0);
}

void KVCache::repeat_rows(int64_t g) {
  REFRACT_CHECK(g >= 1) << "KVCache::repeat_rows: g must be >= 1, got " << g;
  if (g == 1) return;
  std::optional<torch::NoGradGuard> no_grad;
  if (!differentiable_) no_grad.emplace();
  for (auto& k : keys_)
    if (k.defined()) k = k.repeat_interleave(g, 0);
  for (auto& v : values_)
    if (v.defined()) v = v.repeat_interleave(g, 0);
  if (rope_deltas_.defined()) rope_deltas_ = rope_deltas_.repeat_interleave(g, 0);
  batch_size_ *= g;
}

}  // namespace refract::model
