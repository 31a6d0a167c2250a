// The rollout engine against HF greedy decoding (fixtures A and C on the tiny checkpoint),
// against full recomputation without a cache, and against itself under re-batching.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "generate/generator.h"
#include "io/torch_tensors.h"
#include "model/qwen2_5_vl.h"
#include "test_device.h"

namespace refract::generate {
namespace {

const std::string kDir = std::string(REFRACT_FIXTURES_DIR) + "/qwen2_5_vl";
constexpr int64_t kEos = 4002;  // tiny generation_config.json: eos [4002, 4000], pad 4000
constexpr int64_t kPad = 4000;

model::Qwen2_5_VLImpl& tiny_model() {
  static model::Qwen2_5_VL m = [] {
    torch::set_num_threads(2);
    auto model = model::load_pretrained(kDir + "/tiny", refract::testing::test_device(), "float32");
    model->eval();
    return model;
  }();
  return *m;
}

struct Fixture {
  PromptInput prompt;
  std::vector<int64_t> generated_ids;
  torch::Tensor generated_step_logits;  // [8, V]
};

const Fixture& fixture(const std::string& name) {
  static std::map<std::string, Fixture> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  auto t = io::load_tensors(kDir + "/" + name + "/expected.safetensors");
  Fixture f;
  auto ids = t.at("input_ids")[0].contiguous();
  f.prompt.input_ids.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  f.prompt.pixel_values = t.at("pixel_values");
  f.prompt.image_grid_thw = t.at("image_grid_thw");
  auto gen = t.at("generated_ids")[0].contiguous();
  f.generated_ids.assign(gen.data_ptr<int64_t>(), gen.data_ptr<int64_t>() + gen.numel());
  f.generated_step_logits = t.at("generated_step_logits")[0];
  return cache.emplace(name, std::move(f)).first->second;
}

// A text-only prompt of arbitrary ordinary ids (shorter than A and C).
PromptInput text_prompt() {
  PromptInput p;
  p.input_ids = {4001, 950, 198, 2610, 525, 4002, 198, 4001, 1110, 198};
  return p;
}

GenerationConfig greedy(int64_t max_new) {
  GenerationConfig c;
  c.do_sample = false;
  c.max_new_tokens = max_new;
  c.stop_token_ids = {kEos, kPad};
  return c;
}

GenerationConfig sampled(int64_t max_new, int64_t g, int64_t seed) {
  GenerationConfig c;
  c.do_sample = true;
  c.temperature = 1.0;
  c.max_new_tokens = max_new;
  c.num_generations = g;
  c.seed = seed;
  c.stop_token_ids = {kEos, kPad};
  return c;
}

float max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kCPU, torch::kFloat) - b.to(torch::kCPU, torch::kFloat)).abs().max().item<float>();
}

// Logits of a whole sequence (prompt + completion) recomputed without a cache; row t is
// the prediction of token t + 1.
torch::Tensor full_logits(const PromptInput& p, const std::vector<int64_t>& completion) {
  torch::NoGradGuard ng;
  std::vector<int64_t> seq = p.input_ids;
  seq.insert(seq.end(), completion.begin(), completion.end());
  model::ModelInputs in;
  const torch::Device device = tiny_model().device();
  in.input_ids = torch::tensor(seq, torch::kLong).unsqueeze(0).to(device);
  if (p.pixel_values.defined()) in.pixel_values = p.pixel_values.to(device);
  in.image_grid_thw = p.image_grid_thw;
  return tiny_model().forward(in).logits[0].cpu();
}

void expect_cached_equals_full(const PromptInput& p, const Completion& c) {
  ASSERT_TRUE(c.step_logits.defined());
  const int64_t n = static_cast<int64_t>(c.ids.size());
  ASSERT_EQ(c.step_logits.size(0), n);
  auto full = full_logits(p, c.ids);
  const int64_t l = static_cast<int64_t>(p.input_ids.size());
  EXPECT_LT(max_abs_diff(c.step_logits, full.narrow(0, l - 1, n)), 1e-4);
}

TEST(Generate, GreedyMatchesTransformersOnFixtures) {
  for (std::string name : {"A", "C"}) {
    const auto& f = fixture(name);
    GenerateOptions opt;
    opt.record_step_logits = true;
    auto r = generate(tiny_model(), {f.prompt}, greedy(8), opt);
    ASSERT_EQ(r.completions.size(), 1u);
    const auto& c = r.completions[0];
    EXPECT_EQ(c.ids, f.generated_ids) << name;
    EXPECT_EQ(c.finish_reason, FinishReason::kLength);
    EXPECT_LT(max_abs_diff(c.step_logits, f.generated_step_logits), 1e-4) << name;
    // Greedy log-probs are log_softmax of the raw logits at the chosen id.
    auto ref_lp = f.generated_step_logits.log_softmax(-1);
    for (size_t k = 0; k < c.ids.size(); ++k)
      EXPECT_NEAR(c.logprobs[k], ref_lp[k][c.ids[k]].item<float>(), 1e-4);
  }
}

TEST(Generate, CachedDecodingEqualsFullRecomputeWhileSampling) {
  const auto& f = fixture("C");
  GenerateOptions opt;
  opt.record_step_logits = true;
  auto cfg = sampled(10, 3, 11);
  cfg.repetition_penalty = 1.2;
  cfg.top_k = 50;
  auto r = generate(tiny_model(), {f.prompt}, cfg, opt);
  ASSERT_EQ(r.completions.size(), 3u);
  for (const auto& c : r.completions) expect_cached_equals_full(f.prompt, c);
  // And the returned log-probs are log_softmax(raw / T) at the sampled ids (T = 1).
  const auto& c = r.completions[1];
  auto lp = c.step_logits.log_softmax(-1);
  for (size_t k = 0; k < c.ids.size(); ++k) EXPECT_NEAR(c.logprobs[k], lp[k][c.ids[k]].item<float>(), 1e-5);
}

TEST(Generate, BatchEqualsPromptsOneByOne) {
  // Three lengths (93, 31, 10) force left padding; the repetition penalty exercises the
  // history of padded rows.
  std::vector<PromptInput> prompts = {fixture("C").prompt, fixture("A").prompt, text_prompt()};
  auto cfg = greedy(7);
  cfg.repetition_penalty = 1.3;
  GenerateOptions opt;
  opt.record_step_logits = true;
  auto batch = generate(tiny_model(), prompts, cfg, opt);
  ASSERT_EQ(batch.completions.size(), 3u);
  for (size_t p = 0; p < prompts.size(); ++p) {
    auto one = generate(tiny_model(), {prompts[p]}, cfg, opt);
    const auto& a = batch.completions[p];
    const auto& b = one.completions[0];
    EXPECT_EQ(a.prompt_index, static_cast<int64_t>(p));
    EXPECT_EQ(a.ids, b.ids) << "prompt " << p;
    EXPECT_EQ(a.finish_reason, b.finish_reason);
    ASSERT_EQ(a.step_logits.sizes(), b.step_logits.sizes());
    EXPECT_LT(max_abs_diff(a.step_logits, b.step_logits), 1e-4) << "prompt " << p;
  }
}

TEST(Generate, SharedPrefillEqualsSeparatePrefills) {
  // G = 4 from one prefill versus the prompt repeated 4 times with G = 1: sample n uses
  // stream n in both, so the completions must be the same.
  const auto& f = fixture("A");
  auto shared = generate(tiny_model(), {f.prompt}, sampled(12, 4, 5));
  auto cfg = sampled(12, 1, 5);
  auto separate = generate(tiny_model(), {f.prompt, f.prompt, f.prompt, f.prompt}, cfg);
  ASSERT_EQ(shared.completions.size(), 4u);
  bool any_differ = false;
  for (int i = 0; i < 4; ++i) {
    const auto& a = shared.completions[i];
    const auto& b = separate.completions[i];
    EXPECT_EQ(a.generation_index, i);
    EXPECT_EQ(a.ids, b.ids) << "sample " << i;
    for (size_t k = 0; k < std::min(a.logprobs.size(), b.logprobs.size()); ++k)
      EXPECT_NEAR(a.logprobs[k], b.logprobs[k], 1e-4);
    if (a.ids != shared.completions[0].ids) any_differ = true;
  }
  EXPECT_TRUE(any_differ) << "the G samples of one prompt should not all be identical";
}

TEST(Generate, FixedSeedReproducesAndSeedChangesSamples) {
  const auto& f = fixture("A");
  auto a = generate(tiny_model(), {f.prompt, text_prompt()}, sampled(10, 2, 123));
  auto b = generate(tiny_model(), {f.prompt, text_prompt()}, sampled(10, 2, 123));
  auto c = generate(tiny_model(), {f.prompt, text_prompt()}, sampled(10, 2, 124));
  bool differs = false;
  for (size_t i = 0; i < a.completions.size(); ++i) {
    EXPECT_EQ(a.completions[i].ids, b.completions[i].ids);
    EXPECT_EQ(a.completions[i].logprobs, b.completions[i].logprobs);
    differs = differs || a.completions[i].ids != c.completions[i].ids;
  }
  EXPECT_TRUE(differs);
}

TEST(Generate, EosStopsRowsAndCompactionDoesNotChangeResults) {
  const auto& f = fixture("C");
  // Find ids that the unstopped samples emit, then declare one of them a stop token.
  auto free_run = generate(tiny_model(), {f.prompt}, sampled(12, 6, 77));
  const int64_t stop_id = free_run.completions[0].ids[3];
  auto cfg = sampled(12, 6, 77);
  cfg.stop_token_ids = {stop_id};
  GenerateOptions compact;
  compact.compact_fraction = 0.01;  // compact as soon as one row is done
  GenerateOptions never;
  never.compact_fraction = 2.0;
  auto a = generate(tiny_model(), {f.prompt}, cfg, compact);
  auto b = generate(tiny_model(), {f.prompt}, cfg, never);
  EXPECT_GT(a.stats.compactions, 0);
  EXPECT_EQ(b.stats.compactions, 0);
  EXPECT_LT(a.stats.decoded_rows, b.stats.decoded_rows);
  for (size_t i = 0; i < a.completions.size(); ++i) {
    const auto& ca = a.completions[i];
    EXPECT_EQ(ca.ids, b.completions[i].ids) << i;
    EXPECT_EQ(ca.finish_reason, b.completions[i].finish_reason);
    // Each completion is the free run cut right after the first stop id.
    const auto& full = free_run.completions[i].ids;
    auto it = std::find(full.begin(), full.end(), stop_id);
    if (it == full.end()) {
      EXPECT_EQ(ca.ids, full);
      EXPECT_EQ(ca.finish_reason, FinishReason::kLength);
    } else {
      EXPECT_EQ(ca.ids, std::vector<int64_t>(full.begin(), it + 1));
      EXPECT_EQ(ca.finish_reason, FinishReason::kEos);
    }
  }
  EXPECT_LE(a.completions[0].ids.size(), 4u);
}

TEST(Generate, StopStringEndsCompletion) {
  const auto& f = fixture("A");
  auto free_run = generate(tiny_model(), {f.prompt}, greedy(8));
  const auto& ids = free_run.completions[0].ids;  // 2020 2270 1488 ...
  auto cfg = greedy(8);
  // Decoder: each id becomes "<id>"; the stop string spans the end of token 1 and token 2.
  cfg.stop_strings = {std::to_string(ids[1]) + "><" + std::to_string(ids[2]).substr(0, 2)};
  GenerateOptions opt;
  opt.decode = [](const std::vector<int64_t>& v) {
    std::string s;
    for (auto id : v) s += "<" + std::to_string(id) + ">";
    return s;
  };
  auto r = generate(tiny_model(), {f.prompt}, cfg, opt);
  EXPECT_EQ(r.completions[0].finish_reason, FinishReason::kStop);
  EXPECT_EQ(r.completions[0].ids, std::vector<int64_t>(ids.begin(), ids.begin() + 3));
}

// The per-step hook runs once before each decode forward, and an exception it throws ends the
// generation (how the server abandons a request whose client went away).
TEST(Generate, BeforeStepRunsEachDecodeStepAndCanAbandon) {
  const auto& f = fixture("A");
  int64_t calls = 0;
  GenerateOptions counting;
  counting.before_step = [&] { ++calls; };
  auto r = generate(tiny_model(), {f.prompt}, greedy(8), counting);
  EXPECT_EQ(calls, r.stats.decode_steps);
  EXPECT_GT(calls, 0);
  struct Abandoned {};
  int64_t seen = 0;
  GenerateOptions abandon;
  abandon.before_step = [&] {
    if (++seen == 3) throw Abandoned();
  };
  EXPECT_THROW(generate(tiny_model(), {f.prompt}, greedy(8), abandon), Abandoned);
  EXPECT_EQ(seen, 3);
}

TEST(PadCompletions, RightPadsWithMask) {
  Completion a, b;
  a.ids = {5, 6, 7};
  a.logprobs = {-1, -2, -3};
  b.ids = {9};
  b.logprobs = {-0.5};
  auto p = pad_completions({a, b}, kPad);
  EXPECT_TRUE(torch::equal(p.completion_ids, torch::tensor(std::vector<int64_t>{5, 6, 7, 9, kPad, kPad}).view({2, 3})));
  EXPECT_TRUE(torch::equal(p.completion_mask, torch::tensor(std::vector<int64_t>{1, 1, 1, 1, 0, 0}).view({2, 3})));
  EXPECT_FLOAT_EQ(p.logprobs[1][0].item<float>(), -0.5f);
  EXPECT_FLOAT_EQ(p.logprobs[1][2].item<float>(), 0.0f);
}

}  // namespace
}  // namespace refract::generate
