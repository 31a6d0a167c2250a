#include "train/scheduler.h"

#include <algorithm>
#include <cmath>

#include "common/check.h"

namespace refract::train {

double LrSchedule::multiplier(int64_t step) const {
  if (type == "warmup_stable_decay") {
    const double lo = min_lr_ratio;
    if (step < warmup_steps)
      return lo + (1.0 - lo) * static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_steps));
    const int64_t decay_start = total_steps - num_decay_steps;
    if (step < decay_start) return 1.0;
    if (step >= total_steps) return lo;
    const double progress = static_cast<double>(step - decay_start) /
                            static_cast<double>(std::max<int64_t>(1, num_decay_steps));
    return lo + (1.0 - lo) * std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
  }
  if (step < warmup_steps)
    return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_steps));
  if (type == "constant") return 1.0;
  const double span = static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  if (type == "linear")
    return std::max(0.0, static_cast<double>(total_steps - step) / span);
  if (type == "cosine") {
    const double progress = static_cast<double>(step - warmup_steps) / span;
    // ref: get_cosine_schedule_with_warmup with num_cycles 0.5
    return std::max(0.0, 0.5 * (1.0 + std::cos(M_PI * progress)));
  }
  REFRACT_FAIL() << "lr_scheduler_type: '" << type << "' is not one of constant, linear, cosine, warmup_stable_decay";
}

int64_t resolve_warmup_steps(int64_t warmup_steps, double warmup_ratio, int64_t total_steps) {
  if (warmup_steps > 0) return warmup_steps;
  return static_cast<int64_t>(std::ceil(static_cast<double>(total_steps) * warmup_ratio));
}

}  // namespace refract::train
