// `refract env`: what this copy of refract runs on, for bug reports (what
// `python -m torch.utils.collect_env` and vLLM's `collect-env` tell).
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace refract::commands {

// libtorch (version, CUDA / cuDNN / NCCL as built and as found at run time, visible devices
// and their memory, BLAS and the BLAS library actually loaded, CPU capability, threads) and the
// machine (CPU model, ISA extensions, cores, memory, OS). The caller adds refract's own version.
nlohmann::ordered_json collect_environment();

// The same as indented "key: value" lines, one section per top-level key.
std::string format_environment(const nlohmann::ordered_json& env);

}  // namespace refract::commands
