#include "distributed/grad_sync.h"

namespace refract::distributed {

void all_reduce_gradients(Dist& dist, const std::vector<torch::Tensor>& params, int64_t bucket_bytes,
                          CommStats* stats) {
  if (!dist.active() || params.empty()) return;
  // Which parameters have a gradient anywhere (one small all-reduce).
  std::vector<double> has(params.size());
  for (size_t i = 0; i < params.size(); ++i) has[i] = params[i].grad().defined() ? 1.0 : 0.0;
  has = dist.sum(std::move(has));
  std::vector<torch::Tensor> grads;
  for (size_t i = 0; i < params.size(); ++i) {
    if (has[i] == 0) continue;
    torch::Tensor p = params[i];
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad());
  }
  // Buckets of consecutive gradients of one dtype and device.
  size_t i = 0;
  while (i < grads.size()) {
    size_t j = i;
    int64_t bytes = 0;
    while (j < grads.size() && grads[j].scalar_type() == grads[i].scalar_type() &&
           grads[j].device() == grads[i].device() && (j == i || bytes + grads[j].nbytes() <= static_cast<size_t>(bucket_bytes))) {
      bytes += static_cast<int64_t>(grads[j].nbytes());
      ++j;
    }
    std::vector<torch::Tensor> flat_parts;
    for (size_t k = i; k < j; ++k) flat_parts.push_back(grads[k].reshape({-1}));
    torch::Tensor bucket = torch::cat(flat_parts);
    dist.all_reduce_sum(bucket, stats);
    int64_t off = 0;
    for (size_t k = i; k < j; ++k) {
      const int64_t n = grads[k].numel();
      grads[k].copy_(bucket.narrow(0, off, n).view_as(grads[k]));
      off += n;
    }
    i = j;
  }
}

}  // namespace refract::distributed
