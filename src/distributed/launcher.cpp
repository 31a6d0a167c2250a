#include "distributed/launcher.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>

#include "common/check.h"

extern char** environ;

namespace refract::distributed {

namespace {

volatile sig_atomic_t g_signal = 0;  // SIGINT / SIGTERM received by the launcher
void on_signal(int sig) { g_signal = sig; }

struct Worker {
  int rank = 0;
  pid_t pid = -1;
  int out_fd = -1, err_fd = -1;  // read ends of the worker's stdout / stderr
  LinePrefixer out, err;
  bool running = true;
  int code = 0;                  // exit code, or 128 + signal
  Worker(int r) : rank(r), out("[rank " + std::to_string(r) + "] "), err("[rank " + std::to_string(r) + "] ") {}
};

void write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// The environment of worker `rank`: ours, with the rendezvous variables replaced.
std::vector<std::string> worker_environment(const LaunchSettings& s, int rank, int port) {
  const std::vector<std::pair<std::string, std::string>> set = {
      {"RANK", std::to_string(rank)},
      {"LOCAL_RANK", std::to_string(rank)},
      {"WORLD_SIZE", std::to_string(s.nproc_per_node)},
      {"LOCAL_WORLD_SIZE", std::to_string(s.nproc_per_node)},
      {"GROUP_RANK", "0"},
      {"MASTER_ADDR", s.master_addr},
      {"MASTER_PORT", std::to_string(port)}};
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('='));
    bool replaced = false;
    for (const auto& [k, v] : set) replaced = replaced || k == key;
    if (!replaced) env.push_back(kv);
  }
  for (const auto& [k, v] : set) env.push_back(k + "=" + v);
  return env;
}

pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, int out_w, int err_w,
            const std::vector<int>& close_fds) {
  std::vector<char*> a, e;
  for (const auto& x : argv) a.push_back(const_cast<char*>(x.c_str()));
  a.push_back(nullptr);
  for (const auto& x : env) e.push_back(const_cast<char*>(x.c_str()));
  e.push_back(nullptr);
  const pid_t pid = ::fork();
  REFRACT_CHECK(pid >= 0) << "fork failed: " << std::strerror(errno);
  if (pid == 0) {
    // The child: only async-signal-safe calls until exec.
    ::dup2(out_w, STDOUT_FILENO);
    ::dup2(err_w, STDERR_FILENO);
    for (int fd : close_fds) ::close(fd);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGINT, &dfl, nullptr);
    ::sigaction(SIGTERM, &dfl, nullptr);
    ::execve(a[0], a.data(), e.data());
    const char msg[] = "refract launcher: exec failed\n";
    ssize_t n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)n;
    ::_exit(127);
  }
  return pid;
}

// Reads what is available on fd into the prefixer and forwards it; false at EOF.
bool pump(int fd, LinePrefixer& p, int to) {
  char buf[65536];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) {
    write_all(to, p.flush());
    return false;
  }
  write_all(to, p.feed(buf, static_cast<size_t>(n)));
  return true;
}

}  // namespace

std::string LinePrefixer::feed(const char* data, size_t n) {
  pending_.append(data, n);
  std::string out;
  size_t start = 0;
  for (size_t nl; (nl = pending_.find('\n', start)) != std::string::npos; start = nl + 1)
    out += prefix_ + pending_.substr(start, nl + 1 - start);
  pending_.erase(0, start);
  return out;
}

std::string LinePrefixer::flush() {
  if (pending_.empty()) return "";
  std::string out = prefix_ + pending_ + "\n";
  pending_.clear();
  return out;
}

std::vector<std::string> own_command_line() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::string> argv;
  for (size_t start = 0; start < all.size();) {
    const size_t end = all.find('\0', start);
    argv.push_back(all.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  REFRACT_CHECK(!argv.empty()) << "cannot read /proc/self/cmdline";
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  REFRACT_CHECK(n > 0) << "cannot resolve /proc/self/exe: " << std::strerror(errno);
  argv[0] = std::string(exe, static_cast<size_t>(n));
  return argv;
}

int pick_free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REFRACT_CHECK(fd >= 0) << "socket: " << std::strerror(errno);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  ::close(fd);
  REFRACT_CHECK(ok) << "cannot find a free port: " << std::strerror(errno);
  return ntohs(a.sin_port);
}

int launch_local_workers(const LaunchSettings& s, const std::vector<std::string>& argv) {
  REFRACT_CHECK(s.nproc_per_node >= 1) << "nproc_per_node must be >= 1, got " << s.nproc_per_node;
  REFRACT_CHECK(s.master_port >= 0 && s.master_port <= 65535) << "master_port must be in [0, 65535], got " << s.master_port;
  REFRACT_CHECK(!argv.empty()) << "launcher: no command";
  const int port = s.master_port == 0 ? pick_free_port() : s.master_port;

  struct sigaction sa {}, old_int {}, old_term {};
  sa.sa_handler = on_signal;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);
  g_signal = 0;

  std::vector<Worker> workers;
  std::vector<int> parent_fds;  // every pipe end the launcher keeps (children close them)
  for (int r = 0; r < s.nproc_per_node; ++r) workers.emplace_back(r);
  for (auto& w : workers) {
    int out[2], err[2];
    REFRACT_CHECK(::pipe2(out, O_CLOEXEC) == 0 && ::pipe2(err, O_CLOEXEC) == 0) << "pipe: " << std::strerror(errno);
    w.out_fd = out[0];
    w.err_fd = err[0];
    parent_fds.push_back(out[0]);
    parent_fds.push_back(err[0]);
    w.pid = spawn(argv, worker_environment(s, w.rank, port), out[1], err[1], parent_fds);
    ::close(out[1]);
    ::close(err[1]);
  }
  std::fprintf(stderr, "refract launcher: %d workers (pids", s.nproc_per_node);
  for (const auto& w : workers) std::fprintf(stderr, " %d", static_cast<int>(w.pid));
  std::fprintf(stderr, "), MASTER_ADDR=%s MASTER_PORT=%d\n", s.master_addr.c_str(), port);

  using Clock = std::chrono::steady_clock;
  int first_failure = 0;
  bool stopping = false;
  Clock::time_point stop_time;
  auto stop_all = [&](int sig) {
    for (auto& w : workers)
      if (w.running) ::kill(w.pid, sig);
  };
  int drains = 0;
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<std::pair<Worker*, bool>> who;  // (worker, is stderr)
    for (auto& w : workers) {
      if (w.out_fd >= 0) fds.push_back({w.out_fd, POLLIN, 0}), who.emplace_back(&w, false);
      if (w.err_fd >= 0) fds.push_back({w.err_fd, POLLIN, 0}), who.emplace_back(&w, true);
    }
    if (!fds.empty()) ::poll(fds.data(), fds.size(), 200);
    for (size_t i = 0; i < fds.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Worker& w = *who[i].first;
      int& fd = who[i].second ? w.err_fd : w.out_fd;
      if (!pump(fd, who[i].second ? w.err : w.out, who[i].second ? STDERR_FILENO : STDOUT_FILENO)) {
        ::close(fd);
        fd = -1;
      }
    }
    if (g_signal && !stopping) {
      std::fprintf(stderr, "refract launcher: got signal %d, stopping the workers\n", static_cast<int>(g_signal));
      stop_all(g_signal);
      first_failure = first_failure ? first_failure : 128 + g_signal;
      stopping = true;
      stop_time = Clock::now();
    }
    bool any_running = false;
    for (auto& w : workers) {
      if (!w.running) continue;
      int status = 0;
      const pid_t r = ::waitpid(w.pid, &status, WNOHANG);
      if (r == w.pid) {
        w.running = false;
        w.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (w.code != 0) {
          // Every failure is reported; the first one stops the others (whose deaths by the
          // launcher's own SIGTERM / SIGKILL are not news).
          const bool ours = stopping && WIFSIGNALED(status) && (WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGKILL);
          if (!ours) {
            if (WIFSIGNALED(status))
              std::fprintf(stderr, "refract launcher: rank %d (pid %d) was killed by signal %d%s\n", w.rank,
                           static_cast<int>(w.pid), WTERMSIG(status), stopping ? "" : "; stopping the others");
            else
              std::fprintf(stderr, "refract launcher: rank %d (pid %d) exited with code %d%s\n", w.rank,
                           static_cast<int>(w.pid), w.code, stopping ? "" : "; stopping the others");
          }
          if (!stopping) {
            first_failure = w.code;
            stopping = true;
            stop_time = Clock::now();
            stop_all(SIGTERM);
          }
        }
      } else {
        any_running = true;
      }
    }
    if (stopping && any_running &&
        std::chrono::duration<double>(Clock::now() - stop_time).count() > s.kill_grace_seconds) {
      stop_all(SIGKILL);
    }
    bool any_open = false;
    for (const auto& w : workers) any_open = any_open || w.out_fd >= 0 || w.err_fd >= 0;
    // A worker's grandchildren (external reward processes) may hold its pipes open: once every
    // worker has exited, stop forwarding.
    if (!any_running && (!any_open || stopping)) break;
    if (!any_running && any_open) {
      // Drain what is left, for at most ~5 s.
      if (++drains > 25) break;
    }
  }
  for (auto& w : workers) {
    if (w.out_fd >= 0) ::close(w.out_fd);
    if (w.err_fd >= 0) ::close(w.err_fd);
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  return first_failure;
}

}  // namespace refract::distributed
