// Encode throughput of the Qwen tokenizer on the reference bench text (single thread).
//   bench_text_tokenizer [--tokenizer tests/fixtures/tokenizer] [--text bench.txt.xz] [--reps 5]
// The bench text (5 MB) is not in the repository: it is read from ../shared/fixtures/tokenizer
// beside the source tree, decompressed with `xz -dc`. Prints the median of the timed runs after
// one warm-up run, for ~4 KB chunks (cut after "\n" followed by a non-space, as the reference)
// and the whole file, and the ratio to HF tokenizers from bench/reference_figures.json.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bench_cli.h"
#include "common/atomic_file.h"
#include "reference_figures.h"
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
  std::string tok_path = std::string(REFRACT_SOURCE_DIR) + "/tests/fixtures/tokenizer";
  std::string text_path = std::string(REFRACT_SHARED_DIR) + "/fixtures/tokenizer/bench.txt.xz";
  int runs = 5;
  CLI::App app{"Qwen tokenizer encode throughput on the bench text, against HF tokenizers.",
               "bench_text_tokenizer"};
  app.add_option("--tokenizer", tok_path, "tokenizer.json or the directory holding it")
      ->check(CLI::ExistingPath)
      ->capture_default_str();
  app.add_option("--text", text_path, "text to encode (.xz is decompressed)")
      ->check(CLI::ExistingFile)
      ->capture_default_str();
  app.add_option("--reps", runs, "timed runs after the warm-up; the median is reported")
      ->check(refract::bench::positive_int())
      ->capture_default_str();
  if (const int code = refract::bench::parse_args(app, argc, argv); code >= 0) return code;
  if (!std::filesystem::exists(text_path)) {
    std::fprintf(stderr,
                 "bench_text_tokenizer: input %s not found: the bench text is kept outside the repository, "
                 "in ../shared/fixtures/tokenizer beside the source tree; pass --text FILE\n",
                 text_path.c_str());
    return 1;
  }
  const auto tok = refract::text::Tokenizer::from_file(tok_path);
  const std::string text = read_input(text_path);
  const std::vector<std::string> chunks = chunk(text, 4096);
  size_t tokens_chunked = 0, tokens_whole = 0;
  const double t_chunks = median_seconds([&] {
    tokens_chunked = 0;
    for (const auto& c : chunks) tokens_chunked += tok.encode(c).size();
  }, runs);
  const double t_whole = median_seconds([&] { tokens_whole = tok.encode(text).size(); }, runs);
  const double mb = static_cast<double>(text.size()) / 1e6;
  std::printf("input: %zu bytes, %zu chunks\n", text.size(), chunks.size());
  std::printf("chunks (~4 KB): median %.3f s  %.2f MB/s  %.0f tokens/s  (%zu tokens)\n", t_chunks,
              mb / t_chunks, tokens_chunked / t_chunks, tokens_chunked);
  std::printf("whole file    : median %.3f s  %.2f MB/s  %.0f tokens/s  (%zu tokens)\n", t_whole,
              mb / t_whole, tokens_whole / t_whole, tokens_whole);
  // HF tokenizers' encodeBatch over ~4 KB chunks of the same text, 1 thread.
  const auto ref = refract::bench::reference_figure("hf_tokenizers_encode_batch");
  if (ref && refract::bench::same_input(*ref, text_path))
    std::printf("HF tokenizers (reference, ~4 KB chunks, recorded in %s): %.2f %s -> refract is %.2fx\n",
                refract::bench::kReferenceFiguresFile.c_str(), ref->value, ref->unit.c_str(),
                (mb / t_chunks) / ref->value);
  return 0;
}
