// The sockets behind an httplib::Server, which httplib 0.11 does not expose: found by scanning
// this process's file descriptors (/proc/self/fd) for the one whose addresses match.
#pragma once
#include <httplib.h>

namespace refract::http {

// The listening socket bound to `port`; -1 if none.
int listening_fd(int port);

// The socket of this request's connection: local port and peer address / port are the
// request's. -1 if not found.
int connection_fd(const httplib::Request& req);

// Whether the client of a connection socket has closed (or reset) it. false for fd < 0.
bool client_gone(int fd);

}  // namespace refract::http
