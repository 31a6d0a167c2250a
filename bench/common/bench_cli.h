// Command-line handling shared by the benchmarks: named flags through CLI11, each value checked
// before any benchmark work starts (libtorch aborts with a stack trace on e.g. 0 threads), and a
// bad argument reported as one line naming the flag, with exit code 2 (the shell's usage error).
#pragma once

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace refract::bench {

// Parses argv. Returns -1 when the benchmark should run, otherwise the code to exit with:
// 0 after --help, 2 after a bad argument.
inline int parse_args(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::fprintf(stderr, "%s: %s (see --help)\n", app.get_name().c_str(), e.what());
    return 2;
  }
  return -1;
}

// A positive integer (threads, repetitions, sizes). Checked on the text, so "abc", "1.5" and "0"
// all give a message naming the flag instead of CLI11's conversion error.
inline CLI::Validator positive_int() {
  return CLI::Validator(
      [](std::string& s) -> std::string {
        char* end = nullptr;
        errno = 0;
        const long long v = std::strtoll(s.c_str(), &end, 10);
        if (s.empty() || *end != '\0' || errno == ERANGE || v < 1)
          return "expected a positive integer, got '" + s + "'";
        return std::string();
      },
      "POSITIVE");
}

}  // namespace refract::bench
