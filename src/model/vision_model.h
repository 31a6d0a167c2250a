// The vision tower's parts shared by every family ("visual.*"): patch embedding, the 2-D
// rotary angles, the attention (full or over segments: the one place the vision attention
// maths lives), the merger MLP, and the tower interface. Each family's blocks, merger norm and
// layer loop are in vision_<family>.{h,cpp}: vision_qwen2_5_vl (windows), vision_qwen2_vl.
// ref: modeling_qwen2_5_vl.py@4.50 / modeling_qwen2_vl.py@4.50 (*VisionTransformerPretrainedModel)
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "model/config.h"
#include "model/layers.h"
#include "model/recompute.h"
#include "model/vision_windows.h"

namespace refract::model {

// Conv3d(C -> D, kernel = stride = (tp, p, p), no bias) applied as one matmul: each
// pixel_values row is exactly one kernel footprint. weight [D, C, tp, p, p] ("proj.weight").
class PatchEmbedProjImpl : public torch::nn::Module {
 public:
  PatchEmbedProjImpl(const Qwen2_5_VLVisionConfig& c);
  torch::Tensor weight;
};
TORCH_MODULE(PatchEmbedProj);

class PatchEmbedImpl : public torch::nn::Module {
 public:
  explicit PatchEmbedImpl(const Qwen2_5_VLVisionConfig& c);
  torch::Tensor forward(const torch::Tensor& pixel_values);  // [N, 1176] -> [N, D]
  PatchEmbedProj proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

// Multi-head self-attention over patches with 2-D RoPE; attention never crosses a segment
// boundary (cu_seqlens: one segment per frame = full attention, or one per window).
class VisionAttentionImpl : public torch::nn::Module {
 public:
  explicit VisionAttentionImpl(const Qwen2_5_VLVisionConfig& c);
  // x [N, D]; cu_seqlens: segment boundaries (attention never crosses them); cos/sin [N, hd].
  torch::Tensor forward(const torch::Tensor& x, const std::vector<int64_t>& cu_seqlens,
                        const torch::Tensor& cos, const torch::Tensor& sin);
  int64_t num_heads, head_dim;
  Linear qkv{nullptr}, proj{nullptr};
};
TORCH_MODULE(VisionAttention);

// "0" Linear(4D -> 4D), GELU (erf), "2" Linear(4D -> out_hidden): nn.Sequential's names.
class MergerMlpImpl : public torch::nn::Module {
 public:
  MergerMlpImpl(int64_t in, int64_t out);
  torch::Tensor forward(const torch::Tensor& x);
  Linear fc0{nullptr}, fc2{nullptr};  // registered as "0" and "2"
};
TORCH_MODULE(MergerMlp);

// The tower of one family: pixel_values [N, C*tp*p*p], grid_thw [I, 3] -> [N/4, out_hidden] in
// raster merged order (per image, t-major, then merged rows, then merged columns).
// Registered as "visual"; the base registers "patch_embed" first (HF's order).
class VisionTowerImpl : public torch::nn::Module {
 public:
  explicit VisionTowerImpl(const Qwen2_5_VLVisionConfig& c);
  virtual ~VisionTowerImpl() = default;
  virtual torch::Tensor forward(const torch::Tensor& pixel_values, const torch::Tensor& grid_thw) = 0;
  // The patch merger ("visual.merger": the aligner that freeze_aligner freezes).
  virtual torch::nn::Module& merger_module() = 0;

  // rot_pos_emb: angles [N, head_dim/2] in processor row order (fp32).
  torch::Tensor rot_pos_emb(const std::vector<GridTHW>& grid) const;
  // grid_thw [I, 3] -> rows, checked against the number of pixel_values rows.
  std::vector<GridTHW> read_grid(const torch::Tensor& grid_thw, int64_t num_rows) const;
  // One block of the family's layer loop: fn(x), recomputed in backward when
  // gradient_checkpointing (model/recompute.h; fn captures by value).
  torch::Tensor run_block(torch::nn::Module& block, const BlockFn& fn, const torch::Tensor& x);

  Qwen2_5_VLVisionConfig config;
  PatchEmbed patch_embed{nullptr};
  bool gradient_checkpointing = false;  // recompute each block in backward (model/recompute.h)
};

// The family's tower (config.model_type), with every parameter registered.
std::shared_ptr<VisionTowerImpl> make_vision_tower(const Qwen2_5_VLConfig& config);

}  // namespace refract::model
