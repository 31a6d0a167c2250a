// Where refract's shipped data lives: the demo warm start (assets/), configs/ and docs/.
//
// The data directory has the source tree's layout. It is found, in order:
//   1. $REFRACT_DATA_DIR, when set (then nothing else is tried);
//   2. <executable dir>/../share/refract: an install (cmake --install, the .deb);
//   3. the source tree, for a binary that lives in its build directory.
// A candidate counts when it holds configs/. When none does, the error names every place tried.
#pragma once
#include <string>
#include <vector>

namespace refract {

// The inputs of the search, explicit so that tests can vary them.
struct DataDirSearch {
  bool env_set = false;
  std::string env;         // $REFRACT_DATA_DIR
  std::string exe;         // this executable, symlinks resolved (/proc/self/exe)
  std::string source_dir;  // the source tree the binary was built from ("" = unknown)
  std::string build_dir;   // that tree's build directory
};

struct DataDirResult {
  std::string dir;                  // "" when not found
  std::vector<std::string> looked;  // each place tried, with why it was not used
};

DataDirResult find_data_dir(const DataDirSearch& search);
// This process's search: the environment, /proc/self/exe and the tree it was built in.
DataDirSearch this_process_data_dir_search();

// The data directory; throws naming every place tried.
std::string data_dir();
// <data dir>/<relative>; throws like data_dir().
std::string data_path(const std::string& relative);
// <data dir>/<relative>, or "" when there is no data directory: for a default value, whose use
// reports the search with data_path().
std::string data_path_or_empty(const std::string& relative);

}  // namespace refract
