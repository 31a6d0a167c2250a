#include "model/qwen2_5_vl.h"

#include <algorithm>

#include "common/check.h"

namespace refract::model {

Qwen2_5_VLImpl::Qwen2_5_VLImpl(const Qwen2_5_VLConfig& c) : config_(c) {
  // Registration order = HF's: visual, model, lm_head (names are the safetensors keys).
  visual = register_module("visual", make_vision_tower(c));
  language_model = register_module("model", Qwen2Model(c));
  if (!c.tie_word_embeddings) {
    lm_head = register_module("lm_head", Linear(c.hidden_size, c.vocab_size, false));
  }
}

torch::Device Qwen2_5_VLImpl::device() const { return language_model->embed_tokens->weight.device(); }
torch::ScalarType Qwen2_5_VLImpl::dtype() const { return language_model->embed_tokens->weight.scalar_type(); }

torch::Tensor Qwen2_5_VLImpl::encode_images(const torch::Tensor& pixel_values, const torch::Tensor& image_grid_thw) {
  return visual->forward(pixel_values.to(device()), image_grid_thw);
}

RopeIndex Qwen2_5_VLImpl::get_rope_index(const torch::Tensor& input_ids, const torch::Tensor& image_grid_thw,
                                         const torch::Tensor& attention_mask) const {
  return get_rope_index(input_ids, image_grid_thw, attention_mask, torch::Tensor(), torch::Tensor());
}

namespace {
std::vector<GridTHW> grid_rows(const torch::Tensor& grid_thw) {
  std::vector<GridTHW> grid;
  if (!grid_thw.defined()) return grid;
  auto g = grid_thw.to(torch::kCPU).to(torch::kLong).contiguous();
  for (int64_t i = 0; i < g.size(0); ++i) {
    auto p = g.data_ptr<int64_t>() + 3 * i;
    grid.push_back({p[0], p[1], p[2]});
  }
  return grid;
}
}  // namespace

int64_t Qwen2_5_VLImpl::video_time_position(int64_t frame, float second_per_grid_t) const {
  // ref: Qwen2-VL get_rope_index: the temporal index is the frame (temporal patch) number.
  if (config_.model_type == kModelTypeQwen2VL) return frame;
  // ref: Qwen2.5-VL get_rope_index: t * second_per_grid_t * tokens_per_second in float,
  // truncated by .long() (images: second_per_grid_t = 0, every frame at offset 0).
  const float v = static_cast<float>(frame) * second_per_grid_t * static_cast<float>(config_.vision_config.tokens_per_second);
  return static_cast<int64_t>(v);
}

RopeIndex Qwen2_5_VLImpl::get_rope_index(const torch::Tensor& input_ids, const torch::Tensor& image_grid_thw,
                                         const torch::Tensor& attention_mask, const torch::Tensor& video_grid_thw,
                                         const torch::Tensor& second_per_grid_ts) const {
  REFRACT_CHECK(input_ids.dim() == 2) << "input_ids must be [B, S], got " << input_ids.sizes();
  const int64_t b = input_ids.size(0), s = input_ids.size(1);
  auto ids = input_ids.to(torch::kCPU).to(torch::kLong).contiguous();
  torch::Tensor am;
  if (attention_mask.defined()) {
    REFRACT_CHECK(attention_mask.sizes() == input_ids.sizes())
        << "attention_mask " << attention_mask.sizes() << " does not match input_ids " << input_ids.sizes();
    am = attention_mask.to(torch::kCPU).to(torch::kLong).contiguous();
  }
  const std::vector<GridTHW> grid = grid_rows(image_grid_thw);
  const std::vector<GridTHW> vgrid = grid_rows(video_grid_thw);
  std::vector<float> spg;  // seconds per temporal patch, per video
  if (second_per_grid_ts.defined()) {
    auto t = second_per_grid_ts.to(torch::kCPU).to(torch::kFloat32).contiguous().view({-1});
    spg.assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
    REFRACT_CHECK(spg.size() == vgrid.size())
        << "second_per_grid_ts has " << spg.size() << " entries for " << vgrid.size() << " videos";
  }
  const int64_t merge = config_.vision_config.spatial_merge_size;
  const int64_t image_id = config_.image_token_id, video_id = config_.video_token_id;
  // ref: get_rope_index: padding positions hold 1
  auto pos = torch::ones({3, b, s}, torch::kLong);
  auto deltas = torch::zeros({b, 1}, torch::kLong);
  auto P = pos.accessor<int64_t, 3>();
  size_t image_index = 0, video_index = 0;  // consumed in order across the whole batch
  for (int64_t r = 0; r < b; ++r) {
    const int64_t* row = ids.data_ptr<int64_t>() + r * s;
    std::vector<int64_t> cols;  // non-padding columns
    for (int64_t j = 0; j < s; ++j) {
      if (!am.defined() || am.data_ptr<int64_t>()[r * s + j] != 0) cols.push_back(j);
    }
    const int64_t n = static_cast<int64_t>(cols.size());
    std::vector<int64_t> tok(n);
    for (int64_t j = 0; j < n; ++j) tok[j] = row[cols[j]];
    // ref: images / videos = vision_start tokens followed by image_token_id / video_token_id
    int64_t image_nums = 0, video_nums = 0;
    for (int64_t j = 0; j + 1 < n; ++j) {
      if (tok[j] != config_.vision_start_token_id) continue;
      image_nums += tok[j + 1] == image_id;
      video_nums += tok[j + 1] == video_id;
    }
    std::vector<std::array<int64_t, 3>> out;
    out.reserve(n);
    int64_t st = 0, next = 0;  // next = max position so far + 1
    int64_t images_left = image_nums, videos_left = video_nums;
    for (int64_t k = 0; k < image_nums + video_nums; ++k) {
      // ref: the earlier of the next image token and the next video token starts the item
      int64_t ed_image = n, ed_video = n;
      if (images_left > 0) for (ed_image = st; ed_image < n && tok[ed_image] != image_id; ++ed_image) {}
      if (videos_left > 0) for (ed_video = st; ed_video < n && tok[ed_video] != video_id; ++ed_video) {}
      const bool is_image = ed_image < ed_video;
      const int64_t ed = is_image ? ed_image : ed_video;
      REFRACT_CHECK(ed < n) << "get_rope_index: row " << r << " has fewer image / video tokens than vision starts";
      GridTHW g;
      float second_per_grid_t = 0.0f;
      if (is_image) {
        REFRACT_CHECK(image_index < grid.size())
            << "get_rope_index: the batch has more images than image_grid_thw rows (" << grid.size() << ")";
        g = grid[image_index++];
        --images_left;
      } else {
        REFRACT_CHECK(video_index < vgrid.size())
            << "get_rope_index: the batch has more videos than video_grid_thw rows (" << vgrid.size() << ")";
        // ref: second_per_grid_ts absent -> 1.0
        second_per_grid_t = spg.empty() ? 1.0f : spg[video_index];
        g = vgrid[video_index++];
        --videos_left;
      }
      const int64_t tt = g[0], hh = g[1] / merge, ww = g[2] / merge;
      for (int64_t j = st; j < ed; ++j) {
        int64_t p = next + (j - st);
        out.push_back({p, p, p});
      }
      const int64_t s0 = next + (ed - st);
      int64_t mx = s0 - 1;
      for (int64_t t = 0; t < tt; ++t) {
        const int64_t tp = s0 + (is_image ? 0 : video_time_position(t, second_per_grid_t));
        for (int64_t y = 0; y < hh; ++y)
          for (int64_t x = 0; x < ww; ++x) {
            out.push_back({tp, s0 + y, s0 + x});
            mx = std::max({mx, tp, s0 + y, s0 + x});
          }
      }
      next = mx + 1;
      st = ed + tt * hh * ww;
      REFRACT_CHECK(st <= n) << "get_rope_index: row " << r << " ends inside an " << (is_image ? "image" : "video")
                             << " (its grid expects " << tt * hh * ww << " tokens)";
    }
    for (int64_t j = st; j < n; ++j) {
      int64_t p = next + (j - st);
      out.push_back({p, p, p});
    }
    int64_t mx = -1;
    for (int64_t j = 0; j < n; ++j) {
      for (int a = 0; a < 3; ++a) {
        P[a][r][cols[j]] = out[j][a];
        mx = std::max(mx, out[j][a]);
      }
    }
    // ref: mrope_position_deltas = max(llm_positions) + 1 - len(input_ids[i]) (padded length)
    deltas[r][0] = mx + 1 - s;
  }
  if (!grid.empty()) {
    REFRACT_CHECK(image_index == grid.size())
        << "get_rope_index: image_grid_thw has " << grid.size() << " rows but the batch has " << image_index
        << " images (<vision_start> followed by image_token_id " << image_id << ")";
  }
  if (!vgrid.empty()) {
    REFRACT_CHECK(video_index == vgrid.size())
        << "get_rope_index: video_grid_thw has " << vgrid.size() << " rows but the batch has " << video_index
        << " videos (<vision_start> followed by video_token_id " << video_id << ")";
  }
  return {pos.to(input_ids.device()), deltas.to(input_ids.device())};
}

ModelOutput Qwen2_5_VLImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                    const torch::Tensor& pixel_values, const torch::Tensor& image_grid_thw,
                                    KVCache* cache, int64_t logits_to_keep) {
  ModelInputs in;
  in.input_ids = input_ids;
  in.attention_mask = attention_mask;
  in.pixel_values = pixel_values;
  in.image_grid_thw = image_grid_thw;
  in.logits_to_keep = logits_to_keep;
  return forward(in, cache);
}

ModelOutput Qwen2_5_VLImpl::forward(const ModelInputs& in, KVCache* cache) {
  REFRACT_CHECK(in.input_ids.defined() && in.input_ids.dim() == 2)
      << "forward: input_ids must be [B, S]";
  const auto dev = device();
  auto input_ids = in.input_ids.to(dev).to(torch::kLong);
  const int64_t b = input_ids.size(0), s = input_ids.size(1);
  torch::Tensor attention_mask = in.attention_mask.defined() ? in.attention_mask.to(dev) : torch::Tensor();
  ModelOutput out;

  auto embeds = language_model->embed_tokens->forward(input_ids);  // [B, S, H]
  if (in.image_embeds.defined()) {
    out.image_embeds = in.image_embeds.to(dev);
  } else if (in.pixel_values.defined() && in.pixel_values.numel() > 0) {
    REFRACT_CHECK(in.image_grid_thw.defined()) << "forward: pixel_values given without image_grid_thw";
    out.image_embeds = encode_images(in.pixel_values, in.image_grid_thw);
  }
  if (in.video_embeds.defined()) {
    out.video_embeds = in.video_embeds.to(dev);
  } else if (in.pixel_values_videos.defined() && in.pixel_values_videos.numel() > 0) {
    REFRACT_CHECK(in.video_grid_thw.defined()) << "forward: pixel_values_videos given without video_grid_thw";
    // ref: the same vision tower encodes videos (frames in temporal patches; attention per frame)
    out.video_embeds = encode_images(in.pixel_values_videos, in.video_grid_thw);
  }
  // The k-th image (video) token, row-major over batch then sequence, takes row k of the
  // image (video) embeddings.
  // ref: Qwen2_5_VLForConditionalGeneration.forward: "Image features and image tokens do not match"
  auto scatter = [&](const torch::Tensor& features, int64_t token_id, const char* what, const char* grid) {
    auto mask = input_ids.eq(token_id);  // [B, S]
    const int64_t n_tokens = mask.sum().item<int64_t>();
    const int64_t n_features = features.defined() ? features.size(0) : 0;
    REFRACT_CHECK(n_tokens == n_features)
        << what << " features and " << what << " tokens do not match: " << n_tokens << " tokens with " << what
        << "_token_id " << token_id << " (config.json) in input_ids, " << n_features << " " << what
        << " embeddings (sum of t*h*w/4 over " << grid << ")";
    if (n_features > 0) embeds = embeds.masked_scatter(mask.unsqueeze(-1).expand_as(embeds), features.to(embeds.scalar_type()));
    return n_features;
  };
  const int64_t n_features = scatter(out.image_embeds, config_.image_token_id, "image", "image_grid_thw");
  const int64_t n_video = scatter(out.video_embeds, config_.video_token_id, "video", "video_grid_thw");

  REFRACT_CHECK(n_features == 0 || in.position_ids.defined() || in.image_grid_thw.defined())
      << "forward: image embeddings need image_grid_thw (or position_ids) for the M-RoPE positions";
  REFRACT_CHECK(n_video == 0 || in.position_ids.defined() || in.video_grid_thw.defined())
      << "forward: video embeddings need video_grid_thw (or position_ids) for the M-RoPE positions";
  if (in.position_ids.defined()) {
    REFRACT_CHECK(in.position_ids.dim() == 3 && in.position_ids.size(0) == 3 && in.position_ids.size(1) == b &&
                  in.position_ids.size(2) == s)
        << "forward: position_ids must be [3, " << b << ", " << s << "], got " << in.position_ids.sizes();
    out.position_ids = in.position_ids.to(dev).to(torch::kLong);
    // Same definition as get_rope_index: max position + 1 - S (padding holds 1, never the max).
    out.rope_deltas = (std::get<0>(out.position_ids.amax(2).max(0)) + 1 - s).view({b, 1});
  } else {
    auto ri = get_rope_index(input_ids, in.image_grid_thw, attention_mask, in.video_grid_thw, in.second_per_grid_ts);
    out.position_ids = ri.position_ids;
    out.rope_deltas = ri.rope_deltas;
  }
  if (cache) {
    REFRACT_CHECK(cache->empty()) << "forward with a KV cache is the prefill: the cache must be empty "
                                  << "(use forward_decode for later steps)";
    REFRACT_CHECK(cache->batch_size() == b) << "KV cache batch " << cache->batch_size() << " != input batch " << b;
    cache->set_rope_deltas(out.rope_deltas);
  }
  out.hidden_states = language_model->forward(embeds, out.position_ids, attention_mask, cache);
  if (in.compute_logits) {
    auto h = out.hidden_states;
    if (in.logits_to_keep > 0 && in.logits_to_keep < s) h = h.narrow(1, s - in.logits_to_keep, in.logits_to_keep);
    out.logits = compute_logits(h);
  }
  return out;
}

torch::Tensor Qwen2_5_VLImpl::forward_decode(const torch::Tensor& next_ids, const torch::Tensor& attention_mask,
                                             const torch::Tensor& rope_deltas, KVCache& cache) {
  REFRACT_CHECK(next_ids.dim() == 2 && next_ids.size(1) == 1)
      << "forward_decode: next_ids must be [B, 1], got " << next_ids.sizes();
  return forward_extend(next_ids, attention_mask, cache, rope_deltas).select(1, 0);
}

torch::Tensor Qwen2_5_VLImpl::forward_extend(const torch::Tensor& ids_in, const torch::Tensor& attention_mask,
                                             KVCache& cache, const torch::Tensor& rope_deltas) {
  const auto dev = device();
  auto ids = ids_in.to(dev).to(torch::kLong);
  REFRACT_CHECK(ids.dim() == 2 && ids.size(1) >= 1) << "forward_extend: ids must be [B, S], got " << ids.sizes();
  const int64_t b = ids.size(0), s = ids.size(1);
  REFRACT_CHECK(!cache.empty()) << "forward_extend needs a prefilled KV cache";
  REFRACT_CHECK(cache.batch_size() == b) << "KV cache batch " << cache.batch_size() << " != ids batch " << b;
  const torch::Tensor& deltas = rope_deltas.defined() ? rope_deltas : cache.rope_deltas();
  REFRACT_CHECK(deltas.defined() && deltas.numel() == b) << "forward_extend: rope_deltas must be [B, 1]";
  // ref: decode positions = cache_position + rope_deltas on all three axes
  auto steps = torch::arange(cache.length(), cache.length() + s, torch::TensorOptions().dtype(torch::kLong).device(dev));
  auto p = deltas.to(dev).to(torch::kLong).view({b, 1}) + steps.view({1, s});
  auto position_ids = p.unsqueeze(0).expand({3, b, s});
  auto embeds = language_model->embed_tokens->forward(ids);
  auto h = language_model->forward(embeds, position_ids, attention_mask.defined() ? attention_mask.to(dev) : torch::Tensor(),
                                   &cache);
  return compute_logits(h);
}

torch::Tensor Qwen2_5_VLImpl::compute_logits(const torch::Tensor& hidden_states) {
  if (lm_head) return lm_head->forward(hidden_states);
  // ref: tie_word_embeddings: lm_head shares embed_tokens.weight (absent from 3B safetensors)
  return model::linear(hidden_states, language_model->embed_tokens->weight);
}

void Qwen2_5_VLImpl::set_gradient_checkpointing(bool on) {
  visual->gradient_checkpointing = on;
  language_model->gradient_checkpointing = on;
}

KVCache Qwen2_5_VLImpl::make_cache(int64_t batch_size, int64_t capacity) const {
  return KVCache(config_, batch_size, capacity, device(), dtype());
}

void freeze_vision_modules(Qwen2_5_VLImpl& model) {
  for (auto& p : model.visual->parameters()) p.set_requires_grad(false);
}

void freeze_aligner(Qwen2_5_VLImpl& model) {
  for (auto& p : model.visual->merger_module().parameters()) p.set_requires_grad(false);
}

int64_t count_parameters(torch::nn::Module& module, bool trainable_only) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) {
    if (!trainable_only || p.requires_grad()) n += p.numel();
  }
  return n;
}

}  // namespace refract::model
