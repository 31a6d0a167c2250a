// The device of every test that takes one: REFRACT_TEST_DEVICE ("cpu" unless set; "cuda:0" runs
// the suite on a GPU). In-process tests load models with test_device(); tests that spawn
// `refract` pass device_flag(). Results are compared on the CPU (fixtures live there).
#pragma once
#include <cstdlib>
#include <string>

#if __has_include(<torch/torch.h>)
#include <torch/torch.h>
#endif

namespace refract::testing {

inline std::string test_device_name() {
  const char* d = std::getenv("REFRACT_TEST_DEVICE");
  return d != nullptr && *d != '\0' ? std::string(d) : std::string("cpu");
}

// " --device NAME", for command lines of `refract` subcommands that open a model.
inline std::string device_flag() { return " --device " + test_device_name(); }

// `args` of a refract command line (subcommand first) with device_flag() appended when the
// subcommand opens a model; other subcommands (model init, data, score, ...) take no --device.
inline std::string with_test_device(const std::string& args) {
  for (const char* cmd : {"sft ", "grpo ", "eval ", "infer ", "export ", "model forward ", "serve ", "demo "})
    if (args.rfind(cmd, 0) == 0) return args + device_flag();
  return args;
}

#if __has_include(<torch/torch.h>)
inline torch::Device test_device() { return torch::Device(test_device_name()); }
#endif

}  // namespace refract::testing
