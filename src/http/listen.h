// Binding and running an httplib::Server the way every refract server does (serve, dashboard):
// a port of 0 picks a free one, the bound address is announced on stdout, SIGINT / SIGTERM stop
// the listener cleanly.
#pragma once
#include <httplib.h>

#include <cstdint>
#include <string>

namespace refract::http {

// Pending connections the listening socket queues before the server accepts them.
constexpr int kListenBacklog = 1024;

// Binds host:port (port 0: any free port), sets the listen backlog to kListenBacklog and returns
// the bound port. Throws naming `host` or `port` when binding fails.
int bind(httplib::Server& server, const std::string& host, int64_t port);

// Prints `announcement` as one flushed stdout line (scripts and tests wait for it and read the
// port from it), then serves until SIGINT or SIGTERM.
void listen_until_signal(httplib::Server& server, const std::string& announcement);

}  // namespace refract::http
