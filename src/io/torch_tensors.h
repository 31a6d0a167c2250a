// Bridge between safetensors and torch::Tensor (library refract_io_torch).
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors.h"

namespace refract::io {

torch::ScalarType to_scalar_type(DType d);
DType from_scalar_type(torch::ScalarType t);

// Copies a mapped tensor into a new CPU tensor of the same dtype and shape.
torch::Tensor to_tensor(const TensorInfo& info);
// The same, then moved to `device` (a no-op on CPU).
torch::Tensor to_tensor(const TensorInfo& info, const torch::Device& device);

// Loads every tensor of a file or checkpoint directory (sharded or not) onto the CPU.
std::map<std::string, torch::Tensor> load_tensors(const std::string& path_or_dir);
// The same, with every tensor placed on `device`.
std::map<std::string, torch::Tensor> load_tensors(const std::string& path_or_dir,
                                                  const torch::Device& device);

// Saves tensors (any device; copied to CPU contiguous) atomically.
void save_tensors(const std::string& path,
                  const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata = {});

}  // namespace refract::io
