// Runs `refract SUBCOMMAND ...` (serve, dashboard) as a child process and stops it with SIGTERM.
// The server binds the port it is given (tests pass --port 0) and announces it on stdout as
// "refract SUBCOMMAND: listening on http://HOST:PORT (...)"; log lines may come first on the
// same stream, stderr goes to a log file.
#pragma once
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

namespace refract::testing {

class ChildServer {
 public:
  // Starts `REFRACT_BINARY subcommand args...`; returns false (with error()) if it did not
  // announce a port within timeout_ms.
  bool start(const std::string& subcommand, const std::vector<std::string>& args, const std::string& log_path,
             int timeout_ms) {
    int fds[2];
    if (pipe(fds) != 0) return fail("pipe failed");
    pid_ = fork();
    if (pid_ < 0) return fail("fork failed");
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (log >= 0) dup2(log, STDERR_FILENO);
      close(fds[0]);
      std::vector<std::string> all = {REFRACT_BINARY, subcommand};
      all.insert(all.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    out_fd_ = fds[0];
    const std::string mark = "refract " + subcommand + ": listening on http://";
    std::string text;
    size_t at = std::string::npos;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (at == std::string::npos || text.find('\n', at) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return fail("no announcement within the timeout: " + text);
      pollfd p{out_fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[256];
      const ssize_t n = read(out_fd_, buf, sizeof(buf));
      if (n <= 0) return fail(subcommand + " exited before listening: " + text);
      text.append(buf, size_t(n));
      at = text.find(mark);
    }
    // HOST:PORT ends at the first space; the port is what follows its last ':'.
    const std::string address = text.substr(at + mark.size(), text.find(' ', at + mark.size()) - at - mark.size());
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos || colon + 1 == address.size())
      return fail("unexpected announcement: " + text.substr(at, text.find('\n', at) - at));
    port_ = std::stoi(address.substr(colon + 1));
    return true;
  }

  // SIGTERM, then the exit status (-1 when it had to be killed after 10 s).
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

  ~ChildServer() {
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

}  // namespace refract::testing
