// One logging entry point (spdlog underneath). Human-readable lines go to stderr;
// metrics go to metrics.jsonl (train/), never mixed into these.
#pragma once
#include <spdlog/spdlog.h>

namespace refract {
// Sets the global level from a name: trace, debug, info, warn, error.
void set_log_level(const std::string& level);
}  // namespace refract

#define LOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)
