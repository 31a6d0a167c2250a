// Small facts about network addresses, shared by everything that listens (serve, dashboard,
// the distributed rendezvous).
#pragma once
#include <string>

namespace refract {

// True for names that only this machine can reach: localhost, ::1 and 127.0.0.0/8. Servers
// warn when they listen on anything else.
bool is_loopback(const std::string& host);

}  // namespace refract
