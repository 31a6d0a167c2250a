#include "model/image_tensors.h"

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

}  // namespace refract::model
