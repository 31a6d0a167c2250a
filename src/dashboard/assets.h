// The page's files, embedded in the binary at build time from src/dashboard/web/ (assets.cmake).
#pragma once
#include <string_view>

namespace refract::dashboard {

struct Asset {
  std::string_view path;          // "/index.html", "/app.js", "/style.css"
  std::string_view content_type;
  std::string_view bytes;
};
// nullptr for an unknown path.
const Asset* find_asset(std::string_view path);

}  // namespace refract::dashboard
