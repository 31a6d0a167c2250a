// Validation: every sample is usable for training, or rejected with `<file>:<line>: <reason>`.
// Checks images (present, decodable, >= 28 px per side, aspect ratio <= 200), boxes (inside
// the image, not degenerate) and prompt length in tokens with the image tokens smart_resize
// will produce (longer than max_prompt_length; image tokens cut by TRL's left truncation).
// Fills ImageRef width/height and each image item's image_tokens.
#pragma once
#include <string>

#include "data/config.h"
#include "data/report.h"
#include "vision/preprocess.h"

namespace refract::text {
class Tokenizer;
}

namespace refract::data {

struct ValidateOptions {
  bool check_images = true;
  int64_t max_prompt_length = 0;          // 0 = unchecked
  const text::Tokenizer* tokenizer = nullptr;  // needed for the prompt-length checks
  vision::PreprocessConfig preprocess;    // min_pixels / max_pixels for the image-token count
  int64_t num_threads = 1;
};
ValidateOptions validate_options(const DataConfig& cfg, const text::Tokenizer* tokenizer);

// "" if usable, else the reason. Fills image sizes and image token counts.
std::string validate_sample(Sample& s, const ValidateOptions& opts);

// Validates every sample; rejected ones leave `d.samples` and join their file's report.
void validate_dataset(Dataset& d, const ValidateOptions& opts);

// SFT's max_length: usable samples whose prompt + response (chat template, image tokens
// expanded; call after validation, which counts them) exceed max_length tokens leave
// `d.samples` and are listed as dropped in their file's report. Truncating instead (TRL's
// default) would cut the end of the very answer the sample teaches. Returns how many.
int64_t drop_longer_than(Dataset& d, int64_t max_length, const text::Tokenizer& tok);

// Load + validate as training does. With on_bad_sample=error and any rejection, throws
// refract::Error carrying the whole report; with skip, logs the report and continues.
Dataset prepare_dataset(const DataConfig& cfg, const text::Tokenizer* tokenizer);

// `refract data check`: prints the report to stdout; returns the process exit code
// (1 when a sample was rejected and on_bad_sample=error).
// max_length > 0 also lists the samples SFT would drop for length (needs tokenizer_path).
int run_data_check(const DataConfig& cfg, int64_t max_length = 0);

}  // namespace refract::data
