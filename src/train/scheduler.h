// Learning-rate schedules with linear warmup, as HF transformers' get_scheduler computes them:
// the multiplier for scheduler step s (0 before the first optimizer step).
#pragma once
#include <cstdint>
#include <string>

namespace refract::train {

struct LrSchedule {
  std::string type = "linear";  // constant | linear | cosine
  double base_lr = 1e-6;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  // ref: transformers/optimization.py: warmup s / max(1, warmup); then constant 1, linear
  // (total - s) / (total - warmup) floored at 0, or cosine 0.5 (1 + cos(pi progress)).
  double multiplier(int64_t step) const;
  double lr(int64_t step) const { return base_lr * multiplier(step); }
};

// warmup_steps when > 0, else ceil(total_steps * warmup_ratio) (HF get_warmup_steps).
int64_t resolve_warmup_steps(int64_t warmup_steps, double warmup_ratio, int64_t total_steps);

}  // namespace refract::train
