#include "http/listen.h"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>

#include "common/check.h"
#include "common/log.h"
#include "http/socket.h"

namespace refract::http {

namespace {
std::atomic<bool> g_stop_requested{false};
void on_signal(int) { g_stop_requested = true; }
}  // namespace

int bind(httplib::Server& server, const std::string& host, int64_t port) {
  REFRACT_CHECK(port >= 0 && port <= 65535) << "port: " << port << " is not a TCP port";
  int bound = static_cast<int>(port);
  if (port == 0) {
    bound = server.bind_to_any_port(host);
    REFRACT_CHECK(bound > 0) << "host: cannot bind " << host << " on any port";
  } else {
    REFRACT_CHECK(server.bind_to_port(host, bound)) << "port: cannot bind " << host << ":" << port << " (in use?)";
  }
  // Debian's libcpp-httplib is compiled with a listen backlog of 5: 64 clients connecting at
  // once overflowed the accept queue and some saw "connection reset" (docs/serve.md, load test).
  // Linux lets listen() be called again to resize the queue.
  const int fd = listening_fd(bound);
  if (fd < 0 || ::listen(fd, kListenBacklog) != 0)
    LOG_WARN("could not raise the listen backlog of port {} to {}: concurrent connections beyond httplib's 5 may be refused",
             bound, kListenBacklog);
  return bound;
}

void listen_until_signal(httplib::Server& server, const std::string& announcement) {
  // The handler only sets a flag; a watcher thread stops the listener (stop() is not
  // async-signal-safe). A closed client socket must not kill the process: SIGPIPE is ignored.
  g_stop_requested = false;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done) {
      // Repeated until the listener returns: httplib's stop() does nothing if it runs before
      // listen_after_bind() has started, and a signal can arrive in that window.
      if (g_stop_requested) server.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  std::printf("%s\n", announcement.c_str());
  std::fflush(stdout);
  server.listen_after_bind();
  done = true;
  watcher.join();
}

}  // namespace refract::http
