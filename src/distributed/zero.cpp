#include "distributed/zero.h"

#include <algorithm>
#include <numeric>

#include "common/check.h"

namespace refract::distributed {

std::vector<int> partition_parameters(const std::vector<int64_t>& numels, int world_size) {
  std::vector<size_t> order(numels.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return numels[a] > numels[b]; });
  std::vector<int64_t> load(static_cast<size_t>(world_size), 0);
  std::vector<int> owner(numels.size(), 0);
  for (size_t i : order) {
    const int r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    owner[i] = r;
    load[static_cast<size_t>(r)] += numels[i];
  }
  return owner;
}

ShardedOptimizer::ShardedOptimizer(Dist& dist, NamedParams trainable, AdamWFactory make)
    : dist_(dist), trainable_(std::move(trainable)), make_(std::move(make)) {
  std::vector<int64_t> numels;
  for (const auto& [name, p] : trainable_) numels.push_back(p.numel());
  owner_ = partition_parameters(numels, dist_.world_size());
  NamedParams mine;
  for (size_t i = 0; i < trainable_.size(); ++i)
    if (owner_[i] == dist_.rank()) mine.push_back(trainable_[i]);
  if (!mine.empty()) local_ = make_(mine);
}

void ShardedOptimizer::set_learning_rate(double lr) {
  if (!local_) return;
  for (auto& g : local_->param_groups()) g.options().set_lr(lr);
}

void ShardedOptimizer::step(CommStats* stats) {
  if (local_) local_->step();
  torch::NoGradGuard ng;
  // Each owner sends its tensors as flat buckets (one per dtype and device run).
  for (int r = 0; r < dist_.world_size(); ++r) {
    std::vector<torch::Tensor> mine;
    for (size_t i = 0; i < trainable_.size(); ++i)
      if (owner_[i] == r) mine.push_back(trainable_[i].second);
    size_t i = 0;
    while (i < mine.size()) {
      size_t j = i;
      while (j < mine.size() && mine[j].scalar_type() == mine[i].scalar_type() && mine[j].device() == mine[i].device())
        ++j;
      std::vector<torch::Tensor> parts;
      for (size_t k = i; k < j; ++k) parts.push_back(mine[k].detach().reshape({-1}));
      torch::Tensor flat = torch::cat(parts);
      dist_.broadcast(flat, r, stats);
      if (dist_.rank() != r) {
        int64_t off = 0;
        for (size_t k = i; k < j; ++k) {
          mine[k].detach().copy_(flat.narrow(0, off, mine[k].numel()).view_as(mine[k]));
          off += mine[k].numel();
        }
      }
      i = j;
    }
  }
}

void ShardedOptimizer::zero_grad() {
  // Every rank holds every gradient (the all-reduce), not only its share's.
  for (auto& [name, p] : trainable_)
    if (p.grad().defined()) {
      p.mutable_grad().reset();
    }
}

std::unique_ptr<torch::optim::AdamW> ShardedOptimizer::gather_full(double lr) {
  std::unique_ptr<torch::optim::AdamW> full;
  if (dist_.is_main()) {
    full = make_(trainable_);
    for (auto& g : full->param_groups()) g.options().set_lr(lr);
  }
  for (size_t i = 0; i < trainable_.size(); ++i) {
    const torch::Tensor& p = trainable_[i].second;
    const int o = owner_[i];
    torch::optim::AdamWParamState* st = nullptr;
    if (dist_.rank() == o && local_)
      st = static_cast<torch::optim::AdamWParamState*>(find_param_state(*local_, p));
    // [has state, step] from the owner, then the two moments.
    torch::Tensor meta = torch::zeros({2}, torch::kFloat64);
    if (st) meta[0] = 1.0, meta[1] = static_cast<double>(st->step());
    dist_.broadcast(meta, o);
    if (meta[0].item<double>() == 0) continue;
    torch::Tensor m = st ? st->exp_avg().clone() : torch::empty_like(p);
    torch::Tensor v = st ? st->exp_avg_sq().clone() : torch::empty_like(p);
    dist_.broadcast(m, o);
    dist_.broadcast(v, o);
    if (!full) continue;
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(static_cast<int64_t>(meta[1].item<double>()));
    s->exp_avg(m);
    s->exp_avg_sq(v);
    set_param_state(*full, p, std::move(s));
  }
  return full;
}

void ShardedOptimizer::load_from_full(torch::optim::AdamW& full) {
  if (!local_) return;
  for (size_t i = 0; i < trainable_.size(); ++i) {
    if (owner_[i] != dist_.rank()) continue;
    const torch::Tensor& p = trainable_[i].second;
    auto* st = static_cast<torch::optim::AdamWParamState*>(find_param_state(full, p));
    if (!st) continue;
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(st->step());
    s->exp_avg(st->exp_avg());
    s->exp_avg_sq(st->exp_avg_sq());
    if (st->max_exp_avg_sq().defined()) s->max_exp_avg_sq(st->max_exp_avg_sq());
    set_param_state(*local_, p, std::move(s));
  }
}

int64_t ShardedOptimizer::local_state_bytes() const {
  if (!local_) return 0;
  int64_t n = 0;
  for (size_t i = 0; i < trainable_.size(); ++i) {
    if (owner_[i] != dist_.rank()) continue;
    auto* st = static_cast<torch::optim::AdamWParamState*>(find_param_state(*local_, trainable_[i].second));
    if (st) n += static_cast<int64_t>(st->exp_avg().nbytes() + st->exp_avg_sq().nbytes());
  }
  return n;
}

int64_t ShardedOptimizer::owned_parameters() const {
  int64_t n = 0;
  for (size_t i = 0; i < trainable_.size(); ++i)
    if (owner_[i] == dist_.rank()) n += trainable_[i].second.numel();
  return n;
}

}  // namespace refract::distributed
