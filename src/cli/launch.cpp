// `--nproc_per_node N` of `refract grpo|sft`: this process becomes the launcher of N local
// workers (distributed/launcher.h) instead of training itself.
#include <CLI/CLI.hpp>
#include <cstdlib>

#include "cli/command.h"
#include "distributed/dist_env.h"
#include "distributed/launcher.h"

namespace refract::cli {

bool launch_workers_if_asked(int64_t nproc_per_node, int64_t master_port) {
  // A process started by a launcher (this one, torchrun, SLURM) has WORLD_SIZE: it is a worker.
  if (nproc_per_node <= 1 || std::getenv("WORLD_SIZE")) return false;
  distributed::LaunchSettings s;
  s.nproc_per_node = static_cast<int>(nproc_per_node);
  s.master_port = static_cast<int>(master_port);
  const int code = distributed::launch_local_workers(s, distributed::own_command_line());
  if (code != 0) throw CLI::RuntimeError(code);
  return true;
}

bool is_main_process() { return distributed::dist_env_from_environment().rank == 0; }

}  // namespace refract::cli
