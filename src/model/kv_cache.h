// Key/value cache for the Qwen2 decoder: per layer K and V [B, kv_heads, capacity, head_dim]
// allocated once per batch (capacity = prompt + max_new_tokens); K is stored after RoPE.
// ref: transformers DynamicCache (same contents; preallocated here to avoid a cat per step).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "model/config.h"

namespace refract::model {

class KVCache {
 public:
  KVCache() = default;
  // Allocates num_hidden_layers x 2 tensors [batch, kv_heads, capacity, head_dim].
  KVCache(const Qwen2_5_VLConfig& config, int64_t batch_size, int64_t capacity,
          torch::Device device, torch::ScalarType dtype);
  // A cache that keeps autograd history (training): K/V are the layers' own tensors, grown by
  // cat instead of written into preallocated storage, so gradients of later positions flow
  // back into the positions they attend to (GRPO: one prompt forward shared by G completions).
  static KVCache differentiable(const Qwen2_5_VLConfig& config, int64_t batch_size);
  bool is_differentiable() const { return differentiable_; }

  // ---- state -------------------------------------------------------------------------------
  int64_t length() const { return length_; }      // positions filled (incl. left padding)
  int64_t capacity() const { return capacity_; }
  int64_t batch_size() const { return batch_size_; }
  int64_t num_layers() const { return static_cast<int64_t>(keys_.size()); }
  bool empty() const { return length_ == 0; }
  // rope_deltas [B, 1] int64 recorded by the prefill forward (decode positions =
  // cache position + rope_delta). Undefined before the prefill.
  const torch::Tensor& rope_deltas() const { return rope_deltas_; }
  void set_rope_deltas(torch::Tensor d) { rope_deltas_ = std::move(d); }

  // ---- batch surgery (GRPO: one prefill shared by G samples) --------------------------------
  // Keeps / reorders rows: row i of the result is old row index[i] (index: int64 [B'] ).
  void select_rows(const torch::Tensor& index);
  // Each row repeated g times consecutively (repeat_interleave): [B] -> [B*g]. The new
  // tensors keep the same capacity.
  void repeat_rows(int64_t g);
  // Forget everything (keeps the allocation).
  void reset() { length_ = 0; rope_deltas_ = torch::Tensor(); }

  // ---- model API (used by the decoder layers) -----------------------------------------------
  // Writes k, v [B, kv_heads, S, head_dim] at positions [length, length + S) of `layer` and
  // returns views of positions [0, length + S). Call advance(S) after the last layer.
  std::pair<torch::Tensor, torch::Tensor> update(int64_t layer, const torch::Tensor& k,
                                                 const torch::Tensor& v);
  void advance(int64_t s);

 private:
  std::vector<torch::Tensor> keys_, values_;
  torch::Tensor rope_deltas_;
  int64_t batch_size_ = 0;
  int64_t capacity_ = 0;
  int64_t length_ = 0;
  bool differentiable_ = false;
};

}  // namespace refract::model
