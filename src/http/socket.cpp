#include "http/socket.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstdlib>
#include <functional>
#include <string>

namespace refract::http {

namespace {

// The first descriptor (beyond stdio) for which `match` is true; -1 if none.
int find_fd(const std::function<bool(int)>& match) {
  DIR* d = opendir("/proc/self/fd");
  if (!d) return -1;
  int found = -1;
  while (dirent* e = readdir(d)) {
    const int fd = std::atoi(e->d_name);
    if (fd <= 2 || fd == dirfd(d)) continue;
    if (match(fd)) {
      found = fd;
      break;
    }
  }
  closedir(d);
  return found;
}

// The textual address and the port of a socket address (port -1 for other families).
std::string address_of(const sockaddr_storage& sa, int* port) {
  char buf[INET6_ADDRSTRLEN] = {0};
  *port = -1;
  if (sa.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&sa);
    inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
    *port = ntohs(in->sin_port);
  } else if (sa.ss_family == AF_INET6) {
    const auto* in = reinterpret_cast<const sockaddr_in6*>(&sa);
    inet_ntop(AF_INET6, &in->sin6_addr, buf, sizeof(buf));
    *port = ntohs(in->sin6_port);
  }
  return buf;
}

}  // namespace

int listening_fd(int port) {
  return find_fd([port](int fd) {
    int accepting = 0;
    socklen_t len = sizeof(accepting);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting) return false;
    sockaddr_storage local{};
    socklen_t ll = sizeof(local);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0) return false;
    int bound = -1;
    address_of(local, &bound);
    return bound == port;
  });
}

int connection_fd(const httplib::Request& req) {
  return find_fd([&req](int fd) {
    sockaddr_storage local{}, peer{};
    socklen_t ll = sizeof(local), pl = sizeof(peer);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0) return false;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0) return false;
    int lport = -1, pport = -1;
    address_of(local, &lport);
    const std::string paddr = address_of(peer, &pport);
    return lport == req.local_port && pport == req.remote_port && paddr == req.remote_addr;
  });
}

bool client_gone(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, POLLRDHUP, 0};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

}  // namespace refract::http
