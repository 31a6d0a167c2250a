// Learning-rate schedules with linear warmup, as HF transformers' get_scheduler computes them:
// the multiplier for scheduler step s (0 before the first optimizer step).
#pragma once
#include <cstdint>
#include <string>

namespace refract::train {

struct LrSchedule {
  std::string type = "linear";  // constant | linear | cosine | warmup_stable_decay
  double base_lr = 1e-6;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  // warmup_stable_decay (HF lr_scheduler_kwargs): the last num_decay_steps of total_steps
  // anneal to min_lr_ratio x base_lr.
  int64_t num_decay_steps = 0;
  double min_lr_ratio = 0.0;

  // ref: transformers/optimization.py: warmup s / max(1, warmup); then constant 1, linear
  // (total - s) / (total - warmup) floored at 0, or cosine 0.5 (1 + cos(pi progress)).
  // warmup_stable_decay (get_wsd_schedule, linear warmup, cosine decay): warmup rises from
  // min_lr_ratio, 1 until total - num_decay_steps, then min + (1 - min) 0.5 (1 + cos(pi p)),
  // and min_lr_ratio from total_steps on.
  double multiplier(int64_t step) const;
  double lr(int64_t step) const { return base_lr * multiplier(step); }
};

// warmup_steps when > 0, else ceil(total_steps * warmup_ratio) (HF get_warmup_steps).
int64_t resolve_warmup_steps(int64_t warmup_steps, double warmup_ratio, int64_t total_steps);

}  // namespace refract::train
