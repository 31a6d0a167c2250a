#include "model/vision_qwen2_5_vl.h"

#include "common/check.h"

namespace refract::model {

Qwen2_5_VLMLPImpl::Qwen2_5_VLMLPImpl(int64_t hidden, int64_t inter, bool bias) {
  gate_proj = register_module("gate_proj", Linear(hidden, inter, bias));
  up_proj = register_module("up_proj", Linear(hidden, inter, bias));
  down_proj = register_module("down_proj", Linear(inter, hidden, bias));
}

torch::Tensor Qwen2_5_VLMLPImpl::forward(const torch::Tensor& x) {
  return down_proj->forward(torch::silu(gate_proj->forward(x)) * up_proj->forward(x));
}

Qwen2_5_VLVisionBlockImpl::Qwen2_5_VLVisionBlockImpl(const Qwen2_5_VLVisionConfig& c) {
  norm1 = register_module("norm1", RMSNorm(c.hidden_size, 1e-6));
  norm2 = register_module("norm2", RMSNorm(c.hidden_size, 1e-6));
  attn = register_module("attn", VisionAttention(c));
  mlp = register_module("mlp", Qwen2_5_VLMLP(c.hidden_size, c.intermediate_size, /*bias=*/true));
}

torch::Tensor Qwen2_5_VLVisionBlockImpl::forward(const torch::Tensor& x, const std::vector<int64_t>& cu,
                                                 const torch::Tensor& cos, const torch::Tensor& sin) {
  auto h = x + attn->forward(norm1->forward(x), cu, cos, sin);
  return h + mlp->forward(norm2->forward(h));
}

Qwen2_5_VLPatchMergerImpl::Qwen2_5_VLPatchMergerImpl(const Qwen2_5_VLVisionConfig& c) {
  const int64_t unit = c.spatial_merge_size * c.spatial_merge_size;
  ln_q = register_module("ln_q", RMSNorm(c.hidden_size, 1e-6));
  mlp = register_module("mlp", MergerMlp(c.hidden_size * unit, c.out_hidden_size));
}

torch::Tensor Qwen2_5_VLPatchMergerImpl::forward(const torch::Tensor& x) {
  const int64_t in = mlp->fc0->in_features;
  // [N, D] -> [N/4, 4D]: the 4 consecutive patches of a merged unit, (dy, dx) row-major.
  return mlp->forward(ln_q->forward(x).reshape({-1, in}));
}

Qwen2_5_VisionTransformerImpl::Qwen2_5_VisionTransformerImpl(const Qwen2_5_VLVisionConfig& c) : VisionTowerImpl(c) {
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.depth; ++i) blocks->push_back(Qwen2_5_VLVisionBlock(c));
  merger = register_module("merger", Qwen2_5_VLPatchMerger(c));
}

torch::Tensor Qwen2_5_VisionTransformerImpl::forward(const torch::Tensor& pixel_values, const torch::Tensor& grid_thw) {
  const std::vector<GridTHW> grid = read_grid(grid_thw, pixel_values.size(0));
  const auto dev = pixel_values.device();
  const int64_t unit = config.spatial_merge_size * config.spatial_merge_size;
  const VisionWindows win = get_window_index(grid, config);

  auto x = patch_embed->forward(pixel_values);  // [N, D]
  const int64_t n = x.size(0), d = x.size(1);
  auto angles = rot_pos_emb(grid).to(dev);        // [N, hd/2] fp32
  auto widx = torch::tensor(win.window_index, torch::kLong).to(dev);
  // Reorder merged units (groups of `unit` patch rows) into window order.
  x = x.reshape({n / unit, unit, d}).index_select(0, widx).reshape({n, d});
  angles = angles.reshape({n / unit, unit, -1}).index_select(0, widx).reshape({n, -1});
  auto emb = torch::cat({angles, angles}, -1);  // [N, hd]
  auto cos = emb.cos(), sin = emb.sin();

  for (int64_t i = 0; i < config.depth; ++i) {
    bool full = false;
    for (int64_t b : config.fullatt_block_indexes) full = full || (b == i);
    auto* block = blocks[i]->as<Qwen2_5_VLVisionBlockImpl>();
    const auto& cu = full ? win.cu_seqlens : win.cu_window_seqlens;
    // By value: with gradient checkpointing backward calls it after this function returned.
    x = run_block(*block, [block, cu, cos, sin](const torch::Tensor& in) { return block->forward(in, cu, cos, sin); }, x);
  }
  auto y = merger->forward(x);  // [N/4, out] in window order
  // Back to raster order: slot k holds unit window_index[k].
  auto reverse = torch::argsort(widx);
  return y.index_select(0, reverse);
}

}  // namespace refract::model
