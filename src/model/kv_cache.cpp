#include "model/kv_cache.h"

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

std::pair<torch::Tensor, torch::Tensor> KVCache::update(int64_t layer, const torch::Tensor& k,
                                                        const torch::Tensor& v) {
  REFRACT_CHECK(layer >= 0 && layer < num_layers()) << "KVCache: layer " << layer << " out of range";
  const int64_t s = k.size(2);
  REFRACT_CHECK(k.size(0) == batch_size_)
      << "KVCache: batch " << k.size(0) << " does not match the cache's " << batch_size_;
  REFRACT_CHECK(length_ + s <= capacity_)
      << "KVCache: " << length_ << " + " << s << " positions exceed the capacity " << capacity_
      << " (allocate prompt length + max_new_tokens)";
  torch::NoGradGuard no_grad;  // the cache is an inference structure
  keys_[layer].narrow(2, length_, s).copy_(k);
  values_[layer].narrow(2, length_, s).copy_(v);
  return {keys_[layer].narrow(2, 0, length_ + s), values_[layer].narrow(2, 0, length_ + s)};
}

void KVCache::advance(int64_t s) {
  REFRACT_CHECK(length_ + s <= capacity_) << "KVCache: advance beyond capacity";
  length_ += s;
}

void KVCache::select_rows(const torch::Tensor& index) {
  torch::NoGradGuard no_grad;
  auto idx = index.to(torch::kLong);
  if (!keys_.empty()) idx = idx.to(keys_[0].device());
  for (auto& k : keys_) k = k.index_select(0, idx);
  for (auto& v : values_) v = v.index_select(0, idx);
  if (rope_deltas_.defined()) rope_deltas_ = rope_deltas_.index_select(0, idx.to(rope_deltas_.device()));
  batch_size_ = idx.size(0);
}

void KVCache::repeat_rows(int64_t g) {
  REFRACT_CHECK(g >= 1) << "KVCache::repeat_rows: g must be >= 1, got " << g;
  if (g == 1) return;
  torch::NoGradGuard no_grad;
  for (auto& k : keys_) k = k.repeat_interleave(g, 0);
  for (auto& v : values_) v = v.repeat_interleave(g, 0);
  if (rope_deltas_.defined()) rope_deltas_ = rope_deltas_.repeat_interleave(g, 0);
  batch_size_ *= g;
}

}  // namespace refract::model
