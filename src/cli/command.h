// Every subcommand registers itself on the top-level CLI::App through one function.
// The subcommand's callback does the work; errors propagate as refract::Error to main().
#pragma once
#include <cstdint>

namespace CLI {
class App;
}

namespace refract::cli {
void add_demo_command(CLI::App& app);
void add_grpo_command(CLI::App& app);
void add_sft_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_score_command(CLI::App& app);
void add_rewards_command(CLI::App& app);
void add_infer_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_dashboard_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_data_command(CLI::App& app);
void add_model_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_preprocess_command(CLI::App& app);
void add_env_command(CLI::App& app);
void add_completion_command(CLI::App& app);  // walks `app`: register it last

// grpo / sft with nproc_per_node > 1 outside a launched job: runs the workers (launch.cpp) and
// returns true (throws CLI::RuntimeError with the failed worker's exit code); false otherwise.
bool launch_workers_if_asked(int64_t nproc_per_node, int64_t master_port);
bool is_main_process();  // RANK 0, or not distributed
}  // namespace refract::cli
