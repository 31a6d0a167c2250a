// safetensors <-> torch::Tensor. Copies (never aliases) the mapping, so a loaded tensor
// outlives its file and is correctly aligned whatever the header padding was.
#include "io/torch_tensors.h"

#include <cstring>

#include "common/check.h"

namespace refract::io {

torch::ScalarType to_scalar_type(DType d) {
  switch (d) {
    case DType::F64: return torch::kFloat64;
    case DType::F32: return torch::kFloat32;
    case DType::F16: return torch::kFloat16;
    case DType::BF16: return torch::kBFloat16;
    case DType::I64: return torch::kInt64;
    case DType::I32: return torch::kInt32;
    case DType::I16: return torch::kInt16;
    case DType::I8: return torch::kInt8;
    case DType::U8: return torch::kUInt8;
    case DType::BOOL: return torch::kBool;
  }
  REFRACT_FAIL() << "invalid DType " << static_cast<int>(d);
}

DType from_scalar_type(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat64: return DType::F64;
    case torch::kFloat32: return DType::F32;
    case torch::kFloat16: return DType::F16;
    case torch::kBFloat16: return DType::BF16;
    case torch::kInt64: return DType::I64;
    case torch::kInt32: return DType::I32;
    case torch::kInt16: return DType::I16;
    case torch::kInt8: return DType::I8;
    case torch::kUInt8: return DType::U8;
    case torch::kBool: return DType::BOOL;
    default: break;
  }
  REFRACT_FAIL() << "torch dtype " << c10::toString(t) << " has no safetensors equivalent";
}

torch::Tensor to_tensor(const TensorInfo& info) {
  torch::Tensor t = torch::empty(info.shape, torch::TensorOptions().dtype(to_scalar_type(info.dtype)));
  REFRACT_CHECK(static_cast<size_t>(t.nbytes()) == info.nbytes)
      << "tensor '" << info.name << "': " << info.nbytes << " bytes for shape of " << t.nbytes();
  // memcpy, not from_blob: mapped data is only as aligned as the header length makes it.
  if (info.nbytes) std::memcpy(t.data_ptr(), info.data, info.nbytes);
  return t;
}

torch::Tensor to_tensor(const TensorInfo& info, const torch::Device& device) {
  torch::Tensor t = to_tensor(info);
  return device.is_cpu() ? t : t.to(device);
}

std::map<std::string, torch::Tensor> load_tensors(const std::string& path_or_dir) {
  return load_tensors(path_or_dir, torch::Device(torch::kCPU));
}

std::map<std::string, torch::Tensor> load_tensors(const std::string& path_or_dir,
                                                  const torch::Device& device) {
  const TensorStore store = TensorStore::open(path_or_dir);
  std::map<std::string, torch::Tensor> out;
  for (const std::string& name : store.names()) out.emplace(name, to_tensor(store.at(name), device));
  return out;
}

void save_tensors(const std::string& path,
                  const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata) {
  std::vector<torch::Tensor> cpu;  // keeps the contiguous CPU copies alive while writing
  cpu.reserve(tensors.size());
  std::vector<TensorToWrite> rows;
  rows.reserve(tensors.size());
  for (const auto& [name, t] : tensors) {
    REFRACT_CHECK(t.defined()) << path << ": tensor '" << name << "' is undefined";
    cpu.push_back(t.detach().to(torch::kCPU).contiguous());
    const torch::Tensor& c = cpu.back();
    TensorToWrite row;
    row.name = name;
    row.dtype = from_scalar_type(c.scalar_type());
    row.shape = c.sizes().vec();
    row.data = c.data_ptr();
    row.nbytes = static_cast<size_t>(c.nbytes());
    rows.push_back(std::move(row));
  }
  write_safetensors(path, rows, metadata);
}

}  // namespace refract::io
