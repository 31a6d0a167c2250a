#include "data/shapes/raster.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/check.h"

namespace refract::data::shapes {
namespace {

struct Vec2 {
  double x, y;
};

// Unit-circumradius outlines, y down. Constants (not cos/sin at run time) so that the
// pixels do not depend on the libm in use.
constexpr Vec2 kSquare[] = {{-0.75, -0.75}, {0.75, -0.75}, {0.75, 0.75}, {-0.75, 0.75}};
constexpr Vec2 kTriangle[] = {{0.0, -0.8}, {0.92, 0.8}, {-0.92, 0.8}};
constexpr Vec2 kDiamond[] = {{0.0, -1.0}, {0.75, 0.0}, {0.0, 1.0}, {-0.75, 0.0}};
// 5-point star: outer radius 1 at -90 + 72k degrees, inner radius 0.45 in between.
constexpr Vec2 kStar[] = {{0.0, -1.0},           {0.264503, -0.364058}, {0.951057, -0.309017},
                          {0.427975, 0.139058},  {0.587785, 0.809017},  {0.0, 0.45},
                          {-0.587785, 0.809017}, {-0.427975, 0.139058}, {-0.951057, -0.309017},
                          {-0.264503, -0.364058}};
constexpr Vec2 kHexagon[] = {{1.0, 0.0},   {0.5, 0.866025},   {-0.5, 0.866025},
                             {-1.0, 0.0},  {-0.5, -0.866025}, {0.5, -0.866025}};
constexpr double kArm = 0.33;  // half width of the cross's arms
constexpr Vec2 kCross[] = {{-kArm, -1.0}, {kArm, -1.0}, {kArm, -kArm}, {1.0, -kArm},
                           {1.0, kArm},   {kArm, kArm}, {kArm, 1.0},   {-kArm, 1.0},
                           {-kArm, kArm}, {-1.0, kArm}, {-1.0, -kArm}, {-kArm, -kArm}};

template <size_t N>
bool inside_polygon(const Vec2 (&poly)[N], double u, double v) {
  // Even-odd crossing test (works for the non-convex star too).
  bool in = false;
  for (size_t i = 0, j = N - 1; i < N; j = i++) {
    const Vec2& a = poly[i];
    const Vec2& b = poly[j];
    if ((a.y > v) != (b.y > v) && u < (b.x - a.x) * (v - a.y) / (b.y - a.y) + a.x) in = !in;
  }
  return in;
}

bool inside(Shape s, double u, double v) {
  switch (s) {
    case Shape::kCircle: return u * u + v * v <= 1.0;
    case Shape::kSquare: return inside_polygon(kSquare, u, v);
    case Shape::kTriangle: return inside_polygon(kTriangle, u, v);
    case Shape::kStar: return inside_polygon(kStar, u, v);
    case Shape::kDiamond: return inside_polygon(kDiamond, u, v);
    case Shape::kCross: return inside_polygon(kCross, u, v);
    case Shape::kHexagon: return inside_polygon(kHexagon, u, v);
  }
  return false;
}

void put(vision::Image& img, int64_t x, int64_t y, Rgb c) {
  uint8_t* p = &img.rgb[static_cast<size_t>((y * img.width + x) * 3)];
  p[0] = c.r;
  p[1] = c.g;
  p[2] = c.b;
}

void extend(PixelBox& box, int64_t x, int64_t y) {
  if (box.pixels == 0) {
    box.x1 = x, box.y1 = y, box.x2 = x + 1, box.y2 = y + 1;
  } else {
    box.x1 = std::min(box.x1, x), box.y1 = std::min(box.y1, y);
    box.x2 = std::max(box.x2, x + 1), box.y2 = std::max(box.y2, y + 1);
  }
  ++box.pixels;
}

uint8_t clamp_u8(int64_t v) { return static_cast<uint8_t>(std::clamp<int64_t>(v, 0, 255)); }

// 5x7 glyphs, rows top to bottom, '#' = ink.
struct Glyph {
  char c;
  const char* rows[7];
};
constexpr Glyph kFont[] = {
    {'A', {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},
    {'B', {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."}},
    {'C', {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."}},
    {'D', {"####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."}},
    {'E', {"#####", "#....", "#....", "####.", "#....", "#....", "#####"}},
    {'F', {"#####", "#....", "#....", "####.", "#....", "#....", "#...."}},
    {'G', {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"}},
    {'H', {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},
    {'I', {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}},
    {'J', {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."}},
    {'K', {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"}},
    {'L', {"#....", "#....", "#....", "#....", "#....", "#....", "#####"}},
    {'M', {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"}},
    {'N', {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"}},
    {'O', {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},
    {'P', {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."}},
    {'Q', {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"}},
    {'R', {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"}},
    {'S', {".####", "#....", "#....", ".###.", "....#", "....#", "####."}},
    {'T', {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}},
    {'U', {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},
    {'V', {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."}},
    {'W', {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."}},
    {'X', {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"}},
    {'Y', {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."}},
    {'Z', {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"}},
    {'0', {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."}},
    {'1', {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."}},
    {'2', {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"}},
    {'3', {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."}},
    {'4', {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."}},
    {'5', {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."}},
    {'6', {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."}},
    {'7', {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."}},
    {'8', {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."}},
    {'9', {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."}},
    {' ', {".....", ".....", ".....", ".....", ".....", ".....", "....."}},
};

const Glyph* find_glyph(char c) {
  for (const Glyph& g : kFont)
    if (g.c == c) return &g;
  return nullptr;
}

}  // namespace

const char* shape_name(Shape s) {
  static const char* kNames[] = {"circle", "square", "triangle", "star",
                                 "diamond", "cross", "hexagon"};
  return kNames[static_cast<int>(s)];
}

const char* shape_plural(Shape s) {
  static const char* kNames[] = {"circles", "squares", "triangles", "stars",
                                 "diamonds", "crosses", "hexagons"};
  return kNames[static_cast<int>(s)];
}

const std::array<NamedColor, kNumColors>& palette() {
  static const std::array<NamedColor, kNumColors> kPalette = {{
      {"red", {220, 30, 30}},
      {"green", {30, 160, 50}},
      {"blue", {30, 70, 220}},
      {"yellow", {240, 210, 20}},
      {"purple", {140, 40, 180}},
      {"orange", {245, 130, 20}},
  }};
  return kPalette;
}

vision::Image make_canvas(int64_t width, int64_t height) {
  REFRACT_CHECK(width > 0 && height > 0) << "canvas size " << width << "x" << height;
  vision::Image img;
  img.width = width;
  img.height = height;
  img.rgb.assign(static_cast<size_t>(width * height * 3), 0);
  return img;
}

void fill_background(vision::Image& img, Rng& rng, double noise_density) {
  const int64_t base = rng.uniform_int(150, 225);
  const int64_t tint[3] = {rng.uniform_int(-10, 10), rng.uniform_int(-10, 10),
                           rng.uniform_int(-10, 10)};
  // Gradient of up to +-20 levels across the image along a random axis mix.
  const int64_t gx = rng.uniform_int(-20, 20), gy = rng.uniform_int(-20, 20);
  const int64_t w = img.width, h = img.height;
  // Speckles as an integer threshold on 32 random bits: no floating point per pixel.
  const uint64_t threshold =
      static_cast<uint64_t>(std::clamp(noise_density, 0.0, 1.0) * 4294967296.0);
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      const int64_t g = base + (gx * x) / w + (gy * y) / h;
      uint8_t* p = &img.rgb[static_cast<size_t>((y * w + x) * 3)];
      int64_t delta = 0;
      if (threshold > 0) {
        const uint64_t r = rng.next_u64();
        if ((r & 0xFFFFFFFFull) < threshold) delta = static_cast<int64_t>((r >> 32) % 81) - 40;
      }
      for (int c = 0; c < 3; ++c) p[c] = clamp_u8(g + tint[c] + delta);
    }
  }
}

PixelBox draw_shape(vision::Image& img, Shape shape, double cx, double cy, double radius,
                    Rgb colour) {
  REFRACT_CHECK(radius > 0) << "shape radius " << radius;
  PixelBox box;
  const int64_t x0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(cx - radius)) - 1);
  const int64_t y0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(cy - radius)) - 1);
  const int64_t x1 = std::min<int64_t>(img.width, static_cast<int64_t>(std::ceil(cx + radius)) + 1);
  const int64_t y1 = std::min<int64_t>(img.height, static_cast<int64_t>(std::ceil(cy + radius)) + 1);
  const double inv = 1.0 / radius;
  for (int64_t y = y0; y < y1; ++y) {
    const double v = (static_cast<double>(y) + 0.5 - cy) * inv;
    for (int64_t x = x0; x < x1; ++x) {
      const double u = (static_cast<double>(x) + 0.5 - cx) * inv;
      if (!inside(shape, u, v)) continue;
      put(img, x, y, colour);
      extend(box, x, y);
    }
  }
  return box;
}

bool font_has(char c) { return find_glyph(c) != nullptr; }

int64_t text_width(const std::string& text, int scale) {
  if (text.empty()) return 0;
  return static_cast<int64_t>(text.size()) * 6 * scale - scale;
}

int64_t text_height(int scale) { return 7 * static_cast<int64_t>(scale); }

PixelBox draw_text(vision::Image& img, const std::string& text, int64_t x, int64_t y, int scale,
                   Rgb colour) {
  REFRACT_CHECK(scale >= 1) << "text scale " << scale;
  PixelBox box;
  for (size_t i = 0; i < text.size(); ++i) {
    const Glyph* g = find_glyph(text[i]);
    REFRACT_CHECK(g) << "the bitmap font has no glyph for '" << text[i] << "'";
    const int64_t ox = x + static_cast<int64_t>(i) * 6 * scale;
    for (int row = 0; row < 7; ++row) {
      for (int col = 0; col < 5; ++col) {
        if (g->rows[row][col] != '#') continue;
        for (int dy = 0; dy < scale; ++dy) {
          for (int dx = 0; dx < scale; ++dx) {
            const int64_t px = ox + col * scale + dx, py = y + row * scale + dy;
            if (px < 0 || py < 0 || px >= img.width || py >= img.height) continue;
            put(img, px, py, colour);
            extend(box, px, py);
          }
        }
      }
    }
  }
  return box;
}

}  // namespace refract::data::shapes
