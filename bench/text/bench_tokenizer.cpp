// Encode throughput of the Qwen tokenizer on the reference bench text (single thread).
// Usage: bench_text_tokenizer [tokenizer_dir_or_json] [bench.txt]
// Defaults: tests/fixtures/tokenizer and /work/shared/fixtures/tokenizer/bench.txt.xz
// decompressed with `xz -dc`. Prints the median of 5 timed runs after one warm-up run, for
// ~4 KB chunks (cut after "\n" followed by a non-space, as the reference) and the whole file.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "text/tokenizer.h"

namespace {

std::string read_input(const std::string& path) {
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".xz") == 0) {
    std::string cmd = "xz -dc '" + path + "'";
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
    std::string out;
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), pipe.get())) > 0) out.append(buf, n);
    return out;
  }
  return refract::read_file(path);
}

// Chunks of ~4 KB ending at a "\n" that is followed by a non-space character.
std::vector<std::string> chunk(const std::string& text, size_t target) {
  std::vector<std::string> chunks;
  size_t start = 0;
  while (start < text.size()) {
    size_t pos = start + target;
    while (pos < text.size() && !(text[pos - 1] == '\n' && text[pos] != ' ' && text[pos] != '\n' &&
                                  text[pos] != '\r' && text[pos] != '\t'))
      ++pos;
    pos = std::min(pos, text.size());
    chunks.push_back(text.substr(start, pos - start));
    start = pos;
  }
  return chunks;
}

template <typename F>
double median_seconds(F&& f, int runs) {
  f();  // warm-up (fills the word cache, as the reference's timing does)
  std::vector<double> t;
  for (int r = 0; r < runs; ++r) {
    const auto a = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const std::string tok_path = argc > 1 ? argv[1] : std::string(REFRACT_SOURCE_DIR) + "/tests/fixtures/tokenizer";
  const std::string text_path = argc > 2 ? argv[2] : "/work/shared/fixtures/tokenizer/bench.txt.xz";
  const auto tok = refract::text::Tokenizer::from_file(tok_path);
  const std::string text = read_input(text_path);
  const std::vector<std::string> chunks = chunk(text, 4096);
  size_t tokens_chunked = 0, tokens_whole = 0;
  const double t_chunks = median_seconds([&] {
    tokens_chunked = 0;
    for (const auto& c : chunks) tokens_chunked += tok.encode(c).size();
  }, 5);
  const double t_whole = median_seconds([&] { tokens_whole = tok.encode(text).size(); }, 5);
  const double mb = static_cast<double>(text.size()) / 1e6;
  std::printf("input: %zu bytes, %zu chunks\n", text.size(), chunks.size());
  std::printf("chunks (~4 KB): median %.3f s  %.2f MB/s  %.0f tokens/s  (%zu tokens)\n", t_chunks,
              mb / t_chunks, tokens_chunked / t_chunks, tokens_chunked);
  std::printf("whole file    : median %.3f s  %.2f MB/s  %.0f tokens/s  (%zu tokens)\n", t_whole,
              mb / t_whole, tokens_whole / t_whole, tokens_whole);
  // The reference figure (HF tokenizers, encodeBatch over the same ~4 KB chunks, 1 thread),
  // from throughput.txt next to bench.txt.xz: the "PRIMARY" block's "=> X MB/s".
  const std::string ref_path = text_path.substr(0, text_path.find_last_of('/') + 1) + "throughput.txt";
  std::ifstream ref(ref_path);
  std::string line;
  bool primary = false;
  while (std::getline(ref, line)) {
    if (line.rfind("PRIMARY", 0) == 0) primary = true;
    const size_t at = line.find("=> ");
    if (primary && at != std::string::npos) {
      const double hf = std::atof(line.c_str() + at + 3);
      std::printf("HF tokenizers (reference, same chunks, recorded in %s): %.2f MB/s -> refract is %.2fx\n",
                  ref_path.c_str(), hf, (mb / t_chunks) / hf);
      break;
    }
  }
  return 0;
}
