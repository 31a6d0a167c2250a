// `refract demo`: does RL teach something SFT does not? On the shapes world with the tiny
// model: from an SFT warm start (assets/demo_warm_start, or re-created with --from_scratch)
// run (a) GRPO with iou + format rewards and (b) SFT continued for the same wall time, then
// evaluate the start, (a) and (b) greedily on held-out in-domain and out-of-domain REC
// (or on the validation splits, for tuning: docs/training.md, "demo protocol").
// No torch types (the CLI includes this).
#pragma once
#include <cstdint>
#include <string>

#include "common/data_dir.h"

namespace refract {
class Options;
}

namespace refract::commands {

struct DemoConfig {
  std::string output = "demo_output";
  int64_t seed = 0;
  bool from_scratch = false;                  // re-create the warm start (tokenizer, init, SFT)
  // The shipped warm start and configs come from refract's data directory, so the demo runs from
  // any directory; "" when there is none (run_demo then says where it looked).
  std::string warm_start = data_path_or_empty("assets/demo_warm_start");
  std::string configs_dir = data_path_or_empty("configs");  // demo_sft.yaml, demo_grpo.yaml
  int64_t train_samples = 20000;              // in-domain REC training set
  int64_t eval_samples = 1000;                // per evaluation split
  // Which splits the three models are evaluated on. `validation` (its own seeds) is for every
  // choice (learning rate, steps, checkpoints); `test` (the held-out splits) only for the table
  // that is reported, so no reported number was used to pick a setting.
  std::string eval_split = "test";
  std::string ood_split = "ood_combo";        // held-out colour-shape combinations
  int64_t box_noise = 4;                      // annotation noise of every split's boxes (px per edge)
  double vision_pretrain_seconds = 180;       // dense vision pre-training with --from_scratch
  int64_t vision_pretrain_steps = 0;          // > 0: a step count instead (reproducible by seed)
  int64_t warm_start_steps = 0;               // --from_scratch SFT steps (0 = demo_sft.yaml max_steps)
  double warm_start_seconds = 0;              // > 0: also stop the warm-start SFT after this long
  double rl_seconds = 240;                    // GRPO budget; continued SFT gets GRPO's wall time
  int64_t vocab_size = 400;                   // tiny BPE tokenizer built with --from_scratch
  int64_t threads = 2;
};

void declare(Options& o, DemoConfig& c);
// Runs the demo; writes <output>/summary.json and prints the table.
void run_demo(const DemoConfig& c);

}  // namespace refract::commands
