// io benchmarks: safetensors open/parse (mmap), streaming write, TensorBoard scalar logging.
//   bench_io [--checkpoint tests/fixtures/qwen2_5_vl/tiny] [--write_mib 64] [--benchmark_*=...]
// Google Benchmark's own flags (--benchmark_filter=REGEX, --benchmark_repetitions=N, ...) pass
// through; anything else unknown is an error.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_cli.h"
#include "io/safetensors.h"
#include "io/tensorboard.h"

using namespace refract::io;
namespace fs = std::filesystem;

// Opening the tiny Qwen2.5-VL checkpoint (~70 tensors, 2.6 MB): header parse + validation.
static void BM_TensorStoreOpenTiny(benchmark::State& state, const std::string& checkpoint) {
  for (auto _ : state) {
    TensorStore s = TensorStore::open(checkpoint);
    benchmark::DoNotOptimize(s.names().size());
  }
}

// Streaming write of one F32 tensor of `range(0)` MiB, atomically (fsync + rename included).
static void BM_WriteSafetensors(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) << 20;
  std::vector<float> data(bytes / 4, 1.0f);
  const std::string path =
      (fs::temp_directory_path() / ("refract_bench_" + std::to_string(::getpid()) + ".safetensors")).string();
  for (auto _ : state) {
    write_safetensors(path, {{"w", DType::F32, {static_cast<int64_t>(data.size())}, data.data(), bytes}});
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  fs::remove(path);
}

static void BM_TensorBoardAddScalar(benchmark::State& state) {
  const fs::path dir = fs::temp_directory_path() / ("refract_bench_tb_" + std::to_string(::getpid()));
  {
    TensorBoardWriter w(dir.string());
    int64_t step = 0;
    for (auto _ : state) w.add_scalar("train/loss", 0.5, step++);
  }
  fs::remove_all(dir);
}

int main(int argc, char** argv) {
  std::string checkpoint = std::string(REFRACT_SOURCE_DIR) + "/tests/fixtures/qwen2_5_vl/tiny";
  int64_t write_mib = 64;
  CLI::App app{"io benchmarks: safetensors open and streaming write, TensorBoard scalars (Google Benchmark; "
               "its --benchmark_* flags, e.g. --benchmark_filter=REGEX, pass through).",
               "bench_io"};
  app.add_option("--checkpoint", checkpoint, "safetensors checkpoint (directory or file) to open")
      ->check(CLI::ExistingPath)
      ->capture_default_str();
  app.add_option("--write_mib", write_mib, "size of the written tensor, MiB")
      ->check(refract::bench::positive_int())
      ->capture_default_str();
  app.allow_extras();
  if (const int code = refract::bench::parse_args(app, argc, argv); code >= 0) return code;
  std::vector<std::string> extras = app.remaining();
  std::vector<char*> bm_argv = {argv[0]};
  for (std::string& a : extras) {
    if (a.rfind("--benchmark_", 0) != 0) {
      std::fprintf(stderr, "bench_io: The following argument was not expected: %s (see --help)\n", a.c_str());
      return 2;
    }
    bm_argv.push_back(a.data());
  }
  int bm_argc = static_cast<int>(bm_argv.size());
  benchmark::Initialize(&bm_argc, bm_argv.data());
  if (benchmark::ReportUnrecognizedArguments(bm_argc, bm_argv.data())) return 2;
  // Registered here, not with BENCHMARK(), because the arguments come from the flags.
  benchmark::RegisterBenchmark("BM_TensorStoreOpenTiny", &BM_TensorStoreOpenTiny, checkpoint)
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BM_WriteSafetensors", &BM_WriteSafetensors)
      ->Arg(write_mib)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_TensorBoardAddScalar", &BM_TensorBoardAddScalar);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
