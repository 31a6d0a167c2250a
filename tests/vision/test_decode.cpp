// Decoding against the reference loader (transformers load_image on Pillow 9.4): every fixture
// image must decode to exactly the RGB bytes of decoded/<name>.png (stored as sha256 of the raw
// bytes, see tests/fixtures/image_preprocess/reduce_fixture.py).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "common/atomic_file.h"
#include "common/check.h"
#include "sha256.h"
#include "test_util.h"
#include "vision/exif.h"
#include "vision/image.h"

namespace refract::vision {
namespace {

using refract::testing::fixture;
using refract::testing::sha256_hex;
using refract::testing::slurp;

std::string hash(const Image& img) { return sha256_hex(img.rgb.data(), img.rgb.size()); }

// The input file whose loader output is decoded/<stem>.png.
std::string input_for(const std::string& decoded_name) {
  const std::string stem = decoded_name.substr(0, decoded_name.size() - 4);
  for (const auto& e : std::filesystem::directory_iterator(fixture("images")))
    if (e.path().stem() == stem) return e.path().string();
  return "";
}

TEST(Decode, EveryFixtureImageMatchesTheReferenceLoaderByteForByte) {
  const auto hashes = refract::testing::load_json("decoded_sha256.json");
  int checked = 0;
  for (const auto& [name, want] : hashes.items()) {
    if (name.find(".qwen_vl_utils.") != std::string::npos) continue;  // other loader
    const std::string path = input_for(name);
    ASSERT_FALSE(path.empty()) << name;
    SCOPED_TRACE(path);
    const Image img = decode_image_file(path);
    EXPECT_EQ(img.width, want["width"].get<int64_t>());
    EXPECT_EQ(img.height, want["height"].get<int64_t>());
    EXPECT_EQ(hash(img), want["rgb_sha256"].get<std::string>());
    ++checked;
  }
  EXPECT_EQ(checked, 15);
}

TEST(Decode, QwenVlUtilsLoaderPastesRgbaOnWhite) {
  const auto hashes = refract::testing::load_json("decoded_sha256.json");
  const auto& want = hashes["p02_rgba_w57_h200.qwen_vl_utils.png"];
  const Image img =
      decode_image_file(fixture("images/p02_rgba_w57_h200.png"), qwen_vl_utils_loader());
  EXPECT_EQ(hash(img), want["rgb_sha256"].get<std::string>());
  // The same bytes as the reference's decoded PNG, read back through our PNG reader.
  const Image ref = decode_image_file(fixture("decoded/p02_rgba_w57_h200.qwen_vl_utils.png"));
  EXPECT_TRUE(img.rgb == ref.rgb);
  // Without alpha the loader is plain .convert("RGB").
  EXPECT_EQ(decode_image_file(fixture("images/p01_rgb_w30_h31.png"), qwen_vl_utils_loader()).rgb,
            decode_image_file(fixture("images/p01_rgb_w30_h31.png")).rgb);
}

TEST(Decode, FromMemoryEqualsFromFile) {
  const std::string path = fixture("images/p11_webp_w448_h336.webp");
  const Image a = decode_image_file(path);
  const Image b = decode_image_bytes(slurp(path), "mem");
  EXPECT_EQ(a.rgb, b.rgb);
}

std::string base64_encode(const std::string& in) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = uint8_t(in[i]) << 16 | uint8_t(in[i + 1]) << 8 | uint8_t(in[i + 2]);
    out += {a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], a[v & 63]};
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += {a[v >> 18], a[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16 | uint8_t(in[i + 1]) << 8;
    out += {a[v >> 18], a[(v >> 12) & 63], a[(v >> 6) & 63], '='};
  }
  return out;
}

TEST(Decode, DataUrlEqualsFile) {
  for (const char* rel : {"images/p01_rgb_w30_h31.png", "images/p10_bmp_w28_h28.bmp",
                          "images/p09_exif6_q90_w640_h480.jpg"}) {
    const std::string bytes = slurp(fixture(rel));
    const Image want = decode_image_file(fixture(rel));
    const Image got = decode_data_url("data:image/png;base64," + base64_encode(bytes));
    EXPECT_EQ(got.width, want.width) << rel;
    EXPECT_EQ(got.rgb, want.rgb) << rel;
  }
  EXPECT_THROW(decode_data_url("data:image/png,abc"), Error);
  EXPECT_THROW(decode_data_url("http://example.com/a.png"), Error);
}

// The pixel a hand-written EXIF orientation maps output (x, y) to, straight from the EXIF
// spec's description of each value (row 0 / column 0 sides), written independently of
// apply_orientation's switch.
Image orient_by_spec(const Image& in, int o) {
  Image out;
  const bool swap = o >= 5;
  out.width = swap ? in.height : in.width;
  out.height = swap ? in.width : in.height;
  out.rgb.resize(in.rgb.size());
  for (int64_t sy = 0; sy < in.height; ++sy) {
    for (int64_t sx = 0; sx < in.width; ++sx) {
      // Forward map: where stored pixel (sx, sy) lands in the displayed image.
      int64_t x = sx, y = sy;
      const int64_t W = in.width, H = in.height;
      if (o == 2) x = W - 1 - sx;
      if (o == 3) { x = W - 1 - sx; y = H - 1 - sy; }
      if (o == 4) y = H - 1 - sy;
      if (o == 5) { x = sy; y = sx; }                    // transpose
      if (o == 6) { x = H - 1 - sy; y = sx; }            // rotate 90 clockwise
      if (o == 7) { x = H - 1 - sy; y = W - 1 - sx; }    // transverse
      if (o == 8) { x = sy; y = W - 1 - sx; }            // rotate 90 counter-clockwise
      for (int c = 0; c < 3; ++c)
        out.rgb[(y * out.width + x) * 3 + c] = in.rgb[(sy * W + sx) * 3 + c];
    }
  }
  return out;
}

TEST(Decode, ExifOrientationsTwoToEightFollowTheSpec) {
  // p09 carries Orientation=6 (its decode is checked against the reference above). Rewrite
  // the tag's value to 1..8 in the file bytes and compare with the spec's transforms.
  const std::string original = slurp(fixture("images/p09_exif6_q90_w640_h480.jpg"));
  const size_t tiff = original.find(std::string("Exif\0\0", 6));
  ASSERT_NE(tiff, std::string::npos);
  const bool little = original[tiff + 6] == 'I';
  // Find the 0x0112 entry (type SHORT, count 1) after the TIFF header.
  const std::string entry = little ? std::string("\x12\x01\x03\x00\x01\x00\x00\x00", 8)
                                   : std::string("\x01\x12\x00\x03\x00\x00\x00\x01", 8);
  const size_t at = original.find(entry, tiff);
  ASSERT_NE(at, std::string::npos);
  const size_t value = at + 8 + (little ? 0 : 1);
  ASSERT_EQ(original[value], 6);
  std::string upright = original;
  upright[value] = 1;
  const Image base = decode_image_bytes(upright, "upright");
  EXPECT_EQ(base.width, 640);
  for (int o = 1; o <= 8; ++o) {
    std::string bytes = original;
    bytes[value] = static_cast<char>(o);
    const Image got = decode_image_bytes(bytes, "orientation");
    const Image want = orient_by_spec(base, o);
    EXPECT_EQ(got.width, want.width) << "orientation " << o;
    EXPECT_EQ(got.height, want.height) << "orientation " << o;
    EXPECT_TRUE(got.rgb == want.rgb) << "orientation " << o;
    EXPECT_EQ(exif_orientation(bytes.substr(tiff)), o);
  }
}

// A BMP written by hand: header fields from the format spec, pixels chosen so every row and
// channel differs.
std::string bmp(int32_t w, int32_t h, int bpp, uint32_t compression, const std::string& extra,
                const std::string& pixels, uint32_t colors_used = 0) {
  auto le = [](uint32_t v, int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 255));
    return s;
  };
  const uint32_t offset = 14 + 40 + static_cast<uint32_t>(extra.size());
  std::string out = "BM" + le(offset + pixels.size(), 4) + le(0, 4) + le(offset, 4);
  out += le(40, 4) + le(static_cast<uint32_t>(w), 4) + le(static_cast<uint32_t>(h), 4) + le(1, 2) +
         le(bpp, 2) + le(compression, 4) + le(static_cast<uint32_t>(pixels.size()), 4) +
         le(2835, 4) + le(2835, 4) + le(colors_used, 4) + le(0, 4);
  return out + extra + pixels;
}

TEST(Decode, BmpVariants) {
  // 2x2, 32-bit BI_RGB (BGRX), bottom-up: the first stored row is the bottom one.
  const std::string px32("\x01\x02\x03\x00\x04\x05\x06\x00\x07\x08\x09\x00\x0a\x0b\x0c\x00", 16);
  Image a = decode_image_bytes(bmp(2, 2, 32, 0, "", px32), "a.bmp");
  EXPECT_EQ(a.rgb, (std::vector<uint8_t>{9, 8, 7, 12, 11, 10, 3, 2, 1, 6, 5, 4}));
  // The same, top-down (negative height).
  Image b = decode_image_bytes(bmp(2, -2, 32, 0, "", px32), "b.bmp");
  EXPECT_EQ(b.rgb, (std::vector<uint8_t>{3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10}));
  // 8-bit palette: 3x1, rows padded to 4 bytes; palette entries are B, G, R, 0.
  const std::string pal("\x10\x20\x30\x00\x40\x50\x60\x00", 8);
  Image c = decode_image_bytes(bmp(3, 1, 8, 0, pal, std::string("\x01\x00\x01\x00", 4), 2), "c.bmp");
  EXPECT_EQ(c.rgb, (std::vector<uint8_t>{0x60, 0x50, 0x40, 0x30, 0x20, 0x10, 0x60, 0x50, 0x40}));
  // 16-bit 5-6-5 BI_BITFIELDS: white, pure red (31 -> 255), mid green 32/63 -> 129.
  const std::string masks("\x00\xf8\x00\x00\xe0\x07\x00\x00\x1f\x00\x00\x00", 12);
  const std::string px16("\xff\xff\x00\xf8\x00\x04\x00\x00", 8);  // 3 pixels + padding
  Image d = decode_image_bytes(bmp(3, 1, 16, 3, masks, px16), "d.bmp");
  EXPECT_EQ(d.rgb, (std::vector<uint8_t>{255, 255, 255, 255, 0, 0, 0, 32 * 255 / 63, 0}));
}

TEST(Decode, ErrorsNameTheFile) {
  const std::string dir = ::testing::TempDir();
  const std::string bad = dir + "/not_an_image.png";
  write_file_atomic(bad, "hello, world");
  try {
    decode_image_file(bad);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
  }
  // A truncated PNG and a truncated JPEG.
  for (const char* rel : {"images/p03_gray_w640_h480.png", "images/p07_rgb_q90_w1023_h767.jpg"}) {
    const std::string bytes = slurp(fixture(rel)).substr(0, 200);
    try {
      decode_image_bytes(bytes, "cut.img");
      FAIL() << "no error for " << rel;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("cut.img"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(decode_image_file(dir + "/does_not_exist.jpg"), Error);
}

TEST(Decode, RejectsDecompressionBombsBeforeAllocating) {
  // 20000 x 10000 = 2e8 pixels > Pillow's 2 * MAX_IMAGE_PIXELS; the header alone must fail.
  try {
    decode_image_bytes(bmp(20000, 10000, 24, 0, "", ""), "bomb.bmp");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("decompression bomb"), std::string::npos) << e.what();
  }
}

TEST(Decode, WritePngRoundTrips) {
  const Image img = decode_image_file(fixture("images/p07_rgb_q90_w1023_h767.jpg"));
  const std::string out = ::testing::TempDir() + "/roundtrip.png";
  write_png(out, img);
  const Image back = decode_image_file(out);
  EXPECT_EQ(back.width, img.width);
  EXPECT_EQ(back.height, img.height);
  EXPECT_TRUE(back.rgb == img.rgb);
  std::remove(out.c_str());
}

}  // namespace
}  // namespace refract::vision
