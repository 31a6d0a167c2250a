// `refract sft`: supervised fine-tuning on assistant tokens (TRL SFTTrainer semantics).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "cli/command.h"
#include "common/options.h"
#include "train/dry_run.h"
#include "train/run.h"
#include "refract_build_info.h"  // REFRACT_TORCH_VERSION: attention is fused from libtorch 2 on

namespace refract::cli {

void add_sft_command(CLI::App& app) {
  struct State {
    train::SftConfig config;
    train::PlanSettings plan;
    Options options;
  };
  auto st = std::make_shared<State>();
  auto* cmd = app.add_subcommand(
      "sft",
      "Supervised fine-tuning: cross-entropy on the assistant tokens only (prompt and image "
      "tokens masked); logs loss and mean_token_accuracy (see configs/demo_sft.yaml).");
  train::declare(st->options, st->config);
  train::declare(st->options, st->plan);
  st->options.add_to(*cmd);
  cmd->callback([st] {
    st->options.parse();
    if (train::handle_dry_run(st->config, st->plan, REFRACT_TORCH_VERSION)) return;
    if (launch_workers_if_asked(st->config.nproc_per_node, st->config.master_port)) return;
    train::RunSummary s = train::run_sft(st->config);
    if (!is_main_process()) return;  // rank 0 reports for the job
    std::printf("sft: steps %lld..%lld in %.1f s, checkpoint %s\n", (long long)s.first_step,
                (long long)s.last_step, s.wall_seconds, s.final_checkpoint.c_str());
  });
}

}  // namespace refract::cli
