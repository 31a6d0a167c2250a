#include "distributed/dist.h"

#include <algorithm>
#include <chrono>

#include "common/check.h"

namespace refract::distributed {

namespace {
double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

Dist::Dist(std::unique_ptr<ProcessGroup> pg, torch::Device comm_device)
    : pg_(std::move(pg)), comm_device_(comm_device) {}

std::vector<double> Dist::sum(std::vector<double> v) {
  if (!pg_ || v.empty()) return v;
  torch::Tensor t = torch::tensor(v, torch::kFloat64);
  all_reduce_sum(t);
  t = t.to(torch::kCPU).contiguous();
  std::copy(t.data_ptr<double>(), t.data_ptr<double>() + t.numel(), v.begin());
  return v;
}

template <typename T>
std::vector<T> Dist::gather_impl(const std::vector<T>& local, torch::ScalarType type, std::vector<int64_t>* counts) {
  if (!pg_) {
    if (counts) *counts = {static_cast<int64_t>(local.size())};
    return local;
  }
  // Lengths first, then every rank's vector padded to the longest.
  torch::Tensor n = torch::tensor({static_cast<int64_t>(local.size())}, torch::kInt64).to(comm_device_);
  std::vector<int64_t> lens;
  for (const auto& x : pg_->all_gather(n)) lens.push_back(x.to(torch::kCPU).item<int64_t>());
  const int64_t longest = std::max<int64_t>(1, *std::max_element(lens.begin(), lens.end()));
  torch::Tensor padded = torch::zeros({longest}, type);
  if (!local.empty())
    padded.narrow(0, 0, static_cast<int64_t>(local.size()))
        .copy_(torch::from_blob(const_cast<T*>(local.data()), {static_cast<int64_t>(local.size())}, type));
  std::vector<T> out;
  const auto parts = pg_->all_gather(padded.to(comm_device_));
  for (size_t r = 0; r < parts.size(); ++r) {
    torch::Tensor p = parts[r].to(torch::kCPU).contiguous();
    out.insert(out.end(), p.data_ptr<T>(), p.data_ptr<T>() + lens[r]);
  }
  if (counts) *counts = lens;
  return out;
}

std::vector<int64_t> Dist::all_gather(const std::vector<int64_t>& local, std::vector<int64_t>* counts) {
  return gather_impl(local, torch::kInt64, counts);
}

std::vector<double> Dist::all_gather(const std::vector<double>& local, std::vector<int64_t>* counts) {
  return gather_impl(local, torch::kFloat64, counts);
}

void Dist::all_reduce_sum(torch::Tensor& t, CommStats* stats) {
  if (!pg_) return;
  const auto t0 = std::chrono::steady_clock::now();
  if (t.device() == comm_device_ && t.is_contiguous()) {
    pg_->all_reduce_sum(t);
  } else {
    torch::Tensor c = t.to(comm_device_).contiguous();
    pg_->all_reduce_sum(c);
    t.copy_(c);
  }
  if (stats) {
    stats->bytes += t.numel() * static_cast<int64_t>(t.element_size());
    stats->seconds += seconds_since(t0);
    stats->calls += 1;
  }
}

void Dist::broadcast(torch::Tensor& t, int root, CommStats* stats) {
  if (!pg_) return;
  const auto t0 = std::chrono::steady_clock::now();
  if (t.device() == comm_device_ && t.is_contiguous()) {
    pg_->broadcast(t, root);
  } else {
    torch::Tensor c = t.to(comm_device_).contiguous();
    pg_->broadcast(c, root);
    t.copy_(c);
  }
  if (stats) {
    stats->bytes += t.numel() * static_cast<int64_t>(t.element_size());
    stats->seconds += seconds_since(t0);
    stats->calls += 1;
  }
}

void Dist::barrier() {
  if (pg_) pg_->barrier();
}

std::unique_ptr<Dist> init_dist(const DistEnv& env, const std::string& ddp_backend, double ddp_timeout,
                                const torch::Device& device) {
  if (!env.distributed()) return std::make_unique<Dist>();  // ddp_backend does not matter
  const std::string backend = resolve_backend(ddp_backend, device);
  auto pg = std::make_unique<ProcessGroup>(env, backend, ddp_timeout);
  return std::make_unique<Dist>(std::move(pg), backend == "nccl" ? device : torch::Device(torch::kCPU));
}

}  // namespace refract::distributed
