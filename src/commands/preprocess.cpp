#include "commands/preprocess.h"

#include "common/check.h"
#include "common/log.h"
#include "common/options.h"
#include "io/safetensors.h"

namespace refract::commands {

void declare(Options& o, vision::PreprocessConfig& cfg) {
  o.add("min_pixels", &cfg.min_pixels,
        "lower bound on resized height*width (transformers 4.50 class default 3136)");
  o.add("max_pixels", &cfg.max_pixels,
        "upper bound on resized height*width (Hub preprocessor_config.json: 12845056)");
}

void preprocess_to_safetensors(const std::string& image_path, const vision::PreprocessConfig& cfg,
                               const std::string& output_path) {
  REFRACT_CHECK(!image_path.empty()) << "--image is required";
  REFRACT_CHECK(!output_path.empty()) << "--output is required";
  const vision::Image image = vision::decode_image_file(image_path);
  vision::Preprocessed p;
  try {
    p = vision::preprocess_image(image, cfg);
  } catch (const Error& e) {
    // Name the image; keep the reference's message (without its "[file:line] " prefix).
    std::string reason = e.what();
    if (!reason.empty() && reason[0] == '[' && reason.find("] ") != std::string::npos)
      reason = reason.substr(reason.find("] ") + 2);
    REFRACT_FAIL() << image_path << " (" << image.width << "x" << image.height << "): " << reason;
  }
  const int64_t cols = p.rows ? static_cast<int64_t>(p.pixel_values.size()) / p.rows : 0;
  std::vector<io::TensorToWrite> tensors = {
      {"pixel_values", io::DType::F32, {p.rows, cols}, p.pixel_values.data(),
       p.pixel_values.size() * sizeof(float)},
      {"image_grid_thw", io::DType::I64, {1, 3}, p.grid_thw.data(), 3 * sizeof(int64_t)},
      {"resized_uint8", io::DType::U8, {p.resized.height, p.resized.width, 3},
       p.resized.rgb.data(), p.resized.rgb.size()},
  };
  io::write_safetensors(output_path, tensors,
                        {{"image", image_path},
                         {"min_pixels", std::to_string(cfg.min_pixels)},
                         {"max_pixels", std::to_string(cfg.max_pixels)}});
  LOG_INFO("{}: {}x{} -> {}x{}, grid_thw [{}, {}, {}], {} image tokens -> {}", image_path,
           image.width, image.height, p.resized.width, p.resized.height, p.grid_thw[0],
           p.grid_thw[1], p.grid_thw[2], p.num_image_tokens(), output_path);
}

}  // namespace refract::commands
