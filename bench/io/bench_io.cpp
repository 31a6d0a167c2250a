// io benchmarks: safetensors open/parse (mmap), streaming write, TensorBoard scalar logging.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "io/tensorboard.h"

using namespace refract::io;
namespace fs = std::filesystem;

static const std::string kTiny = std::string(REFRACT_SOURCE_DIR) + "/tests/fixtures/qwen2_5_vl/tiny";

// Opening the tiny Qwen2.5-VL checkpoint (~70 tensors, 2.6 MB): header parse + validation.
static void BM_TensorStoreOpenTiny(benchmark::State& state) {
  for (auto _ : state) {
    TensorStore s = TensorStore::open(kTiny);
    benchmark::DoNotOptimize(s.names().size());
  }
}
BENCHMARK(BM_TensorStoreOpenTiny)->Unit(benchmark::kMicrosecond);

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
BENCHMARK(BM_WriteSafetensors)->Arg(64)->Unit(benchmark::kMillisecond);

static void BM_TensorBoardAddScalar(benchmark::State& state) {
  const fs::path dir = fs::temp_directory_path() / ("refract_bench_tb_" + std::to_string(::getpid()));
  {
    TensorBoardWriter w(dir.string());
    int64_t step = 0;
    for (auto _ : state) w.add_scalar("train/loss", 0.5, step++);
  }
  fs::remove_all(dir);
}
BENCHMARK(BM_TensorBoardAddScalar);

BENCHMARK_MAIN();
