// The built-in launcher of `refract grpo|sft --nproc_per_node N [--master_port P]` (no torch):
// starts N copies of this program on this machine with RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT set (what torchrun --standalone sets), forwards
// their stdout / stderr line by line with a "[rank K] " prefix, and waits. When a worker fails
// (non-zero exit or a signal) the others are sent SIGTERM, then SIGKILL after a grace period,
// and the launcher returns the failed worker's code; SIGINT / SIGTERM to the launcher go to
// every worker.
#pragma once
#include <string>
#include <vector>

namespace refract::distributed {

struct LaunchSettings {
  int nproc_per_node = 1;
  int master_port = 29500;                // 0: a free port chosen by the launcher
  std::string master_addr = "127.0.0.1";
  double kill_grace_seconds = 10;         // SIGTERM -> SIGKILL delay when stopping workers
};

// Runs argv (argv[0] = the executable's path) as nproc_per_node workers; returns 0 when every
// worker exited with 0, else the first failure's exit code (128 + signal for a killed worker).
int launch_local_workers(const LaunchSettings& s, const std::vector<std::string>& argv);

// This process's command line (from /proc/self/cmdline) with argv[0] replaced by the path of
// its executable (/proc/self/exe), so a worker runs the same binary with the same arguments.
std::vector<std::string> own_command_line();

// A free TCP port on 127.0.0.1 (bound and released; a small race with other programs remains).
int pick_free_port();

// Splits a byte stream into lines, each returned with `prefix` in front; a partial last line
// is kept until its newline or flush().
class LinePrefixer {
 public:
  explicit LinePrefixer(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string feed(const char* data, size_t n);
  std::string flush();

 private:
  std::string prefix_;
  std::string pending_;
};

}  // namespace refract::distributed
