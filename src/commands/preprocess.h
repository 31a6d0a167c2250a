// `refract preprocess` as a library call: decode one image, run the processor, write
// pixel_values / image_grid_thw / resized_uint8 to a .safetensors file.
#pragma once
#include <string>

#include "vision/preprocess.h"

namespace refract {
class Options;
}

namespace refract::commands {

// Declares min_pixels / max_pixels (the processor's names) on `o`.
void declare(Options& o, vision::PreprocessConfig& cfg);

// Writes pixel_values F32 [rows, 1176], image_grid_thw I64 [1, 3] and resized_uint8 U8 [H, W, 3]
// atomically. An image the reference rejects throws before anything is written.
void preprocess_to_safetensors(const std::string& image_path, const vision::PreprocessConfig& cfg,
                               const std::string& output_path);

}  // namespace refract::commands
