#include <gtest/gtest.h>

#include "common/net.h"

namespace refract {
namespace {

TEST(Net, LoopbackIsLocalhostAnd127Slash8AndIpv6One) {
  for (const char* host : {"localhost", "127.0.0.1", "127.1.2.3", "::1", "0:0:0:0:0:0:0:1"}) EXPECT_TRUE(is_loopback(host)) << host;
  // A name that merely starts like a loopback address is not one; nor is "any address".
  for (const char* host : {"0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "127.example.com", "", "localhost.example.com"})
    EXPECT_FALSE(is_loopback(host)) << host;
}

}  // namespace
}  // namespace refract
