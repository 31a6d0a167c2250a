#include "model/vision_model.h"

#include <cmath>

#include "common/check.h"
#include "model/attention.h"
#include "model/recompute.h"
#include "model/vision_qwen2_5_vl.h"
#include "model/vision_qwen2_vl.h"

namespace refract::model {

namespace F = torch::nn::functional;

PatchEmbedProjImpl::PatchEmbedProjImpl(const Qwen2_5_VLVisionConfig& c) {
  weight = register_parameter(
      "weight", torch::randn({c.hidden_size, c.in_channels, c.temporal_patch_size, c.patch_size, c.patch_size}) /
                    std::sqrt(static_cast<double>(c.patch_dim())));
}

PatchEmbedImpl::PatchEmbedImpl(const Qwen2_5_VLVisionConfig& c) {
  proj = register_module("proj", PatchEmbedProj(c));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& pixel_values) {
  const auto& w = proj->weight;  // [D, C, tp, p, p]
  const int64_t d = w.size(0);
  const int64_t k = w.numel() / d;
  REFRACT_CHECK(pixel_values.dim() == 2 && pixel_values.size(1) == k)
      << "pixel_values must be [N, " << k << "] (C*temporal_patch*patch*patch), got " << pixel_values.sizes();
  // ref: Qwen2_5_VisionPatchEmbed / PatchEmbed: Conv3d with kernel == stride over a row viewed
  // as (C, tp, p, p) is exactly x W^T; the input is cast to the weight dtype first.
  return torch::matmul(pixel_values.to(w.scalar_type()), w.reshape({d, k}).t());
}

VisionAttentionImpl::VisionAttentionImpl(const Qwen2_5_VLVisionConfig& c)
    : num_heads(c.num_heads), head_dim(c.head_dim()) {
  qkv = register_module("qkv", Linear(c.hidden_size, 3 * c.hidden_size, true));
  proj = register_module("proj", Linear(c.hidden_size, c.hidden_size, true));
}

namespace {
// q' = q cos + rotate_half(q) sin, computed in fp32 and cast back.
// ref: apply_rotary_pos_emb_vision (both families cast q, k to float, then back)
torch::Tensor apply_rope_f32(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  auto xf = x.to(torch::kFloat32);
  return (xf * cos + rotate_half(xf) * sin).to(x.scalar_type());
}
}  // namespace

torch::Tensor VisionAttentionImpl::forward(const torch::Tensor& x, const std::vector<int64_t>& cu,
                                           const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t n = x.size(0);
  // [N, 3D] laid out [q | k | v], each head-major: -> 3 x [N, heads, hd]
  auto qkv_out = qkv->forward(x).reshape({n, 3, num_heads, head_dim}).permute({1, 0, 2, 3});
  auto cs = cos.unsqueeze(1), sn = sin.unsqueeze(1);  // [N, 1, hd]
  auto q = apply_rope_f32(qkv_out[0], cs, sn);
  auto k = apply_rope_f32(qkv_out[1], cs, sn);
  auto v = qkv_out[2];
  std::vector<torch::Tensor> outs;
  // Segments are contiguous; consecutive segments of equal length (most windows) are batched
  // as [n_seg, heads, len, hd] so no N x N mask is ever built.
  size_t i = 0;
  while (i + 1 < cu.size()) {
    const int64_t len = cu[i + 1] - cu[i];
    size_t j = i + 1;
    while (j + 1 < cu.size() && cu[j + 1] - cu[j] == len) ++j;
    const int64_t nseg = static_cast<int64_t>(j - i);
    const int64_t start = cu[i];
    auto view = [&](const torch::Tensor& t) {  // [nseg*len, heads, hd] -> [nseg, heads, len, hd]
      return t.narrow(0, start, nseg * len).reshape({nseg, len, num_heads, head_dim}).transpose(1, 2);
    };
    auto qs = view(q), ks = view(k), vs = view(v);
    auto o = attention(qs, ks, vs, torch::Tensor()).transpose(1, 2).reshape({nseg * len, num_heads * head_dim});
    outs.push_back(o);
    i = j;
  }
  REFRACT_CHECK(cu.back() == n) << "vision attention: segments cover " << cu.back() << " of " << n << " patches";
  auto out = outs.size() == 1 ? outs[0] : torch::cat(outs, 0);
  return proj->forward(out);
}

MergerMlpImpl::MergerMlpImpl(int64_t in, int64_t out) {
  fc0 = register_module("0", Linear(in, in, true));
  fc2 = register_module("2", Linear(in, out, true));
}

torch::Tensor MergerMlpImpl::forward(const torch::Tensor& x) {
  // ref: PatchMerger (both families): nn.GELU() default = exact (erf) GELU
  return fc2->forward(F::gelu(fc0->forward(x)));
}

VisionTowerImpl::VisionTowerImpl(const Qwen2_5_VLVisionConfig& c) : config(c) {
  patch_embed = register_module("patch_embed", PatchEmbed(c));
}

torch::Tensor VisionTowerImpl::run_block(torch::nn::Module& block, const BlockFn& fn, const torch::Tensor& x) {
  return gradient_checkpointing ? checkpointed(block, fn, x) : fn(x);
}

std::vector<GridTHW> VisionTowerImpl::read_grid(const torch::Tensor& grid_thw, int64_t num_rows) const {
  REFRACT_CHECK(grid_thw.defined() && grid_thw.dim() == 2 && grid_thw.size(1) == 3)
      << "image_grid_thw must be [num_images, 3]";
  auto g_cpu = grid_thw.to(torch::kCPU).to(torch::kLong).contiguous();
  const int64_t merge = config.spatial_merge_size;
  std::vector<GridTHW> grid;
  int64_t total = 0;
  for (int64_t i = 0; i < g_cpu.size(0); ++i) {
    auto p = g_cpu.data_ptr<int64_t>() + 3 * i;
    REFRACT_CHECK(p[0] > 0 && p[1] > 0 && p[2] > 0 && p[1] % merge == 0 && p[2] % merge == 0)
        << "image_grid_thw row (" << p[0] << ", " << p[1] << ", " << p[2]
        << ") must be positive with h and w multiples of spatial_merge_size " << merge;
    grid.push_back({p[0], p[1], p[2]});
    total += p[0] * p[1] * p[2];
  }
  REFRACT_CHECK(total == num_rows) << "pixel_values has " << num_rows << " rows but image_grid_thw sums to " << total;
  return grid;
}

torch::Tensor VisionTowerImpl::rot_pos_emb(const std::vector<GridTHW>& grid) const {
  const int64_t m = config.spatial_merge_size;
  const int64_t rot_dim = config.head_dim() / 2;  // the rotary module is built with head_dim/2
  std::vector<int64_t> hpos, wpos;
  for (const auto& g : grid) {
    const int64_t t = g[0], h = g[1], w = g[2];
    for (int64_t f = 0; f < t; ++f)
      for (int64_t mr = 0; mr < h / m; ++mr)
        for (int64_t mc = 0; mc < w / m; ++mc)
          for (int64_t dy = 0; dy < m; ++dy)
            for (int64_t dx = 0; dx < m; ++dx) {
              hpos.push_back(mr * m + dy);
              wpos.push_back(mc * m + dx);
            }
  }
  const int64_t n = static_cast<int64_t>(hpos.size());
  // ref: VisionRotaryEmbedding(dim = head_dim / 2, theta = 10000)
  auto inv_freq = 1.0 / torch::pow(10000.0, torch::arange(0, rot_dim, 2, torch::kFloat32) / static_cast<double>(rot_dim));
  auto hp = torch::from_blob(hpos.data(), {n}, torch::kInt64).to(torch::kFloat32);
  auto wp = torch::from_blob(wpos.data(), {n}, torch::kInt64).to(torch::kFloat32);
  // ref: VisionRotaryEmbedding: freqs = outer(seq, inv_freq) in fp32 (a table indexed by position)
  return torch::cat({torch::outer(hp, inv_freq), torch::outer(wp, inv_freq)}, 1);  // [N, rot_dim]
}

std::shared_ptr<VisionTowerImpl> make_vision_tower(const Qwen2_5_VLConfig& c) {
  if (c.model_type == kModelTypeQwen2VL) return std::make_shared<Qwen2VisionTransformerImpl>(c.vision_config);
  REFRACT_CHECK(c.model_type == kModelTypeQwen2_5_VL)
      << "model_type '" << c.model_type << "' is not supported (supported: " << supported_model_types() << ")";
  return std::make_shared<Qwen2_5_VisionTransformerImpl>(c.vision_config);
}

}  // namespace refract::model
