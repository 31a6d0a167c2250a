// Rollout throughput: prefill and decode tokens/s of refract::generate on randomly
// initialised Qwen2.5-VL models (presets `tiny` and `small`), at several batch sizes,
// with model FLOP utilisation against a measured fp32 matmul peak, the weight bandwidth of a
// decode step against a measured memory read bandwidth, and the peak RSS.
//
//   bench_generate [--threads 2] [--presets tiny,small] [--batches 1,8,64]
//                  [--prompt_len 64] [--new_tokens 32] [--reps 2] [--gemv_rows 8]
//
// --gemv_rows 0,8 runs every row twice in the same process, with the BLAS path for all decode
// matmuls (0) and with the weight-streaming kernel up to 8 rows (model/gemv.h), and prints the
// ratio: each change measured against the other in one run.
//
// Prompts are text-only (so the FLOP count is exact); decode samples with temperature 1
// and no stop token, so every row runs the full --new_tokens.
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_cli.h"
#include "generate/generator.h"
#include "model/init.h"
#include "model/layers.h"
#include "model/qwen2_5_vl.h"
#include "model_preset.h"

namespace {

using namespace refract;
using Clock = std::chrono::steady_clock;

double now_s() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }
// Process CPU seconds (all threads). On a shared machine wall time mostly measures the other
// tenants; CPU time / threads is what the run would take with the cores to itself.
double cpu_s() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Peak RSS since the last reset_peak_rss() (VmHWM; writing "5" to clear_refs resets it, Linux
// >= 4.0), so each configuration reports its own peak, not the process's running maximum.
// Falls back to ru_maxrss when /proc is unavailable.
void reset_peak_rss() {
  if (FILE* f = std::fopen("/proc/self/clear_refs", "w")) {
    std::fputs("5", f);
    std::fclose(f);
  }
}

double max_rss_mib() {
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    double kib = -1;
    while (std::fgets(line, sizeof(line), f))
      if (std::strncmp(line, "VmHWM:", 6) == 0) kib = std::atof(line + 6);
    std::fclose(f);
    if (kib >= 0) return kib / 1024.0;
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // Linux: KiB
}

// The presets of `refract model init` (model/init.h) with the vocabulary of the Qwen
// tokenizer (151669 ids, untied lm_head): the lm_head and the sampler over ~152k logits are a
// large part of a small model's decode cost. Weights from init_weights (fan-in init).
model::Qwen2_5_VLConfig preset(const std::string& name) {
  model::Qwen2_5_VLConfig c = model::preset_config(name);
  c.vocab_size = 151669;
  return c;
}

// Multiply-adds x 2 of one token through the decoder at context length `ctx`
// (linear layers + attention scores and values), plus the lm_head when `logits`.
double flops_per_token(const model::Qwen2_5_VLConfig& c, double ctx, bool logits) {
  const double h = c.hidden_size, kv = c.num_key_value_heads * c.head_dim();
  const double linear = h * h * 2 + h * kv * 2 + 3 * h * c.intermediate_size;
  const double attn = 2 * ctx * c.num_attention_heads * c.head_dim();  // QK^T and PV
  double f = 2 * c.num_hidden_layers * (linear + attn);
  if (logits) f += 2 * h * c.vocab_size;
  return f;
}

// fp32 GEMM peak of this machine with the current thread setting (median of reps), by
// wall time and by CPU time / threads.
std::pair<double, double> measure_matmul_gflops(int64_t n, int reps, int64_t threads) {
  torch::NoGradGuard ng;
  auto a = torch::randn({n, n}), b = torch::randn({n, n});
  auto c = torch::mm(a, b);  // warm-up
  std::vector<double> t, ct;
  for (int i = 0; i < reps; ++i) {
    double t0 = now_s(), c0 = cpu_s();
    c = torch::mm(a, b);
    t.push_back(now_s() - t0);
    ct.push_back((cpu_s() - c0) / threads);
  }
  const double flop = 2.0 * n * n * n / 1e9;
  return {flop / median(t), flop / median(ct)};
}

// Memory read bandwidth (GB/s, by CPU time / threads like the tok/s) with the current thread
// setting: a sum over a 512 MiB float tensor (larger than this machine's last-level cache),
// median of reps. The limit of a decode step, which reads every weight once (bench_memory gives
// the STREAM figures).
double measure_read_gbs(int reps, int64_t threads) {
  torch::NoGradGuard ng;
  auto big = torch::ones({int64_t{128} << 20});
  auto s = big.sum();  // warm-up (page faults)
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    double c0 = cpu_s();
    s = big.sum();
    t.push_back((cpu_s() - c0) / threads);
  }
  return static_cast<double>(big.numel()) * 4 / median(t) / 1e9;
}

// Bytes of weights one decode step reads: every language-model matrix, norm and bias once, the
// lm_head (or the tied embedding) once, and of the embedding table only the looked-up rows
// (negligible, not counted). The vision tower is not used by a decode step.
double decode_weight_bytes(model::Qwen2_5_VLImpl& m) {
  double bytes = 0;
  for (const auto& p : m.named_parameters()) {
    if (p.key().rfind("visual.", 0) == 0 || p.key() == "model.embed_tokens.weight") continue;
    bytes += static_cast<double>(p.value().numel() * p.value().element_size());
  }
  if (!m.lm_head) bytes += static_cast<double>(m.language_model->embed_tokens->weight.numel() * 4);
  return bytes;
}

std::vector<generate::PromptInput> make_prompts(int64_t b, int64_t len, int64_t vocab, uint64_t seed) {
  auto gen = generate::make_generator(seed, 0);
  auto ids = torch::randint(0, std::min<int64_t>(vocab, 4000), {b, len}, gen, torch::kLong);
  std::vector<generate::PromptInput> out(b);
  for (int64_t i = 0; i < b; ++i) {
    auto row = ids[i].contiguous();
    out[i].input_ids.assign(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + len);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t threads = 2, prompt_len = 64, new_tokens = 32, reps = 2;
  std::vector<std::string> presets = {"tiny", "small"};
  std::vector<int64_t> batches = {1, 8, 64};
  std::vector<int64_t> gemv_rows = {model::gemv_fast_rows()};
  CLI::App app{"Rollout throughput (prefill / decode tokens/s, MFU, peak RSS) of refract::generate.",
               "bench_generate"};
  using refract::bench::positive_int;
  app.add_option("--threads", threads, "libtorch CPU threads")->check(positive_int())->capture_default_str();
  app.add_option("--presets", presets, "model presets of `refract model init`, comma-separated")
      ->delimiter(',')
      ->check(refract::bench::model_preset())
      ->default_str("tiny,small");
  app.add_option("--batches", batches, "prompts per generate call, comma-separated")
      ->delimiter(',')
      ->check(positive_int())
      ->default_str("1,8,64");
  app.add_option("--prompt_len", prompt_len, "prompt tokens")->check(positive_int())->capture_default_str();
  app.add_option("--new_tokens", new_tokens, "sampled tokens per prompt")->check(positive_int())->capture_default_str();
  app.add_option("--reps", reps, "timed runs per row; the median is reported")
      ->check(positive_int())
      ->capture_default_str();
  app.add_option("--gemv_rows", gemv_rows,
                 "rows up to which decode matmuls use the weight-streaming kernel (0 = BLAS only); "
                 "several values: each row runs with each, in this order, with the decode ratio to the first")
      ->delimiter(',')
      ->check(CLI::NonNegativeNumber)
      ->default_str(std::to_string(model::gemv_fast_rows()));
  if (const int code = refract::bench::parse_args(app, argc, argv); code >= 0) return code;
  torch::set_num_threads(static_cast<int>(threads));
  torch::manual_seed(0);
  const auto [peak_wall, peak] = measure_matmul_gflops(1536, 7, threads);
  const double read_gbs = measure_read_gbs(5, threads);
  std::printf("threads %ld, fp32, text prompts of %ld tokens, %ld new tokens (sampled, T=1), median of %ld reps\n",
              static_cast<long>(threads), static_cast<long>(prompt_len), static_cast<long>(new_tokens),
              static_cast<long>(reps));
  std::printf("fp32 matmul peak (1536^3 torch::mm): %.1f GFLOP/s by CPU time/threads (%.1f by wall time)\n",
              peak, peak_wall);
  std::printf("memory read bandwidth (torch sum over 512 MiB, CPU time/threads): %.1f GB/s\n", read_gbs);
  std::printf("tok/s by CPU time/threads (by wall time); MFU = model FLOP/s (CPU time) / matmul peak;\n"
              "weights GB/s = decode-step weight bytes x steps / decode CPU time/threads (%% of the read bandwidth);\n"
              "sample ms / lm_head ms: one decode step's sampler / lm_head alone (CPU time);\n"
              "gemv: rows up to which decode matmuls use model/gemv.h (0 = BLAS)\n\n");
  std::printf("%-6s %5s %4s | %21s %6s | %21s %6s | %14s | %9s %10s | %7s\n", "preset", "batch", "gemv",
              "prefill tok/s (wall)", "MFU", "decode tok/s (wall)", "MFU", "weights GB/s", "sample ms", "lm_head ms",
              "peak RSS MiB");

  for (const std::string& name : presets) {
    auto cfg = preset(name);
    model::Qwen2_5_VL m(cfg);
    model::init_weights(*m, /*seed=*/0);
    m->eval();
    const double weight_bytes = decode_weight_bytes(*m);
    for (int64_t b : batches) {
      double first_decode_tps = 0;
      for (size_t gi = 0; gi < gemv_rows.size(); ++gi) {
        model::set_gemv_fast_rows(gemv_rows[gi]);
        auto prompts = make_prompts(b, prompt_len, cfg.vocab_size, 1 + b);
        reset_peak_rss();  // this row's peak: weights + its caches and activations
        generate::GenerationConfig gc;
        gc.do_sample = true;
        gc.temperature = 1.0;
        gc.seed = 7;
        // Warm-up (allocator, thread pool) on one prompt, then `reps` timed runs; the prefill
        // and decode times come from the same run (GenerationStats).
        gc.max_new_tokens = 2;
        generate::generate(*m, {prompts[0]}, gc);
        gc.max_new_tokens = new_tokens;
        std::vector<double> pre, dec, pre_cpu, dec_cpu;
        double decoded = 0, steps = 0;
        for (int64_t r = 0; r < reps; ++r) {
          auto d = generate::generate(*m, prompts, gc);
          pre.push_back(d.stats.prefill_seconds);
          dec.push_back(d.stats.decode_seconds);
          pre_cpu.push_back(d.stats.prefill_cpu_seconds / threads);
          dec_cpu.push_back(d.stats.decode_cpu_seconds / threads);
          decoded = static_cast<double>(d.stats.decoded_rows);
          steps = static_cast<double>(d.stats.decode_steps);
        }
        const double pre_tps = b * prompt_len / median(pre_cpu);
        const double dec_tps = decoded / median(dec_cpu);
        const double pre_tps_wall = b * prompt_len / median(pre);
        const double dec_tps_wall = decoded / median(dec);
        // FLOPs: prefill tokens see on average half the prompt; decode tokens see the prompt
        // plus on average half the completion. Prefill computes the lm_head for one position.
        const double pre_flops = b * prompt_len * flops_per_token(cfg, prompt_len / 2.0, false) +
                                 b * 2.0 * cfg.hidden_size * cfg.vocab_size;
        const double dec_flops = decoded * flops_per_token(cfg, prompt_len + new_tokens / 2.0, true);
        const double pre_mfu = pre_flops / median(pre_cpu) / 1e9 / peak;
        const double dec_mfu = dec_flops / median(dec_cpu) / 1e9 / peak;
        // The sampler alone on [b, V] logits (part of the decode time above).
        std::vector<at::Generator> gens;
        for (int64_t i = 0; i < b; ++i) gens.push_back(generate::make_generator(1, i));
        auto logits = torch::randn({b, cfg.vocab_size});
        generate::SamplingConfig sc;
        std::vector<double> st;
        for (int i = 0; i < 5; ++i) {
          double c0 = cpu_s();
          generate::sample_next(logits, torch::Tensor(), sc, gens);
          st.push_back((cpu_s() - c0) / threads);
        }
        // The lm_head alone on [b, 1, H] (part of each decode step).
        std::vector<double> lt;
        {
          torch::NoGradGuard ng;
          auto h = torch::randn({b, 1, cfg.hidden_size});
          m->compute_logits(h);
          for (int i = 0; i < 5; ++i) {
            double c0 = cpu_s();
            m->compute_logits(h);
            lt.push_back((cpu_s() - c0) / threads);
          }
        }
        const double weight_gbs = weight_bytes * steps / median(dec_cpu) / 1e9;
        char pre_s[32], dec_s[32], bw_s[32];
        std::snprintf(pre_s, sizeof pre_s, "%.0f (%.0f)", pre_tps, pre_tps_wall);
        std::snprintf(dec_s, sizeof dec_s, "%.0f (%.0f)", dec_tps, dec_tps_wall);
        std::snprintf(bw_s, sizeof bw_s, "%.1f (%.0f%%)", weight_gbs, 100 * weight_gbs / read_gbs);
        std::printf("%-6s %5ld %4ld | %21s %5.1f%% | %21s %5.1f%% | %14s | %9.2f %10.2f | %7.0f", name.c_str(),
                    static_cast<long>(b), static_cast<long>(gemv_rows[gi]), pre_s, 100 * pre_mfu, dec_s,
                    100 * dec_mfu, bw_s, 1e3 * median(st), 1e3 * median(lt), max_rss_mib());
        if (gi == 0) first_decode_tps = dec_tps;
        else std::printf("   decode %.2fx gemv %ld", dec_tps / first_decode_tps, static_cast<long>(gemv_rows[0]));
        std::printf("\n");
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
