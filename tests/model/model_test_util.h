// Shared helpers of the model tests: fixture paths, loading, comparisons.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "common/check.h"
#include "io/torch_tensors.h"
#include "model/qwen2_5_vl.h"
#include "temp_dir.h"
#include "test_device.h"

namespace refract::model::test_util {

inline std::string fixture(const std::string& rel) {
  return std::string(REFRACT_FIXTURES_DIR) + "/qwen2_5_vl/" + rel;
}

// Qwen2-VL (model_type qwen2_vl) fixtures: tiny_q2, Q2A.
inline std::string fixture_q2(const std::string& rel) {
  return std::string(REFRACT_FIXTURES_DIR) + "/qwen2_vl/" + rel;
}

// An empty scratch directory, removed when the test process exits.
inline std::string temp_dir(const std::string& name) { return refract::testing::process_temp_dir("model_" + name); }

inline std::map<std::string, torch::Tensor> expected(const std::string& which) {
  return io::load_tensors(fixture(which + "/expected.safetensors"));
}

inline Qwen2_5_VL tiny_model(const std::string& dtype = "float32") {
  return load_pretrained(fixture("tiny"), refract::testing::test_device(), dtype);
}

inline Qwen2_5_VL tiny_q2_model(const std::string& dtype = "float32") {
  return load_pretrained(fixture_q2("tiny_q2"), refract::testing::test_device(), dtype);
}

// Fixture case by name: "A", "C" (Qwen2.5-VL) or "Q2A" (Qwen2-VL).
inline std::map<std::string, torch::Tensor> expected_case(const std::string& which) {
  if (which.rfind("Q2", 0) == 0) return io::load_tensors(fixture_q2(which + "/expected.safetensors"));
  return expected(which);
}

// Two forward passes are bit-identical only on reproducible kernels. The wheel's MKL sgemm is
// not on two threads (AVX-512: 5 of 200 fresh processes differed; docs/training.md), so tests
// that compare forwards with torch::equal hold one thread while they run.
class OneThread {
 public:
  OneThread() : saved_(at::get_num_threads()) { at::set_num_threads(1); }
  ~OneThread() { at::set_num_threads(saved_); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int saved_;
};

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.cpu().to(torch::kFloat64) - b.cpu().to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace refract::model::test_util
