// Video files to RGB frames with FFmpeg's libraries (Debian's libavformat / libavcodec /
// libswscale). Two passes over the input: the first only demuxes (counts the video packets:
// the frame count qwen-vl-utils' readers report, no frame decoded), the second decodes up to the
// last wanted frame and keeps only the wanted ones, so memory is the sampled frames only.
// Files are read by path, data URLs from memory through a custom AVIOContext.
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
}

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>

#include "common/check.h"
#include "vision/video.h"

namespace refract::vision {
namespace {

std::string av_error(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(err, buf, sizeof buf);
  return buf;
}

// Memory input for libavformat: a read cursor over `bytes`, seekable.
struct MemoryInput {
  std::string_view bytes;
  int64_t pos = 0;
  static int read(void* opaque, uint8_t* buf, int size) {
    auto* m = static_cast<MemoryInput*>(opaque);
    const int64_t left = static_cast<int64_t>(m->bytes.size()) - m->pos;
    if (left <= 0) return AVERROR_EOF;
    const int n = static_cast<int>(std::min<int64_t>(left, size));
    std::memcpy(buf, m->bytes.data() + m->pos, size_t(n));
    m->pos += n;
    return n;
  }
  static int64_t seek(void* opaque, int64_t offset, int whence) {
    auto* m = static_cast<MemoryInput*>(opaque);
    const int64_t size = static_cast<int64_t>(m->bytes.size());
    if (whence == AVSEEK_SIZE) return size;
    int64_t base = 0;
    switch (whence & ~AVSEEK_FORCE) {
      case SEEK_SET: base = 0; break;
      case SEEK_CUR: base = m->pos; break;
      case SEEK_END: base = size; break;
      default: return AVERROR(EINVAL);
    }
    if (base + offset < 0 || base + offset > size) return AVERROR(EINVAL);
    m->pos = base + offset;
    return m->pos;
  }
};

// Owners of the FFmpeg handles, as members of Demuxer: a constructor that throws half way
// still frees what it opened (found by fuzz_video_decode).
struct AvioOwner {
  AVIOContext* p = nullptr;
  ~AvioOwner() {
    if (p) {
      av_freep(&p->buffer);
      avio_context_free(&p);
    }
  }
};
struct FormatOwner {
  AVFormatContext* p = nullptr;
  ~FormatOwner() { avformat_close_input(&p); }  // with AVFMT_FLAG_CUSTOM_IO it leaves pb alone
};

// An opened container with its best video stream.
class Demuxer {
 public:
  // `bytes` non-null: read from memory; else open `path`.
  Demuxer(const std::string& path, const std::string_view* bytes, const std::string& name, const VideoLimits& limits)
      : name_(name) {
    // FFmpeg's own log lines would go to stderr; the errors it returns are reported here.
    static const bool quiet = (av_log_set_level(AV_LOG_FATAL), true);
    (void)quiet;
    if (bytes) {
      mem_.bytes = *bytes;
      constexpr int kBuf = 1 << 16;
      auto* buf = static_cast<uint8_t*>(av_malloc(kBuf));
      REFRACT_CHECK(buf) << name_ << ": out of memory";
      avio_.p = avio_alloc_context(buf, kBuf, 0, &mem_, &MemoryInput::read, nullptr, &MemoryInput::seek);
      if (!avio_.p) av_free(buf);
      REFRACT_CHECK(avio_.p) << name_ << ": out of memory";
      fmt_.p = avformat_alloc_context();
      REFRACT_CHECK(fmt_.p) << name_ << ": out of memory";
      fmt_.p->pb = avio_.p;
      fmt_.p->flags |= AVFMT_FLAG_CUSTOM_IO;
    }
    // On failure avformat_open_input frees the context and sets it to null.
    const int err = avformat_open_input(&fmt_.p, bytes ? nullptr : path.c_str(), nullptr, nullptr);
    REFRACT_CHECK(err >= 0) << name_ << ": not a readable video (" << av_error(err) << ")";
    // The sizes the container's header declares, checked before avformat_find_stream_info reads
    // (and may decode) a first frame: a tiny file declaring huge frames costs nothing.
    for (unsigned i = 0; i < fmt_.p->nb_streams; ++i) check_size(fmt_.p->streams[i]->codecpar, limits);
    const int info = avformat_find_stream_info(fmt_.p, nullptr);
    REFRACT_CHECK(info >= 0) << name_ << ": cannot read the stream information (" << av_error(info) << ")";
    stream_ = av_find_best_stream(fmt_.p, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
    REFRACT_CHECK(stream_ >= 0) << name_ << ": no video stream";
    check_size(stream()->codecpar, limits);  // as the codec's own header (e.g. H.264 SPS) says
  }
  void check_size(const AVCodecParameters* par, const VideoLimits& limits) const {
    if (par->codec_type != AVMEDIA_TYPE_VIDEO) return;
    const int64_t w = par->width, h = par->height;
    REFRACT_CHECK(w >= 0 && h >= 0 && (w == 0 || h <= limits.max_frame_pixels / w))
        << name_ << ": frames of " << w << "x" << h << " (" << w * h << " pixels) exceed the limit of "
        << limits.max_frame_pixels << " pixels per frame";
  }
  Demuxer(const Demuxer&) = delete;
  Demuxer& operator=(const Demuxer&) = delete;

  AVStream* stream() const { return fmt_.p->streams[stream_]; }
  // Next packet of the video stream into `pkt`; false at the end of the file.
  bool next_packet(AVPacket* pkt) {
    for (;;) {
      av_packet_unref(pkt);
      const int err = av_read_frame(fmt_.p, pkt);
      if (err == AVERROR_EOF) return false;
      REFRACT_CHECK(err >= 0) << name_ << ": read error (" << av_error(err) << ")";
      if (pkt->stream_index == stream_) return true;
    }
  }

 private:
  std::string name_;
  MemoryInput mem_;
  AvioOwner avio_;    // declared before fmt_: freed after it
  FormatOwner fmt_;
  int stream_ = -1;
};

struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
struct CodecDeleter {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct SwsDeleter {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};

VideoStreamInfo probe(const std::string& path, const std::string_view* bytes, const std::string& name,
                      const VideoLimits& limits) {
  Demuxer d(path, bytes, name, limits);
  AVStream* st = d.stream();
  VideoStreamInfo info;
  info.width = st->codecpar->width;
  info.height = st->codecpar->height;
  const AVCodecDescriptor* desc = avcodec_descriptor_get(st->codecpar->codec_id);
  info.codec = desc ? desc->name : "unknown";
  REFRACT_CHECK(info.width > 0 && info.height > 0)
      << name << ": invalid frame size " << info.width << "x" << info.height;
  AVRational rate = st->avg_frame_rate;
  if (rate.num <= 0 || rate.den <= 0) rate = st->r_frame_rate;
  REFRACT_CHECK(rate.num > 0 && rate.den > 0) << name << ": the video stream has no frame rate";
  info.fps = av_q2d(rate);
  std::unique_ptr<AVPacket, PacketDeleter> pkt(av_packet_alloc());
  while (d.next_packet(pkt.get())) {
    ++info.num_frames;
    REFRACT_CHECK(info.num_frames <= limits.max_total_frames)
        << name << ": more than " << limits.max_total_frames << " frames";
  }
  REFRACT_CHECK(info.num_frames > 0) << name << ": the video stream has no frames";
  return info;
}

VideoFrames decode(const std::string& path, const std::string_view* bytes, const std::string& name,
                   const std::vector<int64_t>& indices, const VideoLimits& limits, ResizedSize resize_to) {
  REFRACT_CHECK(!indices.empty()) << name << ": no frame asked for";
  Demuxer d(path, bytes, name, limits);
  AVStream* st = d.stream();
  const int64_t w = st->codecpar->width, h = st->codecpar->height;
  REFRACT_CHECK(w > 0 && h > 0 && w * h <= limits.max_frame_pixels)
      << name << ": frames of " << w << "x" << h << " exceed the limit of " << limits.max_frame_pixels
      << " pixels per frame";
  // Only distinct frames are held; the result repeats them as asked.
  std::map<int64_t, size_t> wanted;  // frame index -> slot
  for (int64_t i : indices) {
    REFRACT_CHECK(i >= 0) << name << ": negative frame index " << i;
    wanted.emplace(i, 0);
  }
  const bool resize = resize_to.width > 0 && resize_to.height > 0;
  const int64_t held_w = resize ? resize_to.width : w, held_h = resize ? resize_to.height : h;
  REFRACT_CHECK(static_cast<int64_t>(wanted.size()) <= limits.max_sampled_bytes / (held_w * held_h * 3))
      << name << ": " << wanted.size() << " frames of " << held_w << "x" << held_h << " need "
      << static_cast<int64_t>(wanted.size()) * held_w * held_h * 3 << " bytes, over the limit of "
      << limits.max_sampled_bytes;
  const int64_t last_wanted = wanted.rbegin()->first;

  const AVCodec* codec = avcodec_find_decoder(st->codecpar->codec_id);
  REFRACT_CHECK(codec) << name << ": no decoder for codec id " << st->codecpar->codec_id;
  std::unique_ptr<AVCodecContext, CodecDeleter> ctx(avcodec_alloc_context3(codec));
  REFRACT_CHECK(ctx) << name << ": out of memory";
  REFRACT_CHECK(avcodec_parameters_to_context(ctx.get(), st->codecpar) >= 0) << name << ": bad codec parameters";
  ctx->thread_count = 1;  // deterministic and within the caller's thread budget
  ctx->max_pixels = limits.max_frame_pixels;  // the decoder's own bound (coded sizes are padded)
  const int open = avcodec_open2(ctx.get(), codec, nullptr);
  REFRACT_CHECK(open >= 0) << name << ": cannot open the " << codec->name << " decoder (" << av_error(open) << ")";

  std::vector<Image> held;
  std::vector<double> held_ts;
  std::map<int64_t, size_t> slot;
  std::unique_ptr<AVPacket, PacketDeleter> pkt(av_packet_alloc());
  std::unique_ptr<AVFrame, FrameDeleter> frame(av_frame_alloc());
  std::unique_ptr<SwsContext, SwsDeleter> sws;
  double last_ts = 0;
  std::vector<uint8_t> rgb_rows;  // swscale's output rows
  int64_t n = 0;  // frames decoded so far (presentation order)
  const double tb = av_q2d(st->time_base);
  auto convert = [&](const AVFrame* f) {
    REFRACT_CHECK(f->width == w && f->height == h)
        << name << ": frame " << n << " is " << f->width << "x" << f->height << ", the stream declares " << w << "x" << h;
    // ref: PyAV VideoFrame.to_ndarray(format="rgb24") / decord: sws_scale to RGB24 at the same
    // size; FFmpeg's yuv -> rgb path ignores the scaling filter when the size is unchanged.
    sws.reset(sws_getCachedContext(sws.release(), f->width, f->height, static_cast<AVPixelFormat>(f->format),
                                   f->width, f->height, AV_PIX_FMT_RGB24, SWS_BILINEAR, nullptr, nullptr, nullptr));
    REFRACT_CHECK(sws) << name << ": cannot convert pixel format "
                       << (av_get_pix_fmt_name(static_cast<AVPixelFormat>(f->format)) ?: "?") << " to RGB";
    // swscale's SIMD writes whole aligned blocks: convert into rows padded to 64 bytes (plus a
    // tail), then copy the pixels out.
    const int64_t stride = (w * 3 + 63) / 64 * 64;
    rgb_rows.resize(size_t(stride * h + 64));
    uint8_t* dst[4] = {rgb_rows.data(), nullptr, nullptr, nullptr};
    int dst_stride[4] = {static_cast<int>(stride), 0, 0, 0};
    sws_scale(sws.get(), f->data, f->linesize, 0, f->height, dst, dst_stride);
    Image img;
    img.width = w;
    img.height = h;
    img.rgb.resize(size_t(w * h * 3));
    for (int64_t y = 0; y < h; ++y)
      std::memcpy(img.rgb.data() + y * w * 3, rgb_rows.data() + y * stride, size_t(w * 3));
    return resize ? resize_bicubic_antialias_torch(img, resize_to.width, resize_to.height) : img;
  };
  std::unique_ptr<AVFrame, FrameDeleter> prev(av_frame_alloc());  // the latest decoded frame (a reference)
  auto take = [&](AVFrame* f) {
    const int64_t pts = f->best_effort_timestamp;
    last_ts = pts == AV_NOPTS_VALUE ? 0.0 : pts * tb;
    if (wanted.count(n)) {
      slot[n] = held.size();
      held.push_back(convert(f));
      held_ts.push_back(last_ts);
    }
    av_frame_unref(prev.get());
    REFRACT_CHECK(av_frame_ref(prev.get(), f) >= 0) << name << ": out of memory";
    ++n;
  };
  bool draining = false;
  while (n <= last_wanted) {
    if (!draining) {
      if (d.next_packet(pkt.get())) {
        const int err = avcodec_send_packet(ctx.get(), pkt.get());
        // A damaged packet is skipped, as FFmpeg's players do; the frame count tells.
        if (err < 0 && err != AVERROR(EAGAIN)) continue;
      } else {
        avcodec_send_packet(ctx.get(), nullptr);
        draining = true;
      }
    }
    bool got_any = false;
    for (;;) {
      const int err = avcodec_receive_frame(ctx.get(), frame.get());
      if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) break;
      REFRACT_CHECK(err >= 0) << name << ": decoding failed at frame " << n << " (" << av_error(err) << ")";
      got_any = true;
      take(frame.get());
      av_frame_unref(frame.get());
      if (n > last_wanted) break;
    }
    if (draining && !got_any) break;
  }
  REFRACT_CHECK(n > 0) << name << ": no frame could be decoded";
  Image last;  // for indices past the last decoded frame
  if (n <= last_wanted) last = convert(prev.get());
  VideoFrames out;
  out.frames.reserve(indices.size());
  for (int64_t i : indices) {
    const auto it = slot.find(i);
    if (it != slot.end()) {
      out.frames.push_back(held[it->second]);
      out.timestamps.push_back(held_ts[it->second]);
    } else {  // past the last decodable frame
      out.frames.push_back(last);
      out.timestamps.push_back(last_ts);
    }
  }
  return out;
}

}  // namespace

VideoStreamInfo probe_video_file(const std::string& path, const VideoLimits& limits) {
  return probe(path, nullptr, path, limits);
}
VideoStreamInfo probe_video_bytes(std::string_view bytes, const std::string& name, const VideoLimits& limits) {
  return probe("", &bytes, name, limits);
}
VideoFrames decode_video_frames(const std::string& path, const std::vector<int64_t>& indices,
                                const VideoLimits& limits, ResizedSize resize_to) {
  return decode(path, nullptr, path, indices, limits, resize_to);
}
VideoFrames decode_video_frames_bytes(std::string_view bytes, const std::string& name,
                                      const std::vector<int64_t>& indices, const VideoLimits& limits, ResizedSize resize_to) {
  return decode("", &bytes, name, indices, limits, resize_to);
}

}  // namespace refract::vision
