// Atomic writes: write to a temporary file in the same directory, fsync, rename.
// A crash at any moment leaves either the old file or the new one, never a torn one.
#pragma once
#include <string>
#include <string_view>

namespace refract {

// Writes `bytes` to `path` atomically. Throws refract::Error naming the path on failure.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Reads a whole file; throws refract::Error naming the path when it cannot.
std::string read_file(const std::string& path);

// A temporary sibling name for `path` (unique per process and call).
std::string temp_path_for(const std::string& path);

// fsync a directory so that a rename inside it is durable.
void fsync_directory(const std::string& dir);

}  // namespace refract
