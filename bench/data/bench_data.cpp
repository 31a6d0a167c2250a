// Shapes-world generation and data validation throughput; prints medians of 3 runs.
//   bench_data [--num_samples 1000]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <unistd.h>
#include <vector>

#include "bench_cli.h"
#include "data/load.h"
#include "data/validate.h"
#include "data/shapes/synth.h"

using namespace refract::data;

int main(int argc, char** argv) {
  int64_t n = 1000;
  CLI::App app{"Shapes-world generation and data validation throughput.", "bench_data"};
  app.add_option("--num_samples", n, "samples synthesized per task")
      ->check(refract::bench::positive_int())
      ->capture_default_str();
  if (const int code = refract::bench::parse_args(app, argc, argv); code >= 0) return code;
  const auto dir = std::filesystem::temp_directory_path() / ("refract_bench_data_" + std::to_string(::getpid()));
  for (const char* task : {"rec", "det", "ocr"}) {
    for (int64_t workers : {1, 2}) {
      std::vector<double> rates;
      for (int rep = 0; rep < 3; ++rep) {
        shapes::SynthConfig c;
        c.task = task;
        c.num_samples = n;
        c.num_workers = workers;
        c.output = dir.string();
        const auto r = shapes::synthesize(c);
        rates.push_back(static_cast<double>(r.num_samples) / r.seconds);
      }
      std::sort(rates.begin(), rates.end());
      std::printf("synth %-5s num_workers=%lld: %.0f samples/s (median of 3, %lld samples)\n", task,
                  static_cast<long long>(workers), rates[1], static_cast<long long>(n));
    }
  }
  DataConfig dc;
  dc.data_file_paths = (dir / "rec_in_domain.jsonl").string();
  Dataset d = load_dataset(dc);
  // Validation decodes every image and counts its tokens: the data work a run does at start.
  for (int64_t workers : {1, 2}) {
    std::vector<double> rates;
    for (int rep = 0; rep < 3; ++rep) {
      Dataset copy = d;
      ValidateOptions vo = validate_options(dc, nullptr);
      vo.num_threads = workers;
      const auto t0 = std::chrono::steady_clock::now();
      validate_dataset(copy, vo);
      rates.push_back(static_cast<double>(d.samples.size()) /
                      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(rates.begin(), rates.end());
    std::printf("validate (decode + image tokens) num_workers=%lld: %.0f samples/s\n",
                static_cast<long long>(workers), rates[1]);
  }
  std::filesystem::remove_all(dir);
}
