// `refract dashboard --port 0 ARGS` as a child process (tests/child_server.h).
#pragma once
#include <string>
#include <vector>

#include "child_server.h"

namespace refract::dashboard::testing {

class DashboardProcess : public refract::testing::ChildServer {
 public:
  bool start(std::vector<std::string> args, const std::string& log_path, int timeout_ms = 60000) {
    args.insert(args.begin(), {"--port", "0"});
    return ChildServer::start("dashboard", args, log_path, timeout_ms);
  }
};

}  // namespace refract::dashboard::testing
