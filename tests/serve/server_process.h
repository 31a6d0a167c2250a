// Runs `refract serve` as a child process on a free port (--port 0; the server prints the
// port it bound on its first stdout line) and stops it with SIGTERM.
#pragma once
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "test_device.h"

namespace refract::serve::testing {

class ServerProcess {
 public:
  // Starts the server; returns false (with `error`) if it did not announce a port in time.
  bool start(const std::vector<std::string>& args, const std::string& log_path, int timeout_ms = 120000) {
    int fds[2];
    if (pipe(fds) != 0) return fail("pipe failed");
    pid_ = fork();
    if (pid_ < 0) return fail("fork failed");
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (log >= 0) dup2(log, STDERR_FILENO);
      close(fds[0]);
      std::vector<char*> argv;
      std::vector<std::string> all = {REFRACT_BINARY, "serve"};
      all.insert(all.end(), args.begin(), args.end());
      all.insert(all.end(), {"--device", refract::testing::test_device_name()});  // REFRACT_TEST_DEVICE
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    out_fd_ = fds[0];
    // Read until the announcement line: "refract serve: listening on http://127.0.0.1:PORT (model ...)"
    // (log lines may come first on the same stream).
    const std::string kMark = "refract serve: listening on http://";
    std::string text;
    size_t at = std::string::npos;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (at == std::string::npos || text.find('\n', at) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return fail("no announcement within the timeout");
      pollfd p{out_fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[256];
      const ssize_t n = read(out_fd_, buf, sizeof(buf));
      if (n <= 0) return fail("server exited before listening: " + text);
      text.append(buf, size_t(n));
      at = text.find(kMark);
    }
    const std::string line = text.substr(at, text.find('\n', at) - at);
    const size_t colon = line.rfind(':', line.find(" (model"));
    if (colon == std::string::npos) return fail("unexpected announcement: " + line);
    port_ = std::stoi(line.substr(colon + 1));
    return true;
  }

  // SIGTERM, then the exit status (-1 when it had to be killed).
  int stop() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100; ++i) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      usleep(100 * 1000);
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return -1;
  }

  ~ServerProcess() {
    stop();
    if (out_fd_ >= 0) close(out_fd_);
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& error() const { return error_; }

 private:
  bool fail(const std::string& e) {
    error_ = e;
    return false;
  }
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int port_ = 0;
  std::string error_;
};

}  // namespace refract::serve::testing
