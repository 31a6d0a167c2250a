// torch bridge: dtype mapping, BF16/F16 bit patterns (hand-computed), round trips, fixture.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "common/check.h"
#include "io/torch_tensors.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using namespace refract::io;

namespace {
uint16_t half_bits(const TensorInfo& t, size_t i) {
  uint16_t v;
  std::memcpy(&v, t.data + 2 * i, 2);
  return v;
}
}  // namespace

TEST(TorchBridge, DTypeMappingIsBijective) {
  const DType all[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64,
                       DType::I32, DType::I16, DType::I8,  DType::U8,   DType::BOOL};
  for (DType d : all) {
    EXPECT_EQ(from_scalar_type(to_scalar_type(d)), d) << dtype_name(d);
    EXPECT_EQ(static_cast<size_t>(c10::elementSize(to_scalar_type(d))), dtype_size(d));
  }
  EXPECT_THROW(from_scalar_type(torch::kComplexFloat), refract::Error);
}

TEST(TorchBridge, HalfPrecisionBitPatternsAndRoundTrip) {
  torch::Tensor f = torch::tensor({1.0f, -2.5f, 0.1f});
  const refract::testing::TempDir tmp("io_torch");
  const std::string path = tmp / "half.safetensors";
  save_tensors(path, {{"bf", f.to(torch::kBFloat16)}, {"h", f.to(torch::kFloat16)}});
  auto file = SafetensorsFile::open(path);
  // Hand-computed IEEE patterns: bf16 is the top half of f32 rounded to nearest even
  // (0.1f = 0x3DCCCCCD -> 0x3DCD); f16 1.0 = 0x3C00, -2.5 = 0xC100, 0.1 = 0x2E66.
  const TensorInfo& bf = file->at("bf");
  EXPECT_EQ(bf.dtype, DType::BF16);
  EXPECT_EQ(half_bits(bf, 0), 0x3F80);
  EXPECT_EQ(half_bits(bf, 1), 0xC020);
  EXPECT_EQ(half_bits(bf, 2), 0x3DCD);
  const TensorInfo& h = file->at("h");
  EXPECT_EQ(h.dtype, DType::F16);
  EXPECT_EQ(half_bits(h, 0), 0x3C00);
  EXPECT_EQ(half_bits(h, 1), 0xC100);
  EXPECT_EQ(half_bits(h, 2), 0x2E66);

  auto back = load_tensors(path);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back["bf"].scalar_type(), torch::kBFloat16);
  EXPECT_EQ(back["h"].scalar_type(), torch::kFloat16);
  EXPECT_TRUE(torch::equal(back["bf"], f.to(torch::kBFloat16)));
  EXPECT_TRUE(torch::equal(back["h"], f.to(torch::kFloat16)));
}

TEST(TorchBridge, RoundTripAllDTypesNonContiguous) {
  torch::manual_seed(0);
  std::vector<std::pair<std::string, torch::Tensor>> in;
  const torch::ScalarType types[] = {torch::kFloat64, torch::kFloat32, torch::kFloat16,
                                     torch::kBFloat16, torch::kInt64, torch::kInt32,
                                     torch::kInt16, torch::kInt8, torch::kUInt8, torch::kBool};
  for (auto st : types) {
    torch::Tensor t = (torch::rand({3, 5}) * 100).to(st);
    in.emplace_back(std::string("t_") + c10::toString(st), t.t());  // transposed: non-contiguous
  }
  in.emplace_back("scalar", torch::tensor(7.0));
  const refract::testing::TempDir tmp("io_torch");
  const std::string path = tmp / "all.safetensors";
  save_tensors(path, in, {{"format", "pt"}});
  auto out = load_tensors(path, torch::Device(torch::kCPU));
  ASSERT_EQ(out.size(), in.size());
  for (const auto& [name, t] : in) {
    const torch::Tensor& o = out.at(name);
    EXPECT_EQ(o.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(o.sizes(), t.sizes()) << name;
    EXPECT_TRUE(torch::equal(o, t)) << name;
  }
}

// Reference outputs written by Python safetensors: dtypes, shapes and a few known values.
TEST(TorchBridge, LoadsReferenceFixture) {
  auto t = load_tensors(std::string(REFRACT_FIXTURES_DIR) + "/qwen2_5_vl/A/expected.safetensors");
  EXPECT_EQ(t.at("input_ids").scalar_type(), torch::kInt64);
  EXPECT_EQ(t.at("input_ids").sizes(), (std::vector<int64_t>{1, 31}));
  EXPECT_EQ(t.at("vision_cu_seqlens").scalar_type(), torch::kInt32);
  EXPECT_EQ(t.at("image0_rgb_u8").sizes(), (std::vector<int64_t>{56, 84, 3}));
  // README: one 56x84 image, grid 1x4x6 -> image_grid_thw = [[1, 4, 6]]; 24 patches in one window.
  EXPECT_TRUE(torch::equal(t.at("image_grid_thw"), torch::tensor({{1, 4, 6}}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(t.at("vision_cu_seqlens"), torch::tensor({0, 24}, torch::kInt32)));
  EXPECT_EQ(t.at("attention_mask").sum().item<int64_t>(), 31);
}
