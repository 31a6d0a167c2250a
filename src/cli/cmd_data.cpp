// `refract data synth|check`: the shapes world and the dataset validation report.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "common/check.h"
#include "common/options.h"
#include "data/shapes/synth.h"

namespace refract::cli {
namespace {

struct SynthCommand {
  data::shapes::SynthConfig cfg;
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
}

}  // namespace refract::cli
