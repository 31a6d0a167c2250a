// The image processor settings of a model directory (preprocessor_config.json), torch-free.
#pragma once
#include <string>

#include "vision/preprocess.h"

namespace refract::vision {

// The model directory's preprocessor_config.json (min_pixels, max_pixels, patch_size,
// merge_size, temporal_patch_size) over the processor's defaults; the defaults when absent.
// A file that is not a JSON object is an error naming it.
PreprocessConfig load_preprocessor_config(const std::string& model_dir);

}  // namespace refract::vision
