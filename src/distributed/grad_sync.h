// Data-parallel gradient synchronisation, as torch DDP's reducer does it: the gradients are
// flattened into buckets of about bucket_bytes (DDP's bucket_cap_mb, 25 MB), each bucket is
// all-reduced once (SUM: every rank's loss is already its share of the global loss, see
// docs/distributed.md) and copied back. One collective per bucket instead of one per tensor
// keeps the per-message latency out of the step on many small LoRA / norm tensors.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "distributed/dist.h"

namespace refract::distributed {

constexpr int64_t kDefaultBucketBytes = 25ll << 20;

// Sums the gradients of `params` over all ranks, in place. A parameter without a gradient on
// every rank keeps none (so AdamW skips it exactly as one process would); one with a gradient
// on some ranks only gets zeros elsewhere first.
void all_reduce_gradients(Dist& dist, const std::vector<torch::Tensor>& params, int64_t bucket_bytes,
                          CommStats* stats);

}  // namespace refract::distributed
