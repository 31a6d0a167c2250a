// ZeRO stage 1 (optimizer_sharding: true): each rank keeps the AdamW moments of about 1/N of
// the trainable parameters (whole tensors, assigned largest first to the least loaded rank),
// steps only those after the gradient all-reduce, then every owner broadcasts its updated
// parameters. AdamW is element-wise per tensor, so the weights equal an unsharded step's
// exactly; optimizer memory per rank drops to ~1/N. Checkpoints hold the full state: it is
// gathered to rank 0 as one AdamW over every parameter (the same optimizer.pt an unsharded
// run writes), and on resume each rank takes its share from it, for any world size.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "distributed/dist.h"

namespace refract::distributed {

using NamedParams = std::vector<std::pair<std::string, torch::Tensor>>;
using AdamWFactory = std::function<std::unique_ptr<torch::optim::AdamW>(const NamedParams&)>;

// Owner rank of each tensor: by decreasing size, to the rank with the fewest elements so far
// (ties: the lower rank). Deterministic, so every rank computes the same partition.
std::vector<int> partition_parameters(const std::vector<int64_t>& numels, int world_size);

class ShardedOptimizer {
 public:
  // `trainable`: every parameter that trains, in the model's order; `make` builds an AdamW
  // over a subset with the run's settings and parameter groups (train/optim.h make_adamw).
  ShardedOptimizer(Dist& dist, NamedParams trainable, AdamWFactory make);

  void set_learning_rate(double lr);
  // Steps this rank's share (gradients must already be summed over ranks), then broadcasts
  // every owner's parameters to the others.
  void step(CommStats* stats);
  void zero_grad();

  // Collective: on rank 0 an AdamW over every trainable parameter holding the state all ranks
  // have (as one unsharded process would), nullptr on the others.
  std::unique_ptr<torch::optim::AdamW> gather_full(double lr);
  // Takes this rank's share of `full` (an AdamW over every trainable parameter, e.g. loaded
  // from a checkpoint's optimizer.pt).
  void load_from_full(torch::optim::AdamW& full);
  // A fresh AdamW over every trainable parameter (to load a checkpoint into).
  std::unique_ptr<torch::optim::AdamW> make_full() const { return make_(trainable_); }

  int64_t local_state_bytes() const;  // exp_avg + exp_avg_sq bytes this rank holds
  int64_t owned_parameters() const;   // elements this rank steps

 private:
  Dist& dist_;
  NamedParams trainable_;
  AdamWFactory make_;
  std::vector<int> owner_;                      // per trainable tensor
  std::unique_ptr<torch::optim::AdamW> local_;  // over the owned tensors (nullptr: none)
};

}  // namespace refract::distributed
