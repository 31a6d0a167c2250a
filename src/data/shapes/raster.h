// The shapes world's own rasteriser: filled shapes, bitmap text and noisy backgrounds on an
// 8-bit RGB canvas. No anti-aliasing and no libm trigonometry (vertex tables are constants),
// so the same scene gives the same pixels everywhere.
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include "data/rng.h"
#include "vision/image.h"

namespace refract::data::shapes {

enum class Shape { kCircle, kSquare, kTriangle, kStar, kDiamond, kCross, kHexagon };
constexpr int kNumShapes = 7;
const char* shape_name(Shape s);         // "circle", ...
const char* shape_plural(Shape s);       // "circles", "crosses", ...

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

struct NamedColor {
  const char* name;
  Rgb rgb;
};
constexpr int kNumColors = 6;
// red, green, blue, yellow, purple, orange: far apart in RGB and from the grey backgrounds.
const std::array<NamedColor, kNumColors>& palette();

// Tight extent of painted pixels: x2 / y2 are exclusive (pixel edges), so the box
// [x1, y1, x2, y2] covers every painted pixel. `pixels` = painted pixel count (COCO area).
struct PixelBox {
  int64_t x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  int64_t pixels = 0;
  bool empty() const { return pixels == 0; }
};

vision::Image make_canvas(int64_t width, int64_t height);

// Base grey tone, a linear gradient and sparse speckle noise (density = fraction of pixels
// perturbed). Speckles rather than dense noise keep PNGs small and fast to write.
void fill_background(vision::Image& img, Rng& rng, double noise_density);

// Paints `shape` centred at (cx, cy) with circumradius `radius` (pixel centres inside the
// shape are painted). Returns the painted extent.
PixelBox draw_shape(vision::Image& img, Shape shape, double cx, double cy, double radius,
                    Rgb colour);

// 5x7 bitmap font (A-Z, 0-9, space), each font pixel drawn as scale x scale, 1 font pixel of
// spacing between characters. Returns the painted extent.
PixelBox draw_text(vision::Image& img, const std::string& text, int64_t x, int64_t y, int scale,
                   Rgb colour);
// Width / height in pixels of `text` drawn at `scale`.
int64_t text_width(const std::string& text, int scale);
int64_t text_height(int scale);
// Characters the font can draw.
bool font_has(char c);

}  // namespace refract::data::shapes
