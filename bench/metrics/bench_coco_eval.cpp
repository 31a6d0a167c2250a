// COCO bbox evaluate+accumulate+summarize on the large case (5000 images, 80 categories,
// 34,852 GT, 500,000 detections) vs pycocotools' median 86.3 s on this machine.
//   bench_coco_eval [large_case.json.xz] [repeats=3] [threads=1]
// The file is decompressed to /tmp at run time (xz) and never copied into the repository.
// Loading is not timed (pycocotools' figure excludes it too). Prints the median seconds,
// the speed-up, and the stats so a run can be checked against the case's "stats" if present.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "metrics/coco_eval.h"

int main(int argc, char** argv) {
  const std::string xz = argc > 1 ? argv[1] : REFRACT_SHARED_COCO_LARGE;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 3;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 1;
  const std::string tmp = "/tmp/refract_bench_coco_" + std::to_string(::getpid()) + ".json";
  const std::string cmd = "xz -dc '" + xz + "' > '" + tmp + "'";
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "cannot decompress %s\n", xz.c_str());
    return 1;
  }
  nlohmann::json j;
  {
    std::ifstream in(tmp);
    j = nlohmann::json::parse(in);
  }
  std::remove(tmp.c_str());
  const auto gt = refract::metrics::coco_gt_from_json(j.contains("gt") ? j["gt"] : j);
  const auto dt = refract::metrics::coco_dets_from_json(j.contains("dt") ? j["dt"] : j["detections"]);
  std::printf("images %zu, GT %zu, detections %zu, threads %d\n", gt.image_ids.size(),
              gt.annotations.size(), dt.size(), threads);
  std::vector<double> secs;
  refract::metrics::CocoEvalResult res;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    res = refract::metrics::coco_evaluate(gt, dt, refract::metrics::CocoEvalParams(), threads);
    secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(secs.begin(), secs.end());
  const double median = secs[secs.size() / 2];
  std::printf("coco_evaluate median %.3f s over %d runs; pycocotools 86.3 s -> %.1fx faster\n",
              median, repeats, 86.3 / median);
  double worst = 0;
  for (int i = 0; i < 12; ++i) {
    std::printf("  %-6s %.15f", refract::metrics::coco_stat_names()[i], res.stats[i]);
    if (j.contains("stats")) {
      const double want = j["stats"][i].get<double>();
      worst = std::max(worst, std::abs(want - res.stats[i]));
      std::printf("  (pycocotools %.15f)", want);
    }
    std::printf("\n");
  }
  if (j.contains("stats")) std::printf("max |difference| vs pycocotools stats: %.3g\n", worst);
  return 0;
}
