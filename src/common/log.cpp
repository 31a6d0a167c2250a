#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include "common/check.h"

namespace refract {
void set_log_level(const std::string& level) {
  auto lv = spdlog::level::from_str(level);
  REFRACT_CHECK(lv != spdlog::level::off || level == "off")
      << "log_level: unknown level '" << level << "' (trace, debug, info, warn, error)";
  spdlog::set_default_logger(spdlog::stderr_color_mt("refract"));
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
  spdlog::set_level(lv);
}
}  // namespace refract
