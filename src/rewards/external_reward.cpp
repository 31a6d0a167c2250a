#include "rewards/external_reward.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "common/check.h"
#include "common/log.h"
#include "rewards/reward_util.h"

namespace refract::rewards {
namespace {

// One child process and the socket connected to its stdin and stdout. A socket (not a pipe)
// so that writing to a dead child fails with EPIPE via MSG_NOSIGNAL instead of killing us
// with SIGPIPE.
class ChildProcess {
 public:
  ChildProcess(std::string command, double timeout_s)
      : command_(std::move(command)), timeout_s_(timeout_s) {
    start();
  }
  ~ChildProcess() { stop(); }

  // Sends one line, returns the reply line. Throws on timeout, crash or I/O error; the
  // child is then stopped and restarted on the next call.
  std::string round_trip(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    if (pid_ <= 0) start();
    try {
      send_all(line + "\n");
      return read_line();
    } catch (...) {
      stop();
      throw;
    }
  }

  const std::string& command() const { return command_; }

 private:
  void start() {
    int sv[2];
    REFRACT_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0)
        << "external reward: socketpair failed: " << std::strerror(errno);
    const pid_t pid = fork();
    REFRACT_CHECK(pid >= 0) << "external reward: fork failed: " << std::strerror(errno);
    if (pid == 0) {  // child: the socket becomes stdin and stdout; stderr is inherited
      dup2(sv[1], STDIN_FILENO);
      dup2(sv[1], STDOUT_FILENO);
      execl("/bin/sh", "sh", "-c", command_.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(sv[1]);
    fd_ = sv[0];
    pid_ = pid;
    buffer_.clear();
  }

  void stop() {
    if (fd_ >= 0) close(fd_), fd_ = -1;
    if (pid_ <= 0) return;
    // Closing stdin asks a well-behaved child to exit; give it a moment, then terminate it.
    for (int i = 0; i < 20; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // "exited with status 3" / "killed by signal 9" / "is still running".
  std::string child_status() {
    int status = 0;
    pid_t r = 0;
    for (int i = 0; i < 50 && r == 0; ++i) {  // a closed socket usually means it is exiting
      r = waitpid(pid_, &status, WNOHANG);
      if (r == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (r != pid_) return "closed its output";
    pid_ = -1;
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
    return "stopped";
  }

  void send_all(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const std::string why = std::strerror(errno);
        REFRACT_FAIL() << "external reward '" << command_ << "': cannot send the request ("
                       << why << "); the process " << child_status();
      }
      off += static_cast<size_t>(n);
    }
  }

  std::string read_line() {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + std::chrono::duration<double>(timeout_s_);
    while (true) {
      const size_t nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
      if (left.count() <= 0)
        REFRACT_FAIL() << "external reward '" << command_ << "': no reply within "
                       << timeout_s_ << " s (setting timeout_seconds)";
      pollfd p{fd_, POLLIN, 0};
      const int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1 << 30)));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) continue;  // timeout is checked at the top of the loop
      char chunk[65536];
      const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        REFRACT_FAIL() << "external reward '" << command_ << "': the process " << child_status()
                       << " before replying (see its stderr above)";
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  std::string command_;
  double timeout_s_;
  std::mutex mu_;
  int fd_ = -1;
  pid_t pid_ = -1;
  std::string buffer_;
};

}  // namespace

nlohmann::json external_request(const std::vector<RewardInput>& batch) {
  nlohmann::json req = {{"prompts", nlohmann::json::array()},
                        {"completions", nlohmann::json::array()},
                        {"completion_ids", nlohmann::json::array()},
                        {"solutions", nlohmann::json::array()},
                        {"reward_methods", nlohmann::json::array()},
                        {"extra", nlohmann::json::array()},
                        {"images", nlohmann::json::array()}};
  for (const auto& in : batch) {
    req["prompts"].push_back(in.prompt);
    req["completions"].push_back(in.completion);
    req["completion_ids"].push_back(in.completion_ids);
    req["solutions"].push_back(in.solution);
    req["reward_methods"].push_back(in.reward_method);
    req["extra"].push_back(in.extra.is_null() ? nlohmann::json::object() : in.extra);
    nlohmann::json images = nlohmann::json::array();
    for (const auto& im : in.images)
      images.push_back({{"path", im.path}, {"width", im.width}, {"height", im.height}});
    req["images"].push_back(images);
  }
  return req;
}

RewardFn make_external_reward(const std::string& command, const nlohmann::json& settings) {
  REFRACT_CHECK(!command.empty()) << "external reward: empty command (use external:<command>)";
  const double timeout = setting_double(settings, "timeout_seconds");
  REFRACT_CHECK(timeout > 0) << "external reward: timeout_seconds must be > 0";
  auto child = std::make_shared<ChildProcess>(command, timeout);
  return [child](const std::vector<RewardInput>& batch) {
    // Decoded completions may hold invalid UTF-8 (a token cut mid-character): replace it
    // rather than fail the batch.
    const std::string line =
        external_request(batch).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    const std::string reply = child->round_trip(line);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(reply);
    } catch (const nlohmann::json::exception&) {
      REFRACT_FAIL() << "external reward '" << child->command() << "': reply is not JSON: '"
                     << reply.substr(0, 200) << "'";
    }
    REFRACT_CHECK(j.is_object() && j.contains("rewards") && j["rewards"].is_array())
        << "external reward '" << child->command()
        << "': reply must be {\"rewards\": [...]}, got: " << reply.substr(0, 200);
    const auto& r = j["rewards"];
    REFRACT_CHECK(r.size() == batch.size())
        << "external reward '" << child->command() << "': " << r.size() << " rewards for "
        << batch.size() << " completions";
    std::vector<std::optional<double>> out;
    for (size_t i = 0; i < r.size(); ++i) {
      if (r[i].is_null()) {
        out.push_back(std::nullopt);
        continue;
      }
      REFRACT_CHECK(r[i].is_number() && std::isfinite(r[i].get<double>()))
          << "external reward '" << child->command() << "': rewards[" << i
          << "] is not a number or null: " << r[i].dump();
      out.push_back(r[i].get<double>());
    }
    return out;
  };
}

}  // namespace refract::rewards
