#include "model/autocast.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace refract::model {
namespace {

void set_state(torch::DeviceType device, const AutocastState& s) {
#if TORCH_VERSION_MAJOR >= 2
  at::autocast::set_autocast_enabled(device, s.enabled);
  at::autocast::set_autocast_dtype(device, s.dtype);
#else
  if (device == torch::kCUDA) {
    at::autocast::set_enabled(s.enabled);
    at::autocast::set_autocast_gpu_dtype(s.dtype);
  } else {
    at::autocast::set_cpu_enabled(s.enabled);
    at::autocast::set_autocast_cpu_dtype(s.dtype);
  }
#endif
}

}  // namespace

AutocastState autocast_state(torch::DeviceType device) {
  AutocastState s;
#if TORCH_VERSION_MAJOR >= 2
  s.enabled = at::autocast::is_autocast_enabled(device);
  s.dtype = at::autocast::get_autocast_dtype(device);
#else
  s.enabled = device == torch::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
  s.dtype = device == torch::kCUDA ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
  return s;
}

AutocastScope::AutocastScope(torch::Device device, bool enabled)
    : AutocastScope(device.type(), enabled ? AutocastState{true, torch::kBFloat16} : autocast_state(device.type())) {}

AutocastScope::AutocastScope(torch::DeviceType device, AutocastState state) : device_(device) {
  previous_ = autocast_state(device);
  active_ = state.enabled || previous_.enabled;
  if (!active_) return;
  set_state(device, state);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  // ref: torch.autocast.__exit__: the cache of cast weights lives until the outermost exit.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_state(device_, previous_);
}

}  // namespace refract::model
