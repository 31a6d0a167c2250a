#include "distributed/process_group.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>

#include <chrono>
#include <cstdlib>

#include "common/check.h"
#include "common/log.h"
#include "common/net.h"

// USE_C10D_NCCL is defined by src/distributed/CMakeLists.txt when this libtorch has CUDA and
// nccl.h is found; the header is empty without it.
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace refract::distributed {

namespace {
#if TORCH_VERSION_MAJOR >= 2
using Backend = c10d::Backend;  // 2.x: process-group back-ends derive from c10d::Backend
#else
using Backend = c10d::ProcessGroup;  // 1.13: they derive from ProcessGroup itself
#endif

std::string message_of(const std::exception& e) {
  if (const auto* ce = dynamic_cast<const c10::Error*>(&e)) return ce->what_without_backtrace();
  return e.what();
}

}  // namespace

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Backend> backend;
  bool broken = false;  // a collective failed: the back-end may hold threads stuck on a dead peer
};

bool nccl_available() {
#ifdef USE_C10D_NCCL
  return true;
#else
  return false;
#endif
}

std::string resolve_backend(const std::string& ddp_backend, const torch::Device& device) {
  std::string b = ddp_backend;
  if (b == "auto") b = device.is_cuda() ? "nccl" : "gloo";
  REFRACT_CHECK(b == "gloo" || b == "nccl") << "ddp_backend: '" << ddp_backend << "' is not one of auto, nccl, gloo";
  REFRACT_CHECK(b != "nccl" || nccl_available())
      << "ddp_backend nccl: this refract was built against a libtorch without ProcessGroupNCCL "
         "(Debian's libtorch is CPU-only; build with LIBTORCH=wheel), use ddp_backend gloo";
  REFRACT_CHECK(b != "nccl" || device.is_cuda()) << "ddp_backend nccl needs a cuda device, got " << device.str();
  REFRACT_CHECK(b != "gloo" || !device.is_cuda())
      << "ddp_backend gloo: refract's Gloo path moves CPU tensors; use ddp_backend nccl (or auto) on " << device.str();
  return b;
}

ProcessGroup::ProcessGroup(const DistEnv& env, const std::string& backend, double timeout_seconds)
    : impl_(std::make_unique<Impl>()), rank_(env.rank), size_(env.world_size), backend_(backend),
      timeout_seconds_(timeout_seconds) {
  REFRACT_CHECK(env.distributed()) << "ProcessGroup needs WORLD_SIZE > 1";
  REFRACT_CHECK(timeout_seconds > 0) << "ddp_timeout must be > 0 seconds, got " << timeout_seconds;
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000));
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(env.master_port);
  so.isServer = env.rank == 0;
  so.numWorkers = static_cast<size_t>(env.world_size);
  so.waitWorkers = true;
  so.timeout = timeout;
  try {
    impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
  } catch (const std::exception& e) {
    REFRACT_FAIL() << "rank " << env.rank << "/" << env.world_size << ": rendezvous at " << env.master_addr << ":"
                   << env.master_port << " failed within ddp_timeout " << timeout_seconds
                   << " s (is every rank started, MASTER_ADDR reachable and MASTER_PORT free on rank 0?): "
                   << message_of(e);
  }
  try {
    if (backend == "gloo") {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      // GLOO_SOCKET_IFNAME (as in PyTorch) names the interface; one machine uses loopback.
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (is_loopback(env.master_addr))
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      opts->threads = 2;
      impl_->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, env.rank, env.world_size, opts);
    } else {
#ifdef USE_C10D_NCCL
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      impl_->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl_->store, env.rank, env.world_size, opts);
#else
      REFRACT_FAIL() << "ddp_backend nccl is not built in";
#endif
    }
  } catch (const refract::Error&) {
    throw;
  } catch (const std::exception& e) {
    REFRACT_FAIL() << "rank " << env.rank << "/" << env.world_size << ": creating the " << backend
                   << " process group failed: " << message_of(e);
  }
  LOG_INFO("rank {}/{}: {} process group ready ({}:{}, timeout {} s)", env.rank, env.world_size, backend,
           env.master_addr, env.master_port, timeout_seconds);
}

ProcessGroup::~ProcessGroup() {
  if (impl_ && impl_->broken) {
    // A back-end whose peer died may have worker threads blocked on it; its destructor would
    // join them. The process is about to exit with the error: leave it (and the store) alive.
    (void)impl_->backend.release();
    (void)impl_->store.release();
  }
}

namespace {
template <typename F>
void run_collective(ProcessGroup::Impl& impl, int rank, int size, double timeout_s, const char* what, F&& f) {
  try {
    auto work = f();
    work->wait();
  } catch (const std::exception& e) {
    impl.broken = true;
    REFRACT_FAIL() << "rank " << rank << "/" << size << ": " << what
                   << " failed: a peer exited or did not answer within ddp_timeout " << timeout_s
                   << " s: " << message_of(e);
  }
}
}  // namespace

void ProcessGroup::all_reduce_sum(torch::Tensor& t) {
  std::vector<torch::Tensor> v{t};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  run_collective(*impl_, rank_, size_, timeout_seconds_, "all_reduce",
                 [&] { return impl_->backend->allreduce(v, o); });
}

void ProcessGroup::broadcast(torch::Tensor& t, int root) {
  std::vector<torch::Tensor> v{t};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  o.rootTensor = 0;
  run_collective(*impl_, rank_, size_, timeout_seconds_, "broadcast",
                 [&] { return impl_->backend->broadcast(v, o); });
}

std::vector<torch::Tensor> ProcessGroup::all_gather(const torch::Tensor& t) {
  std::vector<torch::Tensor> in{t.contiguous()};
  std::vector<std::vector<torch::Tensor>> out(1);
  for (int r = 0; r < size_; ++r) out[0].push_back(torch::empty_like(in[0]));
  run_collective(*impl_, rank_, size_, timeout_seconds_, "all_gather",
                 [&] { return impl_->backend->allgather(out, in); });
  return out[0];
}

void ProcessGroup::barrier() {
  run_collective(*impl_, rank_, size_, timeout_seconds_, "barrier", [&] { return impl_->backend->barrier(); });
}

torch::optim::OptimizerParamState* find_param_state(torch::optim::Optimizer& opt, const torch::Tensor& p) {
#if TORCH_VERSION_MAJOR >= 2
  auto it = opt.state().find(p.unsafeGetTensorImpl());
#else
  auto it = opt.state().find(c10::guts::to_string(p.unsafeGetTensorImpl()));
#endif
  return it == opt.state().end() ? nullptr : it->second.get();
}

void set_param_state(torch::optim::Optimizer& opt, const torch::Tensor& p,
                     std::unique_ptr<torch::optim::OptimizerParamState> state) {
#if TORCH_VERSION_MAJOR >= 2
  opt.state()[p.unsafeGetTensorImpl()] = std::move(state);
#else
  opt.state()[c10::guts::to_string(p.unsafeGetTensorImpl())] = std::move(state);
#endif
}

}  // namespace refract::distributed
