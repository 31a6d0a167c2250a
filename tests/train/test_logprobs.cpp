// completion_logps, both paths (one sequence per row; the shared prompt run once into a
// differentiable KV cache copied to its G completions), against an independent reference: each
// row's prompt + completion run alone (no padding, no cache) through the model's forward, then
// log_softmax(logits / T) read at the completion tokens. Same log-probs, entropies and
// gradients, for batches of image prompts, video prompts and both mixed, on both families.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ostream>
#include <string>
#include <vector>

#include "fixture_video.h"
#include "io/torch_tensors.h"
#include "model/image_tensors.h"
#include "model/qwen2_5_vl.h"
#include "test_device.h"
#include "train/logprobs.h"
#include "vision/preprocess_video.h"

namespace refract::train {
namespace {

const std::string kFixtures = REFRACT_FIXTURES_DIR;
constexpr int64_t kPad = 4000;  // both tiny models' generation_config.json
constexpr double kTemperature = 0.7;

std::string model_dir(const std::string& family) {
  return family == "qwen2_vl" ? kFixtures + "/qwen2_vl/tiny_q2" : kFixtures + "/qwen2_5_vl/tiny";
}

// A prompt and its vision inputs (undefined = none), as the processor gives them.
struct Prompt {
  std::vector<int64_t> ids;
  torch::Tensor pixel_values, image_grid_thw;
  torch::Tensor pixel_values_videos, video_grid_thw, second_per_grid_ts;
};

std::vector<int64_t> ids_of(const torch::Tensor& input_ids) {
  const torch::Tensor t = input_ids[0].contiguous();
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
}

// Image fixtures A (one image) and C (two).
Prompt image_prompt(const std::string& name) {
  auto t = io::load_tensors(kFixtures + "/qwen2_5_vl/" + name + "/expected.safetensors");
  Prompt p;
  p.ids = ids_of(t.at("input_ids"));
  p.pixel_values = t.at("pixel_values");
  p.image_grid_thw = t.at("image_grid_thw");
  return p;
}

// The video golden (tests/fixtures/video/make_video_golden.py): text, a 3x6x8 video, text, an
// image. Its first `length` tokens (all of them by default).
Prompt golden_video_prompt(const std::string& family, int64_t length = -1) {
  auto t = io::load_tensors(kFixtures + "/video/" + family + ".safetensors");
  Prompt p;
  p.ids = ids_of(t.at("input_ids"));
  if (length >= 0) p.ids.resize(static_cast<size_t>(length));
  p.pixel_values = t.at("pixel_values");
  p.image_grid_thw = t.at("image_grid_thw");
  p.pixel_values_videos = t.at("pixel_values_videos");
  p.video_grid_thw = t.at("video_grid_thw");
  // Qwen2-VL's golden has none (its positions ignore them): the forward reads 1.0.
  if (t.count("second_per_grid_ts")) p.second_per_grid_ts = t.at("second_per_grid_ts");
  return p;
}

// A video-only prompt from qwen-vl-utils' frames of a fixture clip (tests/fixtures/video/
// fetch.json) at their size, at the rate they were sampled: second_per_grid_t =
// temporal_patch_size / fps.
Prompt frames_video_prompt(const model::Qwen2_5_VLImpl& m, const std::string& clip, double sample_fps) {
  vision::PreprocessConfig pp;
  pp.min_pixels = 28 * 28;  // keep the frames' size (the fixture's were sampled to fit)
  const vision::PreprocessedVideo pv = vision::preprocess_video(refract::testing::fixture_video_frames(clip), pp);
  const model::VideoTensors vt = model::to_video_tensors({pv}, {2.0 / sample_fps});
  const auto& c = m.config();
  Prompt p;
  p.ids = {4001, 513, 198, c.vision_start_token_id};
  p.ids.insert(p.ids.end(), static_cast<size_t>(pv.num_video_tokens()), c.video_token_id);
  for (int64_t t : {c.vision_end_token_id, int64_t(1962), int64_t(2752), int64_t(4002), int64_t(198), int64_t(4001),
                    int64_t(658), int64_t(198)})
    p.ids.push_back(t);
  p.pixel_values_videos = vt.pixel_values_videos;
  p.video_grid_thw = vt.video_grid_thw;
  p.second_per_grid_ts = vt.second_per_grid_ts;
  return p;
}

torch::Tensor cat_defined(const std::vector<torch::Tensor>& parts) {
  std::vector<torch::Tensor> d;
  for (const auto& t : parts)
    if (t.defined()) d.push_back(t);
  return d.empty() ? torch::Tensor() : torch::cat(d);
}

// The prompts' vision inputs, concatenated in this order.
void set_vision(const std::vector<const Prompt*>& prompts, PolicyBatch* pb) {
  std::vector<torch::Tensor> pv, grid, vv, vgrid, secs;
  for (const Prompt* p : prompts) {
    pv.push_back(p->pixel_values), grid.push_back(p->image_grid_thw);
    vv.push_back(p->pixel_values_videos), vgrid.push_back(p->video_grid_thw);
    // Batch-mates without seconds (Qwen2-VL's golden) read as 1.0, as the forward does.
    if (p->pixel_values_videos.defined())
      secs.push_back(p->second_per_grid_ts.defined() ? p->second_per_grid_ts
                                                     : torch::ones({p->video_grid_thw.size(0)}));
  }
  pb->pixel_values = cat_defined(pv);
  pb->image_grid_thw = cat_defined(grid);
  pb->pixel_values_videos = cat_defined(vv);
  pb->video_grid_thw = cat_defined(vgrid);
  pb->second_per_grid_ts = cat_defined(secs);
}

// Completions of different lengths (right padding); row 1 samples the image-pad token and
// row 3 the video-pad token, which are fed back as padding (logprobs.cpp) and scored at the
// sampled ids.
std::vector<std::vector<int64_t>> completions_for(const model::Qwen2_5_VLImpl& m) {
  const auto& c = m.config();
  return {{950, 198, 2610, 525, 4002}, {1110, c.image_token_id, 77}, {12},
          {3000, c.video_token_id, 17, 17, 17, 4002}, {5, 6}};
}

struct Batch {
  std::vector<Prompt> prompts;
  std::vector<int64_t> prompt_of_row;
  std::vector<std::vector<int64_t>> completions;
  PolicyBatch per_row, shared;
};

Batch make_batch(const model::Qwen2_5_VLImpl& m, const std::string& family, const std::string& kind) {
  Batch b;
  if (kind == "images") {
    b.prompts = {image_prompt("A"), image_prompt("C")};
    b.prompt_of_row = {0, 0, 0, 1, 1};
  } else if (kind == "videos") {
    // Two videos of different grids (3x4x4 and 3x6x2) and seconds per temporal patch.
    b.prompts = {frames_video_prompt(m, "landscape_fps3_small", 3.0),
                 frames_video_prompt(m, "portrait_nframes", 19.98001998001998)};
    b.prompt_of_row = {0, 0, 0, 1, 1};
  } else {  // mixed: video + image in one prompt, an image prompt, a video prompt
    b.prompts = {golden_video_prompt(family), image_prompt("A"), frames_video_prompt(m, "landscape_fps3_small", 3.0)};
    b.prompt_of_row = {0, 0, 1, 2, 2};
  }
  b.completions = completions_for(m);
  const int64_t rows = static_cast<int64_t>(b.completions.size()), t = 6;
  torch::Tensor ids = torch::full({rows, t}, kPad, torch::kInt64);
  torch::Tensor mask = torch::zeros({rows, t}, torch::kFloat32);
  for (int64_t i = 0; i < rows; ++i) {
    const auto& ci = b.completions[i];
    ids[i].narrow(0, 0, ci.size()).copy_(torch::tensor(ci, torch::kInt64));
    mask[i].narrow(0, 0, ci.size()).fill_(1);
  }
  for (PolicyBatch* pb : {&b.per_row, &b.shared}) {
    pb->completion_ids = ids;
    pb->completion_mask = mask;
    pb->pad_id = kPad;
  }
  std::vector<const Prompt*> per_row, distinct;
  for (int64_t i = 0; i < rows; ++i) {
    const Prompt& p = b.prompts[b.prompt_of_row[i]];
    b.per_row.prompt_ids.push_back(p.ids);
    per_row.push_back(&p);
    b.shared.row_prompt.push_back(b.prompt_of_row[i]);
  }
  for (const Prompt& p : b.prompts) b.shared.prompt_ids.push_back(p.ids), distinct.push_back(&p);
  set_vision(per_row, &b.per_row);
  set_vision(distinct, &b.shared);
  return b;
}

// The reference: row by row, prompt + completion alone through forward(); vision special
// tokens of a completion fed as the pad id (the documented input), read at the sampled ids.
// Log-probs (differentiable) and entropies [B, T], zero after each completion's end.
std::pair<torch::Tensor, torch::Tensor> reference_logps(model::Qwen2_5_VLImpl& m, const Batch& b) {
  const torch::Device dev = m.device();
  const auto& c = m.config();
  const int64_t t = b.per_row.completion_ids.size(1);
  std::vector<torch::Tensor> logps, ents;
  for (size_t i = 0; i < b.completions.size(); ++i) {
    const Prompt& p = b.prompts[b.prompt_of_row[i]];
    const auto& comp = b.completions[i];
    std::vector<int64_t> seq = p.ids;
    for (int64_t tok : comp)
      seq.push_back(tok == c.image_token_id || tok == c.video_token_id || tok == c.vision_start_token_id ? kPad : tok);
    model::ModelInputs in;
    in.input_ids = torch::tensor(seq, torch::kInt64).view({1, -1}).to(dev);
    if (p.pixel_values.defined()) in.pixel_values = p.pixel_values.to(dev), in.image_grid_thw = p.image_grid_thw;
    if (p.pixel_values_videos.defined()) {
      in.pixel_values_videos = p.pixel_values_videos.to(dev);
      in.video_grid_thw = p.video_grid_thw;
      in.second_per_grid_ts = p.second_per_grid_ts;
    }
    const int64_t lp = static_cast<int64_t>(p.ids.size()), n = static_cast<int64_t>(comp.size());
    // Position k predicts token k + 1: the prompt's last position predicts completion token 0.
    const torch::Tensor logits = m.forward(in).logits[0].narrow(0, lp - 1, n).to(torch::kFloat32) / kTemperature;
    const torch::Tensor lsm = torch::log_softmax(logits, -1);
    const torch::Tensor target = torch::tensor(comp, torch::kInt64).to(dev).view({n, 1});
    const torch::Tensor pad = torch::zeros({t - n}, lsm.options());
    logps.push_back(torch::cat({lsm.gather(1, target).view({n}), pad}));
    ents.push_back(torch::cat({-(lsm.exp() * lsm).sum(-1).detach(), pad}));
  }
  return {torch::stack(logps), torch::stack(ents)};
}

double max_abs_diff(const torch::Tensor& x, const torch::Tensor& y) {
  return (x.cpu().to(torch::kFloat64) - y.cpu().to(torch::kFloat64)).abs().max().item<double>();
}

// Every parameter's gradient, zeros where none reached it.
std::vector<torch::Tensor> parameter_grads(model::Qwen2_5_VLImpl& model) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : model.parameters()) grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  return grads;
}

// Largest |gradient| of the vision tower's parameters.
double vision_grad_scale(model::Qwen2_5_VLImpl& model) {
  double s = 0;
  for (const auto& p : model.named_parameters())
    if (p.key().rfind("visual.", 0) == 0 && p.value().grad().defined())
      s = std::max(s, p.value().grad().abs().max().item<double>());
  return s;
}

struct Case {
  std::string family, kind;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.family << " " << c.kind; }

class CompletionLogprobs : public ::testing::TestWithParam<Case> {};

TEST_P(CompletionLogprobs, BothPathsEqualADirectForwardPerRow) {
  torch::set_num_threads(2);
  const Case& cs = GetParam();
  auto model = model::load_pretrained(model_dir(cs.family), refract::testing::test_device(), "float32");
  model->train();
  const Batch b = make_batch(*model, cs.family, cs.kind);
  const torch::Tensor mask = b.per_row.completion_mask;
  // An arbitrary weighting of tokens, so the gradient depends on every position.
  const torch::Tensor weights = (torch::linspace(-1.0, 2.0, mask.numel()).view(mask.sizes()) * mask).to(model->device());

  model->zero_grad();
  auto [ref_lp, ref_ent] = reference_logps(*model, b);
  (ref_lp * weights).sum().backward();
  const auto g_ref = parameter_grads(*model);
  ref_lp = ref_lp.detach();
  double scale = 0;
  for (const auto& g : g_ref) scale = std::max(scale, g.abs().max().item<double>());
  ASSERT_GT(scale, 1e-3);  // the loss reaches the parameters
  // Real log-probs, and the vision inputs reach the loss (the tower gets a gradient).
  EXPECT_LT(ref_lp.select(0, 0).narrow(0, 0, 5).max().item<double>(), 0.0);
  EXPECT_GT(vision_grad_scale(*model), 1e-6);

  for (const PolicyBatch* pb : {&b.per_row, &b.shared}) {
    const char* path = pb->row_prompt.empty() ? "one sequence per row" : "shared prompt";
    model->zero_grad();
    PolicyLogps lp = completion_logps(*model, *pb, kTemperature, /*with_entropy=*/true);
    ASSERT_EQ(lp.logps.sizes(), mask.sizes()) << path;
    (lp.logps * weights).sum().backward();
    const auto g = parameter_grads(*model);
    EXPECT_LT(max_abs_diff(lp.logps.detach() * mask, ref_lp), 1e-5) << path;
    EXPECT_LT(max_abs_diff(lp.entropies * mask, ref_ent), 1e-5) << path;
    double worst = 0;
    for (size_t i = 0; i < g.size(); ++i) worst = std::max(worst, max_abs_diff(g[i], g_ref[i]));
    EXPECT_LT(worst, 1e-5 * scale) << path << " (largest gradient " << scale << ")";
  }

  // The frozen-tower path of the trainer: image / video embeddings computed beforehand replace
  // the pixels (their grids and seconds stay for the positions); same log-probs.
  torch::NoGradGuard ng;
  PolicyBatch emb = b.shared;
  const torch::Device dev = model->device();
  if (emb.pixel_values.defined()) {
    emb.image_embeds = model->encode_images(emb.pixel_values.to(dev), emb.image_grid_thw);
    emb.pixel_values = torch::Tensor();
  }
  if (emb.pixel_values_videos.defined()) {
    emb.video_embeds = model->encode_images(emb.pixel_values_videos.to(dev), emb.video_grid_thw);
    emb.pixel_values_videos = torch::Tensor();
  }
  const PolicyLogps lp = completion_logps(*model, emb, kTemperature, false);
  EXPECT_LT(max_abs_diff(lp.logps * mask, ref_lp), 1e-5) << "precomputed embeddings";
}

INSTANTIATE_TEST_SUITE_P(Batches, CompletionLogprobs,
                         ::testing::Values(Case{"qwen2_5_vl", "images"}, Case{"qwen2_5_vl", "videos"},
                                           Case{"qwen2_5_vl", "mixed"}, Case{"qwen2_vl", "images"},
                                           Case{"qwen2_vl", "videos"}, Case{"qwen2_vl", "mixed"}),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.family + "_" + i.param.kind; });

// Anchored in transformers: the video golden's logits (a prompt of text, a video, text and an
// image, tests/fixtures/video) read as a prompt up to the image's end plus a 7-token
// completion: both paths give log_softmax of transformers' logits at those tokens (the
// golden's own tolerance, 1e-4).
TEST(CompletionLogprobsGolden, VideoPromptMatchesTransformers) {
  torch::set_num_threads(2);
  torch::NoGradGuard ng;
  for (const std::string family : {"qwen2_5_vl", "qwen2_vl"}) {
    auto model = model::load_pretrained(model_dir(family), refract::testing::test_device(), "float32");
    const auto golden = io::load_tensors(kFixtures + "/video/" + family + ".safetensors");
    const std::vector<int64_t> all = ids_of(golden.at("input_ids"));
    const int64_t plen = 58, n = static_cast<int64_t>(all.size()) - plen;
    ASSERT_EQ(all[plen - 1], model->config().vision_end_token_id) << family;  // the prompt ends after the image
    const Prompt p = golden_video_prompt(family, plen);
    const std::vector<int64_t> comp(all.begin() + plen, all.end());
    const torch::Tensor hf = torch::log_softmax(golden.at("logits")[0].narrow(0, plen - 1, n), -1)
                                 .gather(1, torch::tensor(comp, torch::kInt64).view({n, 1}))
                                 .view({1, n});
    PolicyBatch pb;
    pb.prompt_ids = {p.ids, p.ids};
    pb.completion_ids = torch::tensor(comp, torch::kInt64).view({1, n}).repeat({2, 1});
    pb.completion_mask = torch::ones({2, n});
    pb.pad_id = kPad;
    set_vision({&p, &p}, &pb);
    PolicyBatch shared = pb;
    shared.prompt_ids = {p.ids};
    shared.row_prompt = {0, 0};
    set_vision({&p}, &shared);
    for (const PolicyBatch* b : {&pb, &shared}) {
      const torch::Tensor lp = completion_logps(*model, *b, 1.0, false).logps;
      EXPECT_LT(max_abs_diff(lp, hf.expand({2, n})), 1e-4) << family << (b->row_prompt.empty() ? " per row" : " shared");
    }
  }
}

// GRPO's policy forward with gradient checkpointing (which the trainer runs one sequence per
// row): the same log-probs and the same gradients (<= 1e-6) as storing every activation, on
// a batch with images and videos.
TEST(CompletionLogprobsCheckpointing, GivesTheSameGradients) {
  torch::set_num_threads(2);
  auto model = model::load_pretrained(model_dir("qwen2_5_vl"), refract::testing::test_device(), "float32");
  model->train();
  const Batch b = make_batch(*model, "qwen2_5_vl", "mixed");
  const torch::Tensor mask = b.per_row.completion_mask;
  const torch::Tensor weights = torch::linspace(-1.0, 2.0, mask.numel()).view(mask.sizes()) * mask;
  auto run = [&](bool ckpt, torch::Tensor* logps) {
    model->set_gradient_checkpointing(ckpt);
    model->zero_grad();
    PolicyLogps lp = completion_logps(*model, b.per_row, 0.7, false);
    (lp.logps * weights).sum().backward();
    *logps = lp.logps.detach();
    return parameter_grads(*model);
  };
  torch::Tensor lp_plain, lp_ckpt;
  const auto g_plain = run(false, &lp_plain);
  const auto g_ckpt = run(true, &lp_ckpt);
  EXPECT_LE(max_abs_diff(lp_plain, lp_ckpt), 1e-6);
  double worst = 0, scale = 0;
  for (size_t i = 0; i < g_plain.size(); ++i) {
    scale = std::max(scale, g_plain[i].abs().max().item<double>());
    worst = std::max(worst, max_abs_diff(g_plain[i], g_ckpt[i]));
  }
  EXPECT_GT(scale, 1e-3);
  EXPECT_LE(worst, 1e-6);
}

TEST(CompletionLogprobsErrors, RejectRowPromptOutOfRangeAndVideosWithoutGrid) {
  auto model = model::load_pretrained(model_dir("qwen2_5_vl"), refract::testing::test_device(), "float32");
  Batch b = make_batch(*model, "qwen2_5_vl", "mixed");
  PolicyBatch bad = b.shared;
  bad.row_prompt[4] = 3;
  EXPECT_THROW(completion_logps(*model, bad, 1.0, false), std::exception);
  bad = b.shared;
  bad.video_grid_thw = torch::Tensor();
  try {
    completion_logps(*model, bad, 1.0, false);
    ADD_FAILURE() << "videos without video_grid_thw were accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("video_grid_thw"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace refract::train
