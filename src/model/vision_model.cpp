#include "model/vision_model.h"

#include <cmath>

#include "common/check.h"
#include "model/attention.h"
#include "model/recompute.h"

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
  // ref: Qwen2_5_VisionPatchEmbed: Conv3d with kernel == stride over a row viewed as
  // (C, tp, p, p) is exactly x W^T; the input is cast to the weight dtype first.
  return torch::matmul(pixel_values.to(w.scalar_type()), w.reshape({d, k}).t());
}

VisionAttentionImpl::VisionAttentionImpl(const Qwen2_5_VLVisionConfig& c)
    : num_heads(c.num_heads), head_dim(c.head_dim()) {
  qkv = register_module("qkv", Linear(c.hidden_size, 3 * c.hidden_size, true));
  proj = register_module("proj", Linear(c.hidden_size, c.hidden_size, true));
}

namespace {
// q' = q cos + rotate_half(q) sin, computed in fp32 and cast back.
// ref: apply_rotary_pos_emb_vision (casts q, k to float, then back to the original dtype)
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

VisionMlpImpl::VisionMlpImpl(int64_t hidden, int64_t inter, bool bias) {
  gate_proj = register_module("gate_proj", Linear(hidden, inter, bias));
  up_proj = register_module("up_proj", Linear(hidden, inter, bias));
  down_proj = register_module("down_proj", Linear(inter, hidden, bias));
}

torch::Tensor VisionMlpImpl::forward(const torch::Tensor& x) {
  return down_proj->forward(torch::silu(gate_proj->forward(x)) * up_proj->forward(x));
}

VisionBlockImpl::VisionBlockImpl(const Qwen2_5_VLVisionConfig& c) {
  norm1 = register_module("norm1", RMSNorm(c.hidden_size, 1e-6));
  norm2 = register_module("norm2", RMSNorm(c.hidden_size, 1e-6));
  attn = register_module("attn", VisionAttention(c));
  mlp = register_module("mlp", VisionMlp(c.hidden_size, c.intermediate_size, /*bias=*/true));
}

torch::Tensor VisionBlockImpl::forward(const torch::Tensor& x, const std::vector<int64_t>& cu,
                                       const torch::Tensor& cos, const torch::Tensor& sin) {
  auto h = x + attn->forward(norm1->forward(x), cu, cos, sin);
  return h + mlp->forward(norm2->forward(h));
}

MergerMlpImpl::MergerMlpImpl(int64_t in, int64_t out) {
  fc0 = register_module("0", Linear(in, in, true));
  fc2 = register_module("2", Linear(in, out, true));
}

torch::Tensor MergerMlpImpl::forward(const torch::Tensor& x) {
  // ref: Qwen2_5_VLPatchMerger: nn.GELU() default = exact (erf) GELU
  return fc2->forward(F::gelu(fc0->forward(x)));
}

PatchMergerImpl::PatchMergerImpl(const Qwen2_5_VLVisionConfig& c) {
  const int64_t unit = c.spatial_merge_size * c.spatial_merge_size;
  ln_q = register_module("ln_q", RMSNorm(c.hidden_size, 1e-6));
  mlp = register_module("mlp", MergerMlp(c.hidden_size * unit, c.out_hidden_size));
}

torch::Tensor PatchMergerImpl::forward(const torch::Tensor& x) {
  const int64_t in = mlp->fc0->in_features;
  // [N, D] -> [N/4, 4D]: the 4 consecutive patches of a merged unit, (dy, dx) row-major.
  return mlp->forward(ln_q->forward(x).reshape({-1, in}));
}

Qwen2_5_VisionTransformerImpl::Qwen2_5_VisionTransformerImpl(const Qwen2_5_VLVisionConfig& c) : config(c) {
  patch_embed = register_module("patch_embed", PatchEmbed(c));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.depth; ++i) blocks->push_back(VisionBlock(c));
  merger = register_module("merger", PatchMerger(c));
}

torch::Tensor Qwen2_5_VisionTransformerImpl::rot_pos_emb(const std::vector<GridTHW>& grid) const {
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
  // ref: Qwen2_5_VisionRotaryEmbedding(dim = head_dim / 2, theta = 10000)
  auto inv_freq = 1.0 / torch::pow(10000.0, torch::arange(0, rot_dim, 2, torch::kFloat32) / static_cast<double>(rot_dim));
  auto hp = torch::from_blob(hpos.data(), {n}, torch::kInt64).to(torch::kFloat32);
  auto wp = torch::from_blob(wpos.data(), {n}, torch::kInt64).to(torch::kFloat32);
  // ref: VisionRotaryEmbedding: freqs = outer(seq, inv_freq) in fp32 (a table indexed by position)
  return torch::cat({torch::outer(hp, inv_freq), torch::outer(wp, inv_freq)}, 1);  // [N, rot_dim]
}

torch::Tensor Qwen2_5_VisionTransformerImpl::forward(const torch::Tensor& pixel_values, const torch::Tensor& grid_thw) {
  REFRACT_CHECK(grid_thw.dim() == 2 && grid_thw.size(1) == 3) << "image_grid_thw must be [num_images, 3]";
  auto g_cpu = grid_thw.to(torch::kCPU).to(torch::kLong).contiguous();
  std::vector<GridTHW> grid;
  int64_t total = 0;
  for (int64_t i = 0; i < g_cpu.size(0); ++i) {
    auto p = g_cpu.data_ptr<int64_t>() + 3 * i;
    grid.push_back({p[0], p[1], p[2]});
    total += p[0] * p[1] * p[2];
  }
  REFRACT_CHECK(total == pixel_values.size(0))
      << "pixel_values has " << pixel_values.size(0) << " rows but image_grid_thw sums to " << total;
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
    auto* block = blocks[i]->as<VisionBlockImpl>();
    const auto& cu = full ? win.cu_seqlens : win.cu_window_seqlens;
    if (gradient_checkpointing) {
      // By value: backward calls it after this function returned.
      x = checkpointed(*block, [block, cu, cos, sin](const torch::Tensor& in) { return block->forward(in, cu, cos, sin); }, x);
    } else {
      x = block->forward(x, cu, cos, sin);
    }
  }
  auto y = merger->forward(x);  // [N/4, out] in window order
  // Back to raster order: slot k holds unit window_index[k].
  auto reverse = torch::argsort(widx);
  return y.index_select(0, reverse);
}

}  // namespace refract::model
