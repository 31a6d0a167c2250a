// `refract serve ARGS --device REFRACT_TEST_DEVICE` as a child process (tests/child_server.h).
#pragma once
#include <string>
#include <vector>

#include "child_server.h"
#include "test_device.h"

namespace refract::serve::testing {

class ServerProcess : public refract::testing::ChildServer {
 public:
  bool start(std::vector<std::string> args, const std::string& log_path, int timeout_ms = 120000) {
    args.insert(args.end(), {"--device", refract::testing::test_device_name()});
    return ChildServer::start("serve", args, log_path, timeout_ms);
  }
};

}  // namespace refract::serve::testing
