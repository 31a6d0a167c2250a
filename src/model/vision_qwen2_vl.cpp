#include "model/vision_qwen2_vl.h"

#include "common/check.h"

namespace refract::model {

namespace {
// ref: nn.LayerNorm(dim, eps=1e-6) in Qwen2VLVisionBlock and PatchMerger
torch::nn::LayerNorm layer_norm(int64_t dim) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-6));
}
}  // namespace

Qwen2VLVisionMlpImpl::Qwen2VLVisionMlpImpl(const Qwen2_5_VLVisionConfig& c) : hidden_act(c.hidden_act) {
  fc1 = register_module("fc1", Linear(c.hidden_size, c.intermediate_size, true));
  fc2 = register_module("fc2", Linear(c.intermediate_size, c.hidden_size, true));
}

torch::Tensor Qwen2VLVisionMlpImpl::forward(const torch::Tensor& x) {
  return fc2->forward(activation(hidden_act, fc1->forward(x)));
}

Qwen2VLVisionBlockImpl::Qwen2VLVisionBlockImpl(const Qwen2_5_VLVisionConfig& c) {
  norm1 = register_module("norm1", layer_norm(c.hidden_size));
  norm2 = register_module("norm2", layer_norm(c.hidden_size));
  attn = register_module("attn", VisionAttention(c));
  mlp = register_module("mlp", Qwen2VLVisionMlp(c));
}

torch::Tensor Qwen2VLVisionBlockImpl::forward(const torch::Tensor& x, const std::vector<int64_t>& cu,
                                              const torch::Tensor& cos, const torch::Tensor& sin) {
  auto h = x + attn->forward(norm1->forward(x), cu, cos, sin);
  return h + mlp->forward(norm2->forward(h));
}

Qwen2VLPatchMergerImpl::Qwen2VLPatchMergerImpl(const Qwen2_5_VLVisionConfig& c) {
  const int64_t unit = c.spatial_merge_size * c.spatial_merge_size;
  ln_q = register_module("ln_q", layer_norm(c.hidden_size));
  mlp = register_module("mlp", MergerMlp(c.hidden_size * unit, c.out_hidden_size));
}

torch::Tensor Qwen2VLPatchMergerImpl::forward(const torch::Tensor& x) {
  const int64_t in = mlp->fc0->in_features;
  // [N, D] -> [N/4, 4D]: the 4 consecutive patches of a merged unit, (dy, dx) row-major.
  return mlp->forward(ln_q->forward(x).reshape({-1, in}));
}

Qwen2VisionTransformerImpl::Qwen2VisionTransformerImpl(const Qwen2_5_VLVisionConfig& c) : VisionTowerImpl(c) {
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.depth; ++i) blocks->push_back(Qwen2VLVisionBlock(c));
  merger = register_module("merger", Qwen2VLPatchMerger(c));
}

torch::Tensor Qwen2VisionTransformerImpl::forward(const torch::Tensor& pixel_values, const torch::Tensor& grid_thw) {
  const std::vector<GridTHW> grid = read_grid(grid_thw, pixel_values.size(0));
  // ref: cu_seqlens = cumsum(repeat_interleave(h * w, t)): full attention within each frame
  std::vector<int64_t> cu_seqlens = {0};
  for (const auto& g : grid)
    for (int64_t f = 0; f < g[0]; ++f) cu_seqlens.push_back(cu_seqlens.back() + g[1] * g[2]);

  auto x = patch_embed->forward(pixel_values);  // [N, D], already in raster merged order
  auto angles = rot_pos_emb(grid).to(pixel_values.device());  // [N, hd/2] fp32
  auto emb = torch::cat({angles, angles}, -1);                 // [N, hd]
  auto cos = emb.cos(), sin = emb.sin();
  for (int64_t i = 0; i < config.depth; ++i) {
    auto* block = blocks[i]->as<Qwen2VLVisionBlockImpl>();
    // By value: with gradient checkpointing backward calls it after this function returned.
    x = run_block(*block, [block, cu_seqlens, cos, sin](const torch::Tensor& in) {
      return block->forward(in, cu_seqlens, cos, sin);
    }, x);
  }
  return merger->forward(x);  // [N/4, out_hidden]
}

}  // namespace refract::model
