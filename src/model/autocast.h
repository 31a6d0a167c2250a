// bf16 mixed precision (`bf16: true`): inside an AutocastScope, matmuls and linear layers run in
// bf16 on copies of the fp32 weights, softmax / norms / losses stay fp32 (libtorch's autocast
// op lists, what torch.autocast does in Python). The fp32 parameters remain the master weights.
// One small wrapper because the C++ API changed between libtorch 1.13 and 2.x.
#pragma once
#include <torch/torch.h>

namespace refract::model {

struct AutocastState {
  bool enabled = false;
  torch::ScalarType dtype = torch::kBFloat16;
};

AutocastState autocast_state(torch::DeviceType device);

// Enables bf16 autocast for `device` while alive (nothing when `enabled` is false); restores the
// previous state and drops the cast-weight cache on exit. Wrap forward passes only: backward runs
// outside (the recorded graph already holds the casts).
class AutocastScope {
 public:
  AutocastScope(torch::Device device, bool enabled);
  AutocastScope(torch::DeviceType device, AutocastState state);  // restore a recorded state
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  torch::DeviceType device_;
  AutocastState previous_;
  bool active_ = false;
};

}  // namespace refract::model
