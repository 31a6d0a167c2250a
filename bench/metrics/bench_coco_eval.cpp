// COCO bbox evaluate+accumulate+summarize on the large case (5000 images, 80 categories,
// 34,852 GT, 500,000 detections), compared with pycocotools' time from
// bench/reference_figures.json.
//   bench_coco_eval [--input large_case.json.xz] [--reps 3] [--threads 1]
// The large case is not in the repository (8 MB compressed): it is read from
// ../shared/fixtures/cocoeval beside the source tree and decompressed to /tmp at run time (xz).
// Loading is not timed (pycocotools' figure excludes it too). Prints the median seconds,
// the speed-up, and the stats so a run can be checked against the case's "stats" if present.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include "bench_cli.h"
#include "metrics/coco_eval.h"
#include "reference_figures.h"

int main(int argc, char** argv) {
  std::string xz = std::string(REFRACT_SHARED_DIR) + "/fixtures/cocoeval/large_case.json.xz";
  int repeats = 3, threads = 1;
  CLI::App app{"COCO bbox evaluation time on the large case, against pycocotools.", "bench_coco_eval"};
  app.add_option("--input", xz, "COCO case: {\"gt\", \"dt\", \"stats\"} JSON, xz-compressed")
      ->check(CLI::ExistingFile)
      ->capture_default_str();
  app.add_option("--reps", repeats, "timed runs; the median is reported")
      ->check(refract::bench::positive_int())
      ->capture_default_str();
  app.add_option("--threads", threads, "coco_evaluate threads")
      ->check(refract::bench::positive_int())
      ->capture_default_str();
  if (const int code = refract::bench::parse_args(app, argc, argv); code >= 0) return code;
  if (!std::filesystem::exists(xz)) {
    std::fprintf(stderr,
                 "bench_coco_eval: input %s not found: the large case is kept outside the repository, in "
                 "../shared/fixtures/cocoeval beside the source tree; pass --input FILE\n",
                 xz.c_str());
    return 1;
  }
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
  const auto ref = refract::bench::reference_figure("pycocotools_coco_eval_large");
  if (ref && refract::bench::same_input(*ref, xz))
    std::printf("coco_evaluate median %.3f s over %d runs; pycocotools %.1f %s -> %.1fx faster (%s)\n",
                median, repeats, ref->value, ref->unit.c_str(), ref->value / median,
                refract::bench::kReferenceFiguresFile.c_str());
  else
    std::printf("coco_evaluate median %.3f s over %d runs\n", median, repeats);
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
