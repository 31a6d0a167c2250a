// Memory bandwidth of this machine, STREAM-style (McCalpin's STREAM kernels on float arrays,
// each thread on its own contiguous slice): the physical limit of a decode step, which reads
// every weight once. Reported for arrays far larger than the last-level cache (main memory) and
// for arrays that fit in it (the `tiny` preset's weights do: see docs/benchmarks.md).
//
//   bench_memory [--threads 2] [--mib 512] [--cache_mib 24] [--reps 10]
//
// Bytes counted as STREAM counts them (triad a = b + s*c: 3 arrays x 4 bytes per element;
// no write-allocate traffic added). `read` is a sum over one array: what a weight-streaming
// GEMV does. Best and median of --reps timed runs after one warm-up, by thread CPU time (the
// machine is shared: wall time measures the other tenants too; the wall-time medians follow).
#include <algorithm>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>
#include <vector>

#include "bench_cli.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Arrays {
  std::vector<float> a, b, c;
};

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct Times {
  double wall, cpu;  // cpu: the slowest thread's own CPU time
};

// Runs fn(begin, end, thread) on `threads` threads over [0, n). On a machine shared with other
// jobs the wall time measures the scheduler; each thread's CPU time is what the kernel took while
// it ran (as bench_generate reports CPU time / threads).
Times run_parallel(int threads, size_t n, const std::function<void(size_t, size_t, int)>& fn) {
  std::vector<std::thread> pool;
  std::vector<double> cpu(threads);
  const auto t0 = Clock::now();
  for (int t = 0; t < threads; ++t) {
    const size_t begin = n * t / threads, end = n * (t + 1) / threads;
    pool.emplace_back([&, begin, end, t] {
      const double c0 = thread_cpu_s();
      fn(begin, end, t);
      cpu[t] = thread_cpu_s() - c0;
    });
  }
  for (auto& th : pool) th.join();
  return {std::chrono::duration<double>(Clock::now() - t0).count(), *std::max_element(cpu.begin(), cpu.end())};
}

struct Result {
  double best_gbs, median_gbs, median_wall_gbs;
};

Result measure(int threads, int reps, size_t n, double bytes_per_elem,
               const std::function<void(size_t, size_t, int)>& kernel) {
  run_parallel(threads, n, kernel);  // warm-up (page faults, frequency)
  std::vector<double> cpu, wall;
  for (int r = 0; r < reps; ++r) {
    const Times t = run_parallel(threads, n, kernel);
    cpu.push_back(t.cpu);
    wall.push_back(t.wall);
  }
  std::sort(cpu.begin(), cpu.end());
  std::sort(wall.begin(), wall.end());
  const double bytes = bytes_per_elem * static_cast<double>(n);
  return {bytes / cpu.front() / 1e9, bytes / cpu[cpu.size() / 2] / 1e9, bytes / wall[wall.size() / 2] / 1e9};
}

void report(const char* name, int threads, int reps, size_t n, Arrays& x) {
  float* a = x.a.data();
  const float* b = x.b.data();
  const float* c = x.c.data();
  std::vector<double> sums(threads);
  const float s = 3.0f;
  const auto copy = measure(threads, reps, n, 8, [&](size_t i0, size_t i1, int) {
    for (size_t i = i0; i < i1; ++i) a[i] = b[i];
  });
  const auto scale = measure(threads, reps, n, 8, [&](size_t i0, size_t i1, int) {
    for (size_t i = i0; i < i1; ++i) a[i] = s * b[i];
  });
  const auto add = measure(threads, reps, n, 12, [&](size_t i0, size_t i1, int) {
    for (size_t i = i0; i < i1; ++i) a[i] = b[i] + c[i];
  });
  const auto triad = measure(threads, reps, n, 12, [&](size_t i0, size_t i1, int) {
    for (size_t i = i0; i < i1; ++i) a[i] = b[i] + s * c[i];
  });
  // Read-only: 8 independent partial sums so the loop is bound by loads, not by the add latency.
  const auto read = measure(threads, reps, n, 4, [&](size_t i0, size_t i1, int t) {
    float acc[16] = {};
    size_t i = i0;
    for (; i + 16 <= i1; i += 16)
      for (int k = 0; k < 16; ++k) acc[k] += b[i + k];
    for (; i < i1; ++i) acc[0] += b[i];
    double total = 0;
    for (float v : acc) total += v;
    sums[t] = total;
  });
  std::printf("%-28s %9.1f %9.1f %9.1f %9.1f %9.1f   (median %.1f %.1f %.1f %.1f %.1f; by wall time %.1f %.1f "
              "%.1f %.1f %.1f)\n",
              name, copy.best_gbs, scale.best_gbs, add.best_gbs, triad.best_gbs, read.best_gbs, copy.median_gbs,
              scale.median_gbs, add.median_gbs, triad.median_gbs, read.median_gbs, copy.median_wall_gbs,
              scale.median_wall_gbs, add.median_wall_gbs, triad.median_wall_gbs, read.median_wall_gbs);
  if (sums[0] == -1.0) std::printf("\n");  // keeps the read loop
}

}  // namespace

int main(int argc, char** argv) {
  int64_t threads = 2, mib = 512, cache_mib = 24, reps = 10;
  CLI::App app{"STREAM-style memory bandwidth (copy, scale, add, triad, read) in GB/s.", "bench_memory"};
  using refract::bench::positive_int;
  app.add_option("--threads", threads, "threads, each on its own slice")->check(positive_int())->capture_default_str();
  app.add_option("--mib", mib, "MiB per array for the main-memory row (3 arrays)")
      ->check(positive_int())
      ->capture_default_str();
  app.add_option("--cache_mib", cache_mib, "MiB per array for the in-cache row")->check(positive_int())->capture_default_str();
  app.add_option("--reps", reps, "timed runs; best and median reported")->check(positive_int())->capture_default_str();
  if (const int code = refract::bench::parse_args(app, argc, argv); code >= 0) return code;

  std::printf("threads %ld, float arrays, GB/s = 1e9 bytes/s as STREAM counts them over the slowest thread's CPU "
              "time, best of %ld runs\n",
              static_cast<long>(threads), static_cast<long>(reps));
  std::printf("%-28s %9s %9s %9s %9s %9s\n", "arrays", "copy", "scale", "add", "triad", "read");
  for (const int64_t m : {mib, cache_mib}) {
    const size_t n = static_cast<size_t>(m) * 1024 * 1024 / sizeof(float);
    Arrays x;
    // First touch by the thread that will use the slice (one NUMA node here; harmless elsewhere).
    x.a.resize(n);
    x.b.resize(n);
    x.c.resize(n);
    run_parallel(static_cast<int>(threads), n, [&](size_t i0, size_t i1, int) {
      for (size_t i = i0; i < i1; ++i) {
        x.a[i] = 1.0f;
        x.b[i] = 2.0f;
        x.c[i] = 0.5f;
      }
    });
    char name[64];
    std::snprintf(name, sizeof name, "3 x %ld MiB%s", static_cast<long>(m), m == mib ? " (main memory)" : " (cache)");
    report(name, static_cast<int>(threads), static_cast<int>(reps), n, x);
  }
  return 0;
}
