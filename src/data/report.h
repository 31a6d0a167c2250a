// Per-file accounting: nothing lost, nothing silent. Every record read is either usable or
// listed with `<file>:<line>: <reason>`.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/sample.h"

namespace refract::data {

struct Rejection {
  std::string where;   // "<file>:<line>"
  std::string reason;
};

struct FileReport {
  std::string file;
  int64_t read = 0;     // records read (lines, array elements, COCO prompts)
  int64_t usable = 0;   // records that passed loading and validation
  std::vector<Rejection> rejected;
  // Usable samples a length limit left out on purpose (SFT max_length): listed, not errors.
  std::vector<Rejection> dropped;
};

struct Dataset {
  std::vector<Sample> samples;      // usable samples, in file order
  std::vector<FileReport> reports;  // one per data file
  int64_t num_rejected() const {
    int64_t n = 0;
    for (const auto& r : reports) n += static_cast<int64_t>(r.rejected.size());
    return n;
  }
  int64_t num_dropped() const {
    int64_t n = 0;
    for (const auto& r : reports) n += static_cast<int64_t>(r.dropped.size());
    return n;
  }
};

// The report as text: per file "read / usable / rejected", then every rejection.
std::string format_report(const Dataset& d);

}  // namespace refract::data
