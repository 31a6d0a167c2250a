// The data-parallel context of a training run: this process's rank, the world size and the
// few collectives the trainers need. A single process is world 1, where every collective
// returns its input, so trainers call them unconditionally and one code path serves both.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "distributed/dist_env.h"
#include "distributed/process_group.h"

namespace refract::distributed {

// Communication done for gradients and parameters (the figures bench/ reports).
struct CommStats {
  int64_t bytes = 0;     // payload bytes all-reduced / broadcast by this rank
  double seconds = 0;    // wall time inside those collectives
  int64_t calls = 0;
};

class Dist {
 public:
  Dist() = default;  // one process
  Dist(std::unique_ptr<ProcessGroup> pg, torch::Device comm_device);

  int rank() const { return pg_ ? pg_->rank() : 0; }
  int world_size() const { return pg_ ? pg_->size() : 1; }
  bool is_main() const { return rank() == 0; }
  bool active() const { return pg_ != nullptr; }
  ProcessGroup* group() { return pg_.get(); }

  // Element-wise sums over ranks (every rank passes the same length).
  std::vector<double> sum(std::vector<double> v);
  double sum(double x) { return sum(std::vector<double>{x})[0]; }
  // Every rank's vector concatenated in rank order (lengths may differ); counts[r] = rank r's length.
  std::vector<int64_t> all_gather(const std::vector<int64_t>& local, std::vector<int64_t>* counts = nullptr);
  std::vector<double> all_gather(const std::vector<double>& local, std::vector<int64_t>* counts = nullptr);
  // In place on a tensor of any device (moved to the communication device and back if needed).
  void all_reduce_sum(torch::Tensor& t, CommStats* stats = nullptr);
  void broadcast(torch::Tensor& t, int root, CommStats* stats = nullptr);
  void barrier();

 private:
  template <typename T>
  std::vector<T> gather_impl(const std::vector<T>& local, torch::ScalarType type, std::vector<int64_t>* counts);
  std::unique_ptr<ProcessGroup> pg_;
  torch::Device comm_device_ = torch::kCPU;
};

// The context of this process from its environment (dist_env.h): world 1 when WORLD_SIZE is
// unset, else a connected process group with ddp_backend on `device`.
std::unique_ptr<Dist> init_dist(const DistEnv& env, const std::string& ddp_backend, double ddp_timeout,
                                const torch::Device& device);

}  // namespace refract::distributed
