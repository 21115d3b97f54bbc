#include "io/png_file.hpp"

#include <png.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include "io/atomic_output.hpp"
#include "src/core/error.hpp"

namespace fresco {
namespace {

// libpng reports errors through longjmp to the last setjmp on png_jmpbuf. A longjmp must not
// cross a frame holding an object with a non-trivial destructor (that is undefined behaviour),
// so every function below that calls setjmp keeps only trivially destructible locals and
// receives its buffers from the caller; a jump becomes a `false` return. The C++ objects
// (pixel buffers, row pointers, the libpng structs' owner) live in the callers' frames, which
// no jump crosses.
struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;

bool write_rgb(FILE* f, png_uint_32 width, png_uint_32 height, png_bytep* rows, png_text* text,
               int text_count) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_text(png, info, text, text_count);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

}  // namespace

void write_png(const std::string& path, const Tensor& image, const std::map<std::string, std::string>& text) {
  // image: [3, H, W] -> interleaved 8-bit rows [H][W * 3]
  FRESCO_ASSERT(image.rank() == 3 && image.dim(0) == 3, "write_png: expected [3, H, W], got " + image.describe());
  const int64_t H = image.dim(1), W = image.dim(2);
  // Any float dtype (a bf16 decode included); f32() needs contiguous f32 data.
  const Tensor img = image.dtype() == DType::f32 && image.contiguous() ? image : image.to_f32();
  const float* p = img.f32();
  std::vector<png_byte> pixels(static_cast<size_t>(H * W * 3));
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < H * W; ++i)
      pixels[size_t(i * 3 + c)] = png_byte(std::lround(std::clamp(p[c * H * W + i], 0.0f, 1.0f) * 255.0f));
  std::vector<png_bytep> rows(static_cast<size_t>(H));
  for (int64_t r = 0; r < H; ++r) rows[size_t(r)] = pixels.data() + r * W * 3;
  std::vector<png_text> chunks;
  for (const auto& [key, value] : text) {
    png_text t{};
    // tEXt holds Latin-1 only; a value with other bytes (a prompt's UTF-8 text) goes in iTXt.
    const bool ascii = std::all_of(value.begin(), value.end(), [](char c) { return (unsigned char)c < 0x80; });
    t.compression = ascii ? PNG_TEXT_COMPRESSION_NONE : PNG_ITXT_COMPRESSION_NONE;
    t.key = const_cast<char*>(key.c_str());
    t.text = const_cast<char*>(value.c_str());
    if (ascii) t.text_length = value.size();
    else t.itxt_length = value.size();
    chunks.push_back(t);
  }
  AtomicOutput out(path);
  {
    File f(std::fopen(out.temp_path().c_str(), "wb"));
    if (!f) throw IoError("cannot create " + out.temp_path());
    if (!write_rgb(f.get(), png_uint_32(W), png_uint_32(H), rows.data(), chunks.data(), int(chunks.size())))
      throw IoError("libpng failed to write " + path);
    if (std::fflush(f.get()) != 0 || std::ferror(f.get()))
      throw IoError("cannot write " + path + " (temporary file " + out.temp_path() +
                    " removed): " + std::strerror(errno));
    // fclose flushes what stdio still holds: its failure (no space, quota) is a failed write.
    if (std::fclose(f.release()) != 0)
      throw IoError("cannot write " + path + " (temporary file " + out.temp_path() +
                    " removed): " + std::strerror(errno));
  }
  // Nothing is published that does not read back.
  try {
    const PngImage back = read_png(out.temp_path());
    if (back.image.shape() != image.shape()) throw IoError("size differs");
  } catch (const Error& e) {
    throw IoError("cannot write " + path + ": the written file does not read back (" + e.what() +
                  "); temporary file removed");
  }
  out.commit();
}

namespace {

// Owns a libpng read struct and its info struct (png_destroy_read_struct never jumps).
class PngReader {
 public:
  PngReader() {
    png_ = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
    if (png_) info_ = png_create_info_struct(png_);
  }
  ~PngReader() {
    if (png_) png_destroy_read_struct(&png_, info_ ? &info_ : nullptr, nullptr);
  }
  PngReader(const PngReader&) = delete;
  PngReader& operator=(const PngReader&) = delete;
  bool ok() const { return png_ && info_; }
  png_structp png() const { return png_; }
  png_infop info() const { return info_; }

 private:
  png_structp png_ = nullptr;
  png_infop info_ = nullptr;
};

// Reads the signature and the header chunks. Trivially destructible locals only (see above).
bool read_header(png_structp png, png_infop info, FILE* f) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_init_io(png, f);
  png_read_info(png, info);
  return true;
}

// Reads the pixel rows into rows[0..height) and the chunks after them (text may follow the
// image data). Trivially destructible locals only; `rows` is owned by the caller.
bool read_image(png_structp png, png_infop info, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  png_read_end(png, info);
  return true;
}

}  // namespace

PngImage read_png(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) throw IoError("cannot open " + path);
  const std::string not_rgb = path + " is not an 8-bit RGB PNG file";
  PngReader reader;
  if (!reader.ok() || !read_header(reader.png(), reader.info(), f.get())) throw IoError(not_rgb);
  // Plain getters from here on: they never jump.
  const png_uint_32 width = png_get_image_width(reader.png(), reader.info());
  const png_uint_32 height = png_get_image_height(reader.png(), reader.info());
  if (png_get_color_type(reader.png(), reader.info()) != PNG_COLOR_TYPE_RGB ||
      png_get_bit_depth(reader.png(), reader.info()) != 8)
    throw IoError(not_rgb);
  // Buffers live in this frame, allocated before the jumping calls.
  std::vector<png_byte> pixels(size_t(width) * height * 3);
  std::vector<png_bytep> rows(height);
  for (png_uint_32 r = 0; r < height; ++r) rows[r] = pixels.data() + size_t(r) * width * 3;
  if (!read_image(reader.png(), reader.info(), rows.data())) throw IoError(not_rgb);

  PngImage out;
  png_textp chunks = nullptr;
  const int n = png_get_text(reader.png(), reader.info(), &chunks, nullptr);
  for (int i = 0; i < n; ++i) out.text[chunks[i].key] = std::string(chunks[i].text, chunks[i].text_length);
  const int64_t H = height, W = width;
  out.image = Tensor({3, H, W});
  float* q = out.image.f32();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < H * W; ++i) q[c * H * W + i] = float(pixels[size_t(i * 3 + c)]) / 255.0f;
  return out;
}

}  // namespace fresco
