// Where this process sits in a data-parallel job, read from the environment variables torchrun,
// SLURM wrappers, Kubernetes operators and `refract ... --nproc_per_node N` set (no torch):
//   RANK, WORLD_SIZE         this process's global rank and the number of processes
//   LOCAL_RANK               its rank on this machine (CUDA device cuda:LOCAL_RANK)
//   MASTER_ADDR, MASTER_PORT where rank 0's TCPStore listens (the rendezvous)
// WORLD_SIZE unset (or 1) means a single process; then nothing else is read.
#pragma once
#include <string>

namespace refract::distributed {

struct DistEnv {
  int rank = 0;               // RANK
  int world_size = 1;         // WORLD_SIZE
  int local_rank = 0;         // LOCAL_RANK (default: RANK)
  std::string master_addr;    // MASTER_ADDR (e.g. 127.0.0.1, node0.cluster)
  int master_port = 29500;    // MASTER_PORT (torchrun's default 29500)
  bool distributed() const { return world_size > 1; }
};

// Reads and checks the variables; a missing or malformed one is an error naming it.
DistEnv dist_env_from_environment();

// The CUDA device of a rank: "cuda" / "cuda:K" become "cuda:LOCAL_RANK" when distributed (one
// GPU per process, as torchrun + accelerate do); other devices are returned unchanged.
std::string device_for_rank(const std::string& device, const DistEnv& env);

}  // namespace refract::distributed
