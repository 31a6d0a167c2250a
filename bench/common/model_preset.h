// --presets check for the model benchmarks. It asks model::preset_config, so the accepted names
// are the model's own and a new preset needs no change here.
#pragma once

#include <CLI/CLI.hpp>

#include <exception>
#include <string>

#include "model/init.h"

namespace refract::bench {

inline CLI::Validator model_preset() {
  return CLI::Validator(
      [](std::string& name) -> std::string {
        try {
          model::preset_config(name);
          return std::string();
        } catch (const std::exception& e) {
          // Without REFRACT_FAIL's "[file:line] " prefix: it locates the check, not the user's mistake.
          const std::string msg = e.what();
          const size_t at = msg.find("] ");
          return !msg.empty() && msg[0] == '[' && at != std::string::npos ? msg.substr(at + 2) : msg;
        }
      },
      "PRESET");
}

}  // namespace refract::bench
