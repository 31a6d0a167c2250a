#include "distributed/dist_env.h"

#include <cerrno>
#include <cstdlib>

#include "common/check.h"

namespace refract::distributed {

namespace {

// An integer environment variable in [lo, hi]; `fallback` when unset.
int env_int(const char* name, int fallback, long lo, long hi) {
  const char* v = std::getenv(name);
  if (!v) return fallback;
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(v, &end, 10);
  REFRACT_CHECK(errno == 0 && end != v && *end == '\0' && x >= lo && x <= hi)
      << "environment variable " << name << "='" << v << "': expected an integer in [" << lo << ", " << hi << "]";
  return static_cast<int>(x);
}

}  // namespace

DistEnv dist_env_from_environment() {
  DistEnv e;
  e.world_size = env_int("WORLD_SIZE", 1, 1, 1 << 20);
  if (e.world_size == 1) return e;
  REFRACT_CHECK(std::getenv("RANK")) << "WORLD_SIZE=" << e.world_size
                                     << " is set but RANK is not (set both, as torchrun does)";
  e.rank = env_int("RANK", 0, 0, e.world_size - 1);
  e.local_rank = env_int("LOCAL_RANK", e.rank, 0, 1 << 20);
  const char* addr = std::getenv("MASTER_ADDR");
  REFRACT_CHECK(addr && *addr) << "WORLD_SIZE=" << e.world_size
                               << " needs MASTER_ADDR (the host of rank 0, e.g. 127.0.0.1)";
  e.master_addr = addr;
  REFRACT_CHECK(std::getenv("MASTER_PORT")) << "WORLD_SIZE=" << e.world_size
                                            << " needs MASTER_PORT (a free TCP port on MASTER_ADDR, e.g. 29500)";
  e.master_port = env_int("MASTER_PORT", 29500, 1, 65535);
  return e;
}

std::string device_for_rank(const std::string& device, const DistEnv& env) {
  if (!env.distributed() || device.rfind("cuda", 0) != 0) return device;
  return "cuda:" + std::to_string(env.local_rank);
}

}  // namespace refract::distributed
