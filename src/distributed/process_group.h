// The one place refract touches libtorch's c10d API, which changed between libtorch 1.13
// (Debian: ProcessGroupGloo derives from ProcessGroup, optimizer state keyed by strings) and
// 2.x (ProcessGroupGloo derives from Backend, state keyed by TensorImpl*): every difference is
// guarded by TORCH_VERSION_MAJOR in process_group.cpp, nowhere else.
//
// Rendezvous: rank 0 runs a c10d::TCPStore server on MASTER_ADDR:MASTER_PORT, the others
// connect; the backend is ProcessGroupGloo (CPU tensors) or ProcessGroupNCCL (CUDA tensors,
// when this libtorch was built with it). Every operation blocks until done and throws
// refract::Error naming the operation when a peer died or did not answer within the timeout.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "distributed/dist_env.h"

namespace refract::distributed {

// ddp_backend "auto" -> "nccl" for CUDA devices, "gloo" otherwise; checks the choice exists.
std::string resolve_backend(const std::string& ddp_backend, const torch::Device& device);
bool nccl_available();  // this build has ProcessGroupNCCL

class ProcessGroup {
 public:
  // Connects to the job described by env (env.distributed() must be true).
  ProcessGroup(const DistEnv& env, const std::string& backend, double timeout_seconds);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::string& backend() const { return backend_; }
  double timeout_seconds() const { return timeout_seconds_; }

  void all_reduce_sum(torch::Tensor& t);  // in place
  void broadcast(torch::Tensor& t, int root);
  // Every rank's `t` (same shape everywhere), in rank order.
  std::vector<torch::Tensor> all_gather(const torch::Tensor& t);
  void barrier();

  struct Impl;  // the c10d objects (process_group.cpp)

 private:
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, size_ = 1;
  std::string backend_;
  double timeout_seconds_ = 0;
};

// Optimizer state access by parameter (the key type differs between libtorch versions).
torch::optim::OptimizerParamState* find_param_state(torch::optim::Optimizer& opt, const torch::Tensor& p);
void set_param_state(torch::optim::Optimizer& opt, const torch::Tensor& p,
                     std::unique_ptr<torch::optim::OptimizerParamState> state);

}  // namespace refract::distributed
