#include "commands/env.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <sys/utsname.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#if defined(REFRACT_WITH_CUDA) && __has_include(<cuda_runtime_api.h>)
#include <cuda_runtime_api.h>
#define REFRACT_ENV_CUDA_RUNTIME 1
#endif
#if defined(REFRACT_WITH_CUDA) && __has_include(<nccl.h>)
#include <nccl.h>
#define REFRACT_ENV_NCCL 1
#endif

namespace refract::commands {
namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

// "12.4" from 12040 (CUDART and cuDNN encode versions as major*1000 + minor*10 [+ patch]).
std::string cuda_version(long v) {
  if (v <= 0) return "";
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}
std::string cudnn_version(long v) {
  if (v <= 0) return "";
  // cuDNN 9: major*10000 + minor*100 + patch; cuDNN 8: major*1000 + minor*100 + patch.
  if (v >= 90000) return std::to_string(v / 10000) + "." + std::to_string((v % 10000) / 100) + "." + std::to_string(v % 100);
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 100) + "." + std::to_string(v % 100);
}

// One value of at::show_config()'s "Build settings: K=V, K=V, ..." line, or "".
std::string build_setting(const std::string& config, const std::string& key) {
  const auto at = config.find(key + "=");
  if (at == std::string::npos) return "";
  const auto begin = at + key.size() + 1;
  const auto end = config.find_first_of(",\n", begin);
  return trim(config.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
}

// The line of at::show_config() that starts with `prefix` (after "  - "), without the prefix.
std::string config_line(const std::string& config, const std::string& prefix) {
  std::istringstream in(config);
  for (std::string line; std::getline(in, line);) {
    std::string t = trim(line);
    if (t.rfind("- ", 0) == 0) t = t.substr(2);
    if (t.rfind(prefix, 0) == 0) return trim(t.substr(prefix.size()));
  }
  return "";
}

// Shared libraries of this process whose file name contains one of `needles`: which BLAS
// (Debian's alternatives may give reference BLAS, ~25x slower than OpenBLAS) and which CUDA
// libraries were really loaded.
nlohmann::ordered_json loaded_libraries(const std::vector<std::string>& needles) {
  std::ifstream maps("/proc/self/maps");
  std::set<std::string> found;
  for (std::string line; std::getline(maps, line);) {
    const auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    const std::string path = line.substr(slash);
    const std::string name = path.substr(path.rfind('/') + 1);
    for (const auto& n : needles)
      if (name.find(n) != std::string::npos) found.insert(path);
  }
  return nlohmann::ordered_json(std::vector<std::string>(found.begin(), found.end()));
}

nlohmann::ordered_json cpu_info() {
  nlohmann::ordered_json cpu;
  std::ifstream in("/proc/cpuinfo");
  std::string model, flags;
  for (std::string line; std::getline(in, line) && (model.empty() || flags.empty());) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon));
    if (key == "model name" && model.empty()) model = trim(line.substr(colon + 1));
    if (key == "flags" && flags.empty()) flags = trim(line.substr(colon + 1));
  }
  cpu["model"] = model;
  cpu["logical_cores"] = std::thread::hardware_concurrency();
  // The extensions that decide which kernels run (AVX2 / AVX-512 / bf16 / AMX).
  const std::vector<std::string> interesting = {"sse4_2", "avx", "avx2", "fma", "f16c",
      "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
      "amx_tile", "amx_bf16", "amx_int8"};
  std::set<std::string> have;
  std::istringstream fs(flags);
  for (std::string f; fs >> f;) have.insert(f);
  nlohmann::ordered_json isa = nlohmann::ordered_json::array();
  for (const auto& f : interesting)
    if (have.count(f)) isa.push_back(f);
  cpu["isa"] = isa;
  return cpu;
}

nlohmann::ordered_json os_info() {
  nlohmann::ordered_json os;
  struct utsname u {};
  if (uname(&u) == 0) os["kernel"] = std::string(u.sysname) + " " + u.release + " " + u.machine;
  std::ifstream rel("/etc/os-release");
  for (std::string line; std::getline(rel, line);)
    if (line.rfind("PRETTY_NAME=", 0) == 0) {
      std::string v = line.substr(12);
      if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
      os["name"] = v;
    }
  std::ifstream mem("/proc/meminfo");
  for (std::string line; std::getline(mem, line);)
    if (line.rfind("MemTotal:", 0) == 0) {
      os["memory_gib"] = std::stod(line.substr(9)) / (1024.0 * 1024.0);
      break;
    }
  return os;
}

// A libtorch without its CUDA library answers version queries with an exception: that means
// "not built with CUDA" here.
long hook_version(long (at::CUDAHooksInterface::*query)() const) {
  try {
    return (at::detail::getCUDAHooks().*query)();
  } catch (const std::exception&) {
    return 0;
  }
}

nlohmann::ordered_json cuda_info() {
  const auto& hooks = at::detail::getCUDAHooks();
  const long cudart = hook_version(&at::CUDAHooksInterface::versionCUDART);
  nlohmann::ordered_json cuda;
  cuda["built_with_cuda"] = cudart > 0;
#ifdef REFRACT_WITH_CUDA
  cuda["built_with_cuda"] = true;
#endif
  cuda["available"] = torch::cuda::is_available();
  cuda["runtime_version"] = cuda_version(cudart);
  cuda["cudnn_version"] = hooks.compiledWithCuDNN() ? cudnn_version(hook_version(&at::CUDAHooksInterface::versionCuDNN)) : "";
#ifdef REFRACT_ENV_NCCL
  cuda["nccl_version"] = std::to_string(NCCL_MAJOR) + "." + std::to_string(NCCL_MINOR) + "." +
                         std::to_string(NCCL_PATCH);
#else
  cuda["nccl_version"] = "";
#endif
  nlohmann::ordered_json devices = nlohmann::ordered_json::array();
  const int64_t n = torch::cuda::is_available() ? static_cast<int64_t>(torch::cuda::device_count()) : 0;
  for (int64_t i = 0; i < n; ++i) {
    nlohmann::ordered_json d = {{"index", i}};
#ifdef REFRACT_ENV_CUDA_RUNTIME
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, static_cast<int>(i)) == cudaSuccess) {
      d["name"] = prop.name;
      d["memory_gib"] = static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0);
      d["compute_capability"] = std::to_string(prop.major) + "." + std::to_string(prop.minor);
    }
#endif
    devices.push_back(d);
  }
  cuda["devices"] = devices;
  cuda["libraries_loaded"] = loaded_libraries({"libcudart", "libcudnn.", "libnccl", "libcublas."});
  return cuda;
}

}  // namespace

nlohmann::ordered_json collect_environment() {
  const std::string config = at::show_config();
  nlohmann::ordered_json torch_json;
  torch_json["version"] = build_setting(config, "TORCH_VERSION");
  torch_json["cpu_capability"] = config_line(config, "CPU capability usage:");
  torch_json["blas"] = build_setting(config, "BLAS_INFO");
  torch_json["lapack"] = build_setting(config, "LAPACK_INFO");
  torch_json["openmp"] = at::globalContext().hasOpenMP();
  torch_json["mkl"] = at::globalContext().hasMKL();
  torch_json["mkldnn"] = at::globalContext().hasMKLDNN();
  nlohmann::ordered_json blas_loaded =
      loaded_libraries({"libblas", "libopenblas", "libmkl_rt", "libmkl_core", "libblis", "libcblas"});
  // The torch wheel links MKL statically into libtorch_cpu: no BLAS library of its own is loaded.
  if (blas_loaded.empty() && at::globalContext().hasMKL()) blas_loaded.push_back("MKL (inside libtorch_cpu)");
  torch_json["blas_libraries_loaded"] = blas_loaded;
  torch_json["threads"] = at::get_num_threads();
  torch_json["interop_threads"] = at::get_num_interop_threads();
  return {{"libtorch", torch_json}, {"cuda", cuda_info()}, {"cpu", cpu_info()}, {"os", os_info()}};
}

std::string format_environment(const nlohmann::ordered_json& env) {
  std::ostringstream out;
  auto value_text = [](const nlohmann::ordered_json& v) -> std::string {
    if (v.is_string()) return v.get<std::string>().empty() ? "-" : v.get<std::string>();
    if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
    if (v.is_array()) {
      if (v.empty()) return "-";
      std::string s;
      for (const auto& e : v) s += (s.empty() ? "" : ", ") + (e.is_string() ? e.get<std::string>() : e.dump());
      return s;
    }
    if (v.is_number_float()) {
      std::ostringstream f;
      f.precision(3);
      f << v.get<double>();
      return f.str();
    }
    return v.dump();
  };
  for (const auto& [section, fields] : env.items()) {
    out << section << ":\n";
    if (!fields.is_object()) {
      out << "  " << value_text(fields) << "\n";
      continue;
    }
    for (const auto& [key, value] : fields.items()) {
      if (key == "devices" && value.is_array()) {
        out << "  devices: " << (value.empty() ? "none visible" : std::to_string(value.size())) << "\n";
        for (const auto& d : value) {
          out << "    cuda:" << d.value("index", 0) << " " << d.value("name", std::string("?"));
          if (d.contains("memory_gib")) out << ", " << value_text(d["memory_gib"]) << " GiB";
          if (d.contains("compute_capability")) out << ", sm " << d["compute_capability"].get<std::string>();
          out << "\n";
        }
        continue;
      }
      out << "  " << key << ": " << value_text(value) << "\n";
    }
  }
  return out.str();
}

}  // namespace refract::commands
