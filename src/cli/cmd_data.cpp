// `refract data synth|check`: the shapes world and the dataset validation report.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "common/check.h"
#include "common/options.h"
#include "data/config.h"
#include "data/shapes/synth.h"
#include "data/validate.h"
#include "train/config.h"
#include "train/dry_run.h"

namespace refract::cli {
namespace {

struct SynthCommand {
  data::shapes::SynthConfig cfg;
  Options options;
};

// `data check` declares the trainer's settings too, so that a training YAML (--config)
// is accepted as is and the data keys resolve exactly as they do in training.
struct CheckCommand {
  train::GrpoConfig cfg;
  int64_t sft_max_length = 0;  // SftConfig max_length: the samples SFT would drop are listed
  Options options;
};

}  // namespace

void add_data_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("data", "Datasets: generate the shapes world, validate data files");
  cmd->require_subcommand(1);

  auto synth = std::make_shared<SynthCommand>();
  auto* synth_cmd = cmd->add_subcommand(
      "synth",
      "Render a shapes-world split as VLM-R1 JSONL (+ COCO JSON for det) into --output: "
      "<task>_<split>.jsonl and images/<task>_<split>/NNNNNN.png. Byte-for-byte reproducible "
      "by --seed.");
  data::shapes::declare(synth->options, synth->cfg);
  synth->options.add_to(*synth_cmd);
  synth_cmd->callback([synth] {
    synth->options.parse();
    const auto r = data::shapes::synthesize(synth->cfg);
    std::printf("wrote %lld samples to %s (%.2f s, %.0f samples/s)\n",
                static_cast<long long>(r.num_samples), r.jsonl_path.c_str(), r.seconds,
                r.seconds > 0 ? static_cast<double>(r.num_samples) / r.seconds : 0.0);
    if (!r.coco_path.empty()) std::printf("wrote COCO instances to %s\n", r.coco_path.c_str());
  });

  auto check = std::make_shared<CheckCommand>();
  auto* check_cmd = cmd->add_subcommand(
      "check",
      "Load and validate data exactly as training does (same flags: --config, "
      "--data_file_paths/--image_folders, or --dataset_name) and print, per file, samples read, "
      "usable, and every rejected sample as <file>:<line>: <reason>. Exits 1 if a sample is "
      "rejected and on_bad_sample=error.");
  train::declare(check->options, check->cfg);
  if (!check->options.has("max_length"))
    check->options.add("max_length", &check->sft_max_length,
                       "SFT: also list the samples longer than this many tokens, which SFT drops (0 = off)");
  check->options.add_to(*check_cmd);
  check_cmd->callback([check] {
    check->options.parse();
    train::sync_data(check->cfg);
    data::DataConfig& d = check->cfg.data;
    // The trainer owns `reward_method`; as the data files' ':'-list it reaches data here.
    // (copied when it is a per-file list; a single default method stays with the trainer).
    if (d.reward_method.empty() && data::split_paths(check->cfg.reward_method).size() ==
                                       data::split_paths(d.data_file_paths).size())
      d.reward_method = check->cfg.reward_method;
    // Training measures prompts with the model's tokenizer: so does the check.
    if (d.tokenizer_path.empty() && !check->cfg.model_name_or_path.empty())
      d.tokenizer_path = check->cfg.model_name_or_path;
    const int rc = data::run_data_check(d, check->sft_max_length);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace refract::cli
