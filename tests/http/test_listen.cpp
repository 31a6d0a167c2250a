// http::bind: the port rules, and the listen backlog that lets many clients connect at once.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <vector>

#include "http/listen.h"

namespace refract::http {
namespace {

TEST(HttpBind, RejectsAPortOutsideTcpsRangeNamingIt) {
  httplib::Server server;
  try {
    bind(server, "127.0.0.1", 70000);
    FAIL() << "port 70000 was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("port: 70000 is not a TCP port"), std::string::npos) << e.what();
  }
}

// Nothing accepts (the server is bound, not serving): the kernel completes handshakes only up to
// the accept queue's length and drops later SYNs, so with httplib's compiled-in backlog of 5 about
// 6 of these 64 connections complete; with kListenBacklog all do.
TEST(HttpBind, QueuesSixtyFourConnectionsBeforeTheFirstAccept) {
  httplib::Server server;
  const int port = bind(server, "127.0.0.1", 0);
  ASSERT_GT(port, 0);
  const int n = 64;
  ASSERT_GE(kListenBacklog, n);
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ASSERT_TRUE(rc == 0 || errno == EINPROGRESS) << "connect " << i << ": errno " << errno;
    fds.push_back(fd);
  }
  int connected = 0;
  for (int fd : fds) {
    pollfd p{fd, POLLOUT, 0};
    int err = -1;
    socklen_t len = sizeof(err);
    if (poll(&p, 1, 300) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) ++connected;
    close(fd);
  }
  EXPECT_EQ(connected, n);
}

}  // namespace
}  // namespace refract::http
