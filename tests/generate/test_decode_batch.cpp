// Continuous batching (DecodeBatch) against generate() and against a full forward pass without
// cache: requests that join a running batch at different steps, with prompts longer and
// shorter than the batch (both shift directions), each with its own sampling settings, give
// exactly the completions they give alone, and every token's raw log-probs equal the full
// recompute of prompt + completion (positions, padding and rope_deltas survive the shifts).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "generate/decode_batch.h"
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

PromptInput fixture_prompt(const std::string& name) {
  auto t = io::load_tensors(kDir + "/" + name + "/expected.safetensors");
  PromptInput p;
  auto ids = t.at("input_ids")[0].contiguous();
  p.input_ids.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  p.pixel_values = t.at("pixel_values");
  p.image_grid_thw = t.at("image_grid_thw");
  return p;
}

PromptInput text_prompt() {
  PromptInput p;
  p.input_ids = {4001, 950, 198, 2610, 525, 4002, 198, 4001, 1110, 198};
  return p;
}

// Token text for stop strings: one character per id (enough to make stops fire).
std::string fake_decode(const std::vector<int64_t>& ids) {
  std::string s;
  for (int64_t id : ids) s.push_back(static_cast<char>('a' + id % 26));
  return s;
}

// The text of the 3rd greedy token after text_prompt(): a stop string that fires at step 3.
std::string third_token_text() {
  static const std::string text = [] {
    GenerationConfig g;
    g.do_sample = false;
    g.max_new_tokens = 3;
    g.stop_token_ids = {kEos, kPad};
    const auto r = generate(tiny_model(), {text_prompt()}, g);
    return fake_decode({r.completions[0].ids.back()});
  }();
  return text;
}

struct Req {
  PromptInput prompt;
  RowConfig config;
  int64_t n = 1;
  int64_t join_at = 0;  // decode step before which it is added
};

RowConfig row_config(bool sample, int64_t max_new, int64_t seed) {
  RowConfig c;
  c.sampling.do_sample = sample;
  c.max_new_tokens = max_new;
  c.seed = seed;
  c.stop_token_ids = {kEos, kPad};
  c.top_logprobs = 3;
  return c;
}

std::vector<Req> mixed_requests() {
  std::vector<Req> reqs(4);
  reqs[0] = {fixture_prompt("A"), row_config(true, 12, 5), 2, 0};  // 31 tokens, image
  reqs[0].config.sampling.temperature = 0.8;
  reqs[0].config.sampling.top_k = 50;
  reqs[1] = {fixture_prompt("C"), row_config(false, 9, 0), 1, 3};  // 93 tokens: running rows shift right
  reqs[1].config.sampling.repetition_penalty = 1.3;
  reqs[2] = {text_prompt(), row_config(true, 10, 77), 1, 5};       // 10 tokens: padded on the left
  reqs[2].config.sampling.top_p = 0.9;
  reqs[2].config.sampling.min_p = 0.05;
  reqs[2].config.sampling.temperature = 1.3;
  reqs[3] = {text_prompt(), row_config(false, 6, 0), 1, 5};
  reqs[3].config.stop_strings = {third_token_text()};
  return reqs;
}

// Runs the requests through one DecodeBatch, each joining before step join_at; returns the
// completions per request (index g) and the largest batch seen.
std::vector<std::vector<Completion>> run(const std::vector<Req>& reqs, int64_t* max_rows = nullptr,
                                         int64_t remove_request = -1, int64_t remove_at = -1) {
  DecodeBatch batch(tiny_model(), fake_decode);
  std::vector<std::vector<Completion>> out(reqs.size());
  std::vector<int64_t> ids(reqs.size(), -1);
  size_t added = 0;
  int64_t biggest = 0;
  for (int64_t step = 0; added < reqs.size() || !batch.empty(); ++step) {
    for (size_t r = 0; r < reqs.size(); ++r) {
      if (ids[r] >= 0 || reqs[r].join_at > step) continue;
      out[r].resize(reqs[r].n);
      ids[r] = batch.add(reqs[r].prompt, reqs[r].config, reqs[r].n,
                         [&out, r](int64_t g, const Completion& c, bool finished) {
                           if (finished) out[r][g] = c;
                         });
      ++added;
    }
    if (step == remove_at) batch.remove(ids[remove_request]);
    biggest = std::max(biggest, batch.rows());
    batch.step();
  }
  if (max_rows) *max_rows = biggest;
  return out;
}

TEST(DecodeBatch, AloneEqualsGenerate) {
  for (const Req& r : mixed_requests()) {
    GenerationConfig g;
    g.do_sample = r.config.sampling.do_sample;
    g.temperature = r.config.sampling.temperature;
    g.top_k = r.config.sampling.top_k;
    g.top_p = r.config.sampling.top_p;
    g.min_p = r.config.sampling.min_p;
    g.repetition_penalty = r.config.sampling.repetition_penalty;
    g.seed = r.config.seed;
    g.max_new_tokens = r.config.max_new_tokens;
    g.stop_token_ids = r.config.stop_token_ids;
    g.stop_strings = r.config.stop_strings;
    g.num_generations = r.n;
    g.pad_token_id = kPad;
    GenerateOptions opt;
    opt.decode = fake_decode;
    const GenerationResult expect = generate(tiny_model(), {r.prompt}, g, opt);
    Req alone = r;
    alone.join_at = 0;
    const auto got = run({alone});
    ASSERT_EQ(got[0].size(), expect.completions.size());
    for (size_t k = 0; k < got[0].size(); ++k) {
      EXPECT_EQ(got[0][k].ids, expect.completions[k].ids) << "prompt of " << r.prompt.input_ids.size() << " tokens";
      EXPECT_EQ(got[0][k].finish_reason, expect.completions[k].finish_reason);
      ASSERT_EQ(got[0][k].logprobs.size(), expect.completions[k].logprobs.size());
      for (size_t t = 0; t < got[0][k].logprobs.size(); ++t)
        EXPECT_NEAR(got[0][k].logprobs[t], expect.completions[k].logprobs[t], 1e-4);
    }
  }
}

TEST(DecodeBatch, JoiningALoadedBatchChangesNoCompletion) {
  const std::vector<Req> reqs = mixed_requests();
  int64_t max_rows = 0;
  const auto batched = run(reqs, &max_rows);
  EXPECT_EQ(max_rows, 5) << "all requests were in the batch together at some step";
  bool some_stop = false;
  for (size_t r = 0; r < reqs.size(); ++r) {
    Req alone = reqs[r];
    alone.join_at = 0;
    const auto one = run({alone});
    ASSERT_EQ(batched[r].size(), one[0].size());
    for (size_t g = 0; g < one[0].size(); ++g) {
      SCOPED_TRACE("request " + std::to_string(r) + " choice " + std::to_string(g));
      EXPECT_EQ(batched[r][g].ids, one[0][g].ids);
      EXPECT_EQ(batched[r][g].finish_reason, one[0][g].finish_reason);
      some_stop = some_stop || one[0][g].finish_reason == FinishReason::kStop;
    }
  }
  EXPECT_TRUE(some_stop) << "the stop-string request should stop on its stop string";
}

// The raw log-probs of every token of every row equal a cache-free forward of its own prompt +
// completion: the shifted caches, masks and rope_deltas are exactly the row's own sequence.
TEST(DecodeBatch, EveryTokenEqualsAFullRecompute) {
  const std::vector<Req> reqs = mixed_requests();
  const auto batched = run(reqs);
  torch::NoGradGuard ng;
  for (size_t r = 0; r < reqs.size(); ++r) {
    for (size_t g = 0; g < batched[r].size(); ++g) {
      SCOPED_TRACE("request " + std::to_string(r) + " choice " + std::to_string(g));
      const Completion& c = batched[r][g];
      ASSERT_EQ(c.raw_logprobs.size(), c.ids.size());
      std::vector<int64_t> seq = reqs[r].prompt.input_ids;
      seq.insert(seq.end(), c.ids.begin(), c.ids.end());
      model::ModelInputs in;
      const torch::Device device = tiny_model().device();
      in.input_ids = torch::tensor(seq, torch::kLong).unsqueeze(0).to(device);
      if (reqs[r].prompt.pixel_values.defined()) in.pixel_values = reqs[r].prompt.pixel_values.to(device);
      in.image_grid_thw = reqs[r].prompt.image_grid_thw;
      const torch::Tensor lp = tiny_model().forward(in).logits[0].cpu().log_softmax(-1);
      const int64_t p = int64_t(reqs[r].prompt.input_ids.size());
      for (size_t t = 0; t < c.ids.size(); ++t) {
        const torch::Tensor row = lp[p - 1 + int64_t(t)];
        EXPECT_NEAR(c.raw_logprobs[t].logprob, row[c.ids[t]].item<float>(), 1e-4) << "token " << t;
        const auto top = row.topk(3);
        ASSERT_EQ(c.raw_logprobs[t].top.size(), 3u);
        for (int64_t k = 0; k < 3; ++k) {
          EXPECT_EQ(c.raw_logprobs[t].top[k].id, std::get<1>(top)[k].item<int64_t>()) << "token " << t;
          EXPECT_NEAR(c.raw_logprobs[t].top[k].logprob, std::get<0>(top)[k].item<float>(), 1e-4);
        }
      }
    }
  }
}

// A request removed mid-way (its client left) takes its rows and its long prompt's columns
// with it; the others are unaffected.
TEST(DecodeBatch, RemovingARequestLeavesTheOthersUnchanged) {
  const std::vector<Req> reqs = mixed_requests();
  const auto all = run(reqs);
  const auto without = run(reqs, nullptr, /*remove_request=*/1, /*remove_at=*/6);
  EXPECT_TRUE(without[1][0].ids.size() < all[1][0].ids.size() || all[1][0].ids.size() <= 3);
  for (size_t r : {0u, 2u, 3u})
    for (size_t g = 0; g < all[r].size(); ++g) EXPECT_EQ(without[r][g].ids, all[r][g].ids) << "request " << r;
}

// Batched prefill: requests of different lengths (with and without images), greedy, seeded
// sampling, n = 2, a repetition penalty and a stop string, added in ONE add() (one left-padded
// prefill, one join) into an empty batch and into a running one, give exactly the completions
// each gives alone; their raw log-probs equal the alone run's.
TEST(DecodeBatch, BatchedPrefillEqualsOneAtATime) {
  const std::vector<Req> reqs = mixed_requests();
  std::vector<std::vector<Completion>> alone;
  for (const Req& r : reqs) {
    Req a = r;
    a.join_at = 0;
    alone.push_back(run({a})[0]);
  }
  for (const bool into_running : {false, true}) {
    SCOPED_TRACE(into_running ? "joining a running batch" : "into an empty batch");
    DecodeBatch batch(tiny_model(), fake_decode);
    std::vector<std::vector<Completion>> out(reqs.size() + 1);
    auto keep = [&out](size_t r) {
      return [&out, r](int64_t g, const Completion& c, bool finished) {
        if (finished) out[r][g] = c;
      };
    };
    out[reqs.size()].resize(1);
    if (into_running) {  // a long request already decoding: the new rows are shorter and padded
      batch.add(fixture_prompt("C"), row_config(false, 30, 0), 1, keep(reqs.size()));
      batch.step();
      batch.step();
    }
    std::vector<DecodeBatch::NewRequest> group;
    for (size_t r = 0; r < reqs.size(); ++r) {
      out[r].resize(reqs[r].n);
      group.push_back({&reqs[r].prompt, reqs[r].config, reqs[r].n, keep(r)});
    }
    const int64_t joins_before = batch.joins();
    const std::vector<int64_t> ids = batch.add(group);
    EXPECT_EQ(batch.joins(), joins_before + 1) << "one prefill and one cache copy for the group";
    ASSERT_EQ(ids.size(), reqs.size());
    EXPECT_EQ(batch.rows(), 5 + (into_running ? 1 : 0));
    while (!batch.empty()) batch.step();
    for (size_t r = 0; r < reqs.size(); ++r)
      for (size_t g = 0; g < alone[r].size(); ++g) {
        SCOPED_TRACE("request " + std::to_string(r) + " choice " + std::to_string(g));
        EXPECT_EQ(out[r][g].ids, alone[r][g].ids);
        EXPECT_EQ(out[r][g].finish_reason, alone[r][g].finish_reason);
        ASSERT_EQ(out[r][g].raw_logprobs.size(), alone[r][g].raw_logprobs.size());
        for (size_t t = 0; t < out[r][g].raw_logprobs.size(); ++t)
          EXPECT_NEAR(out[r][g].raw_logprobs[t].logprob, alone[r][g].raw_logprobs[t].logprob, 1e-4);
      }
  }
}

// decode_all (eval's path: prompts admitted in groups as rows free up) against generate() of
// the same prompts in one call: greedy completions equal; seeded sampled ones too when each
// request takes generate()'s stream (first_stream = p * G) and the call's seed.
TEST(DecodeBatch, DecodeAllEqualsGenerate) {
  const std::vector<PromptInput> prompts = {fixture_prompt("A"), text_prompt(), fixture_prompt("C"),
                                            fixture_prompt("A"), text_prompt()};
  for (const bool sample : {false, true}) {
    SCOPED_TRACE(sample ? "sampled, G = 2" : "greedy");
    GenerationConfig g;
    g.do_sample = sample;
    g.temperature = 1.2;
    g.seed = 42;
    g.max_new_tokens = 10;
    g.stop_token_ids = {kEos, kPad};
    g.num_generations = sample ? 2 : 1;
    g.pad_token_id = kPad;
    const GenerationResult expect = generate(tiny_model(), prompts, g);
    auto make = [&](size_t p) {
      DecodeRequest q;
      q.prompt = prompts[p];
      q.config = row_config(sample, g.max_new_tokens, g.seed);
      q.config.sampling.temperature = g.temperature;
      q.config.first_stream = static_cast<int64_t>(p) * g.num_generations;
      q.num_generations = g.num_generations;
      return q;
    };
    // At most 4 rows, groups of >= 2: later prompts join a running batch, some together.
    const auto got = decode_all(tiny_model(), prompts.size(), make, /*max_num_seqs=*/4, fake_decode, /*join_rows=*/2);
    for (size_t p = 0; p < prompts.size(); ++p)
      for (int64_t k = 0; k < g.num_generations; ++k) {
        SCOPED_TRACE("prompt " + std::to_string(p) + " completion " + std::to_string(k));
        const Completion& e = expect.completions[p * g.num_generations + k];
        EXPECT_EQ(got[p][k].ids, e.ids);
        EXPECT_EQ(got[p][k].finish_reason, e.finish_reason);
        EXPECT_EQ(got[p][k].prompt_index, static_cast<int64_t>(p));
      }
  }
}

TEST(DecodeBatch, DropsColumnsNoRowUsesAnyMore) {
  DecodeBatch batch(tiny_model(), fake_decode);
  const int64_t short_id = batch.add(text_prompt(), row_config(false, 40, 0), 1, {});
  (void)short_id;
  const int64_t long_id = batch.add(fixture_prompt("C"), row_config(false, 40, 0), 1, {});
  batch.step();
  EXPECT_EQ(batch.length(), 94);  // 93 + 1: the short prompt is left-padded to the long one
  batch.remove(long_id);
  EXPECT_EQ(batch.rows(), 1);
  EXPECT_EQ(batch.length(), 11) << "the long prompt's padding columns are dropped with it";
  batch.step();
  EXPECT_EQ(batch.length(), 12);
}

}  // namespace
}  // namespace refract::generate
