// `refract dashboard`: a local web page over run directories (torch-free header).
//   GET /                     -> the page (HTML + JS + SVG written here, embedded in the binary)
//   GET /api/runs             -> the runs and their evaluation sets
//   GET /api/metrics?run=R    -> metrics.jsonl entries
//   GET /api/rollouts?run=R[&step=S] -> the completions logged at a step, grouped by prompt
//   GET /api/eval?run=R&name=N        -> one evaluation set's samples
//   GET /api/image?run=R&path=P       -> an image the run's logs name (or inside its directory)
//   GET /api/file?run=R&path=REL      -> a file inside the run directory
// Read-only, loopback by default, every path confined to the run directories (docs/dashboard.md).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace refract {
class Options;
}

namespace refract::dashboard {

struct DashboardSettings {
  std::vector<std::string> runs;  // run directories (training output_dir, eval output_dir, demo output)
  std::string host = "127.0.0.1";  // loopback by default
  int64_t port = 8080;             // 0 = any free port (printed)
  std::string render;              // a directory: write curves.png and rollouts.png there instead of serving
  int64_t render_groups = 8;       // --render: prompts in the rollout grid
};
void declare(Options& o, DashboardSettings& s);

// Serves until SIGINT / SIGTERM, or with `render` writes the PNG files and returns.
void run_dashboard(const DashboardSettings& s);

}  // namespace refract::dashboard
