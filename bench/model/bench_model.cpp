// Model throughput on this CPU: vision tower, prefill, decode step, training forward+backward,
// for the tiny and small presets. Prints medians (ms) of a few repetitions.
//   bench_model [--threads 2] [--reps 5] [--presets tiny,small]
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "bench_cli.h"
#include "median_time.h"
#include "model/init.h"
#include "model/qwen2_5_vl.h"
#include "model_preset.h"

using namespace refract::model;
using refract::bench::median_ms;

int main(int argc, char** argv) {
  int threads = 2, reps = 5;
  std::vector<std::string> presets = {"tiny", "small"};
  CLI::App app{"Model throughput on this CPU: vision tower, prefill, decode step, training step.", "bench_model"};
  app.add_option("--threads", threads, "libtorch CPU threads")
      ->check(refract::bench::positive_int())
      ->capture_default_str();
  app.add_option("--reps", reps, "timed repetitions per figure (training: half); the median is reported")
      ->check(refract::bench::positive_int())
      ->capture_default_str();
  app.add_option("--presets", presets, "model presets of `refract model init`, comma-separated")
      ->delimiter(',')
      ->check(refract::bench::model_preset())
      ->default_str("tiny,small");
  if (const int code = refract::bench::parse_args(app, argc, argv); code >= 0) return code;
  at::set_num_threads(threads);
  std::printf("threads %d, reps %d, fp32 CPU, image 448x448 (grid 1x32x32 = 1024 patches, 256 tokens)\n", threads, reps);
  std::printf("%-6s %10s %12s %12s %14s %16s\n", "preset", "params(M)", "vision(ms)", "prefill(ms)", "decode(ms/tok)",
              "train f+b(ms)");
  for (const std::string& preset : presets) {
    Qwen2_5_VLConfig c = preset_config(preset);
    c.vocab_size = 4096;
    c.vision_start_token_id = 4000;
    c.image_token_id = 4001;
    Qwen2_5_VL m(c);
    init_weights(*m, 0);
    m->eval();
    const int64_t n_img = 256, text = 64;
    auto grid = torch::tensor(std::vector<int64_t>{1, 32, 32}).view({1, 3});
    auto pix = torch::randn({1024, c.vision_config.patch_dim()});
    std::vector<int64_t> ids(text / 2, 5);
    ids.push_back(4000);
    ids.insert(ids.end(), n_img, 4001);
    ids.insert(ids.end(), text / 2, 7);
    const int64_t s = static_cast<int64_t>(ids.size());
    auto input_ids = torch::tensor(ids).view({1, s});
    double vision, prefill, decode, train;
    {
      torch::NoGradGuard g;
      vision = median_ms(reps, [&] { m->encode_images(pix, grid); });
      auto emb = m->encode_images(pix, grid);
      prefill = median_ms(reps, [&] {
        ModelInputs in;
        in.input_ids = input_ids;
        in.image_embeds = emb;
        in.image_grid_thw = grid;
        in.logits_to_keep = 1;
        m->forward(in);
      });
      const int64_t steps = 16;
      decode = median_ms(reps, [&] {
        KVCache cache = m->make_cache(1, s + steps);
        ModelInputs in;
        in.input_ids = input_ids;
        in.image_embeds = emb;
        in.image_grid_thw = grid;
        in.logits_to_keep = 1;
        auto out = m->forward(in, &cache);
        auto next = torch::full({1, 1}, 9, torch::kLong);
        for (int64_t k = 0; k < steps; ++k) m->forward_decode(next, torch::ones({1, s + k + 1}, torch::kLong), out.rope_deltas, cache);
      });
      decode = (decode - prefill) / static_cast<double>(steps);
    }
    m->train();
    train = median_ms(std::max(1, reps / 2), [&] {
      m->zero_grad();
      auto out = m->forward(input_ids, torch::Tensor(), pix, grid, nullptr, 64);
      out.logits.logsumexp(-1).mean().backward();
    });
    std::printf("%-6s %10.1f %12.1f %12.1f %14.2f %16.1f\n", preset.c_str(), count_parameters(*m) / 1e6, vision, prefill, decode,
                train);
  }
  return 0;
}
