// `refract eval`'s generation two ways in one process, alternating repetitions:
//   fixed   fixed batches of --batch prompts through generate() (what eval did before it moved
//           onto the serving engine), each batch running to its longest completion;
//   engine  train::generate_for_eval: the serving engine's continuous batch (generate::decode_all,
//           prompts joining in groups prefilled together, at most --batch rows).
// Prints the median process CPU seconds (robust on a shared machine) and wall seconds of each,
// the load average, the engine's decode steps, and whether both give the same greedy
// predictions.
//
//   bench_eval_engine --model assets/demo_warm_start --data_file_paths rec.jsonl --image_folders DIR
//                     [--batch 16] [--max_new_tokens 64] [--reps 3] [--threads 2]
//
// Data: e.g. `refract data synth --task rec --num_samples 48 --seed 1000003 --output DIR`
// (the shapes world; --question_template none as the demo evaluates).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "bench_cli.h"
#include "data/config.h"
#include "data/load.h"
#include "generate/generator.h"
#include "model/open_model.h"
#include "model/qwen2_5_vl.h"
#include "text/tokenizer.h"
#include "train/encode.h"
#include "train/evaluate.h"

namespace {

using namespace refract;

double cpu_s() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }
double wall_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}
double load_average() {
  double l = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &l) != 1) l = -1;
    std::fclose(f);
  }
  return l;
}

// The fixed-batch path eval took before (greedy): one generate() call per --batch prompts.
std::vector<std::vector<int32_t>> fixed_batches(const model::OpenedModel& m, const std::vector<data::Sample>& samples,
                                                int64_t batch, int64_t max_new_tokens, generate::GenerationStats* stats) {
  std::vector<std::vector<int32_t>> out;
  for (size_t s = 0; s < samples.size(); s += static_cast<size_t>(batch)) {
    const size_t e = std::min(samples.size(), s + static_cast<size_t>(batch));
    std::vector<generate::PromptInput> prompts;
    for (size_t i = s; i < e; ++i) {
      train::EncodedSample en = train::encode_sample(samples[i], m.tok(), m.processor, false);
      prompts.push_back(train::prompt_input(en));
    }
    generate::GenerationConfig gc;
    gc.max_new_tokens = max_new_tokens;
    gc.do_sample = false;
    gc.stop_token_ids = m.stop_token_ids;
    gc.pad_token_id = m.pad_token_id;
    const generate::GenerationResult r = generate::generate(*m.model.ptr(), prompts, gc);
    stats->decode_steps += r.stats.decode_steps;
    stats->prefill_cpu_seconds += r.stats.prefill_cpu_seconds;
    stats->decode_cpu_seconds += r.stats.decode_cpu_seconds;
    for (const auto& c : r.completions) out.emplace_back(c.ids.begin(), c.ids.end());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"refract eval's generation: fixed generate() batches vs the serving engine"};
  std::string model_dir, data_files, image_folders;
  int64_t batch = 16, max_new_tokens = 64, reps = 3, threads = 2;
  app.add_option("--model", model_dir, "model directory (required)");
  app.add_option("--data_file_paths", data_files, "REC JSONL (VLM-R1 layout) (required)");
  app.add_option("--image_folders", image_folders, "image root of the JSONL (required)");
  app.add_option("--batch", batch, "per_device_eval_batch_size")->check(bench::positive_int());
  app.add_option("--max_new_tokens", max_new_tokens, "completion cap")->check(bench::positive_int());
  app.add_option("--reps", reps, "timed repetitions of each path (alternating)")->check(bench::positive_int());
  app.add_option("--threads", threads, "torch threads")->check(bench::positive_int());
  if (int code = bench::parse_args(app, argc, argv); code >= 0) return code;
  // Checked after parsing (not CLI11's required()), so an unknown flag is named before these.
  for (const auto& [flag, value] : {std::pair<const char*, std::string*>{"--model", &model_dir},
                                    {"--data_file_paths", &data_files}, {"--image_folders", &image_folders}})
    if (value->empty()) {
      std::fprintf(stderr, "%s: %s is required (see --help)\n", app.get_name().c_str(), flag);
      return 2;
    }

  model::ModelSettings ms;
  ms.model_name_or_path = model_dir;
  ms.threads = threads;
  const model::OpenedModel m = model::open_model(ms);
  data::DataConfig dc;
  dc.data_file_paths = data_files;
  dc.image_folders = image_folders;
  dc.question_template = "none";
  const std::vector<data::Sample> samples = data::load_dataset(dc).samples;
  m.model.ptr()->eval();

  train::EvalGeneration g;
  g.batch_size = batch;
  g.max_new_tokens = max_new_tokens;
  std::vector<double> cpu_fixed, cpu_engine, wall_fixed, wall_engine;
  std::vector<std::vector<int32_t>> fixed, engine;
  generate::GenerationStats fixed_stats;
  const double load0 = load_average();
  for (int64_t r = 0; r <= reps; ++r) {  // r = 0: warm-up, not timed
    double c0 = cpu_s(), w0 = wall_s();
    fixed_stats = generate::GenerationStats();
    fixed = fixed_batches(m, samples, batch, max_new_tokens, &fixed_stats);
    if (r > 0) cpu_fixed.push_back(cpu_s() - c0), wall_fixed.push_back(wall_s() - w0);
    c0 = cpu_s(), w0 = wall_s();
    const auto got = train::generate_for_eval(m, samples, g);
    if (r > 0) cpu_engine.push_back(cpu_s() - c0), wall_engine.push_back(wall_s() - w0);
    engine.clear();
    for (const auto& k : got) engine.push_back(k[0].ids);
  }
  int64_t same = 0, tokens = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    same += fixed[i] == engine[i];
    tokens += static_cast<int64_t>(fixed[i].size());
  }
  std::printf("%zu samples, batch %lld, max_new_tokens %lld, %lld threads, %lld reps; load average %.2f -> %.2f\n",
              samples.size(), static_cast<long long>(batch), static_cast<long long>(max_new_tokens),
              static_cast<long long>(threads), static_cast<long long>(reps), load0, load_average());
  std::printf("%-8s | %-16s | %-17s | %s\n", "path", "median CPU s", "median wall s", "notes");
  std::printf("%-8s | %16.2f | %17.2f | %lld decode steps, %lld completion tokens; last rep: prefill %.2f s, decode %.2f s CPU\n",
              "fixed", median(cpu_fixed), median(wall_fixed), static_cast<long long>(fixed_stats.decode_steps),
              static_cast<long long>(tokens), fixed_stats.prefill_cpu_seconds, fixed_stats.decode_cpu_seconds);
  std::printf("%-8s | %16.2f | %17.2f | engine / fixed CPU %.2fx\n", "engine", median(cpu_engine), median(wall_engine),
              median(cpu_engine) / median(cpu_fixed));
  std::printf("identical greedy predictions: %lld / %zu\n", static_cast<long long>(same), samples.size());
  return same == static_cast<int64_t>(samples.size()) ? 0 : 1;
}
