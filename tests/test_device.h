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

#if __has_include(<torch/torch.h>)
inline torch::Device test_device() { return torch::Device(test_device_name()); }
#endif

}  // namespace refract::testing
