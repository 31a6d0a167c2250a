#include "model/image_tensors.h"

#include "common/check.h"

namespace refract::model {

ImageTensors to_image_tensors(const std::vector<vision::Preprocessed>& images) {
  ImageTensors out;
  if (images.empty()) return out;
  std::vector<torch::Tensor> rows;
  std::vector<int64_t> grid;
  for (const vision::Preprocessed& p : images) {
    const int64_t cols = p.rows ? static_cast<int64_t>(p.pixel_values.size()) / p.rows : 0;
    // A view over the processor's buffer; cat below copies it into memory torch owns.
    rows.push_back(torch::from_blob(const_cast<float*>(p.pixel_values.data()), {p.rows, cols}, torch::kFloat32));
    grid.insert(grid.end(), p.grid_thw.begin(), p.grid_thw.end());
  }
  out.pixel_values = torch::cat(rows, 0);
  out.image_grid_thw = torch::tensor(grid, torch::kInt64).view({-1, 3});
  return out;
}

VideoTensors to_video_tensors(const std::vector<vision::PreprocessedVideo>& videos,
                              const std::vector<double>& second_per_grid_ts) {
  VideoTensors out;
  if (videos.empty()) return out;
  REFRACT_CHECK(second_per_grid_ts.size() == videos.size())
      << videos.size() << " videos but " << second_per_grid_ts.size() << " second_per_grid_ts";
  std::vector<torch::Tensor> rows;
  std::vector<int64_t> grid;
  for (const vision::PreprocessedVideo& v : videos) {
    const int64_t cols = v.rows ? static_cast<int64_t>(v.pixel_values.size()) / v.rows : 0;
    rows.push_back(torch::from_blob(const_cast<float*>(v.pixel_values.data()), {v.rows, cols}, torch::kFloat32));
    grid.insert(grid.end(), v.grid_thw.begin(), v.grid_thw.end());
  }
  out.pixel_values_videos = torch::cat(rows, 0);
  out.video_grid_thw = torch::tensor(grid, torch::kInt64).view({-1, 3});
  out.second_per_grid_ts = torch::tensor(std::vector<float>(second_per_grid_ts.begin(), second_per_grid_ts.end()),
                                         torch::kFloat32);
  return out;
}

}  // namespace refract::model
