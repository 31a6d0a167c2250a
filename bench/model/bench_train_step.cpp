// One training step (forward + backward) of a preset model on this machine, in one precision /
// memory variant per process, so the process's peak RSS is that variant's:
//   bench_train_step [--preset small] [--variant fp32|bf16|ckpt|bf16+ckpt] [--batch 2] [--text 64]
//                    [--threads 2] [--reps 3]
// Each sequence is `text` tokens around one 448x448 image (256 image tokens). Prints the median
// step time, tokens/s, achieved GFLOP/s (6 x parameters x tokens + attention), the machine's
// measured GEMM peak in the same precision (a 2048^3 matmul) and the model FLOP utilisation
// (MFU) against it, and the peak RSS. bench/model/train_step.sh runs every variant.
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "bench_cli.h"
#include "median_time.h"
#include "model/autocast.h"
#include "model/init.h"
#include "model/qwen2_5_vl.h"
#include "model_preset.h"

using namespace refract::model;
using refract::bench::median_ms;

namespace {

// GFLOP/s of a square matmul in `dtype`: the attainable peak the MFU is measured against.
double gemm_peak_gflops(torch::ScalarType dtype, int reps) {
  const int64_t n = 2048;
  auto a = torch::randn({n, n}).to(dtype), b = torch::randn({n, n}).to(dtype);
  const double ms = median_ms(reps, [&] { torch::mm(a, b); });
  return 2.0 * n * n * n / (ms * 1e6);
}

double peak_rss_mib() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, reps = 3, batch = 2, text = 64;
  std::string preset = "small", variant = "fp32";
  CLI::App app{"Training step (forward + backward) throughput, MFU and peak RSS of one variant.", "bench_train_step"};
  app.add_option("--preset", preset, "model preset of `refract model init`")
      ->check(refract::bench::model_preset())
      ->capture_default_str();
  app.add_option("--variant", variant, "precision / memory variant")
      ->check(CLI::IsMember({"fp32", "bf16", "ckpt", "bf16+ckpt"}))
      ->capture_default_str();
  app.add_option("--batch", batch, "sequences per step")->check(refract::bench::positive_int())->capture_default_str();
  app.add_option("--text", text, "text tokens per sequence (besides 256 image tokens)")
      ->check(refract::bench::positive_int())
      ->capture_default_str();
  app.add_option("--threads", threads, "libtorch CPU threads")->check(refract::bench::positive_int())->capture_default_str();
  app.add_option("--reps", reps, "timed steps; the median is reported")
      ->check(refract::bench::positive_int())
      ->capture_default_str();
  if (const int code = refract::bench::parse_args(app, argc, argv); code >= 0) return code;
  at::set_num_threads(threads);
  const bool bf16 = variant.find("bf16") != std::string::npos;
  const bool ckpt = variant.find("ckpt") != std::string::npos;

  const double rss_start = peak_rss_mib();
  Qwen2_5_VLConfig c = preset_config(preset);
  Qwen2_5_VL m(c);
  init_weights(*m, 0);
  m->train();
  m->set_gradient_checkpointing(ckpt);
  const int64_t params = count_parameters(*m);
  const int64_t n_img = 256;
  auto grid = torch::tensor(std::vector<int64_t>{1, 32, 32}).view({1, 3}).repeat({batch, 1});
  auto pix = torch::randn({1024 * batch, c.vision_config.patch_dim()});
  std::vector<int64_t> ids(text / 2, 5);
  ids.push_back(c.vision_start_token_id);
  ids.insert(ids.end(), n_img, c.image_token_id);
  ids.insert(ids.end(), text - text / 2, 7);
  const int64_t s = static_cast<int64_t>(ids.size());
  auto input_ids = torch::tensor(ids).view({1, s}).repeat({batch, 1});
  const double step_ms = median_ms(reps, [&] {
    m->zero_grad();
    ModelOutput out;
    {
      AutocastScope autocast(torch::kCPU, bf16);
      out = m->forward(input_ids, torch::Tensor(), pix, grid);
    }
    // The SFT loss's shape: fp32 log-softmax over the whole vocabulary at every position.
    auto lp = torch::log_softmax(out.logits.to(torch::kFloat32), -1);
    lp.select(-1, 7).mean().neg().backward();
  });
  const double tokens = static_cast<double>(batch * s);
  // Training FLOPs: 6 per parameter per token (forward 2, backward 4), + the same rule for the
  // attention score / value products (text decoder over s positions; vision blocks over 1024
  // patches per image, windowed or not counted as full: an upper bound).
  const double attn = 6.0 * 2.0 * c.num_hidden_layers * c.hidden_size * static_cast<double>(s) * tokens / 2.0;
  const double flops = 6.0 * static_cast<double>(params) * tokens + attn;
  const double achieved = flops / (step_ms * 1e6);
  const double peak = gemm_peak_gflops(bf16 ? torch::kBFloat16 : torch::kFloat32, 3);
  std::printf("preset %s, variant %s, batch %d x %lld tokens (%lld image), %d threads, libtorch %s\n", preset.c_str(),
              variant.c_str(), batch, static_cast<long long>(s), static_cast<long long>(n_img), threads, TORCH_VERSION);
  std::printf("%-10s %12s %10s %12s %14s %8s %14s\n", "variant", "step(ms)", "tok/s", "GFLOP/s", "GEMM peak", "MFU", "peak RSS(MiB)");
  std::printf("%-10s %12.0f %10.1f %12.1f %14.1f %7.1f%% %14.0f\n", variant.c_str(), step_ms, tokens / (step_ms / 1e3),
              achieved, peak, 100.0 * achieved / peak, peak_rss_mib());
  std::printf("(params %.1f M; process RSS before the model %.0f MiB)\n", params / 1e6, rss_start);
  return 0;
}
