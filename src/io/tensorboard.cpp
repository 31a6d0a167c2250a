#include "io/tensorboard.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "common/check.h"
#include "io/tfrecord.h"
#include "tensorboard_event.pb.h"

namespace refract::io {

namespace {

double wall_time_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

constexpr int kDtString = 7;  // ref: tensorflow/core/framework/types.proto DT_STRING

}  // namespace

TensorBoardWriter::TensorBoardWriter(const std::string& logdir) {
  std::error_code ec;
  std::filesystem::create_directories(logdir, ec);
  REFRACT_CHECK(!ec) << "cannot create TensorBoard logdir " << logdir << ": " << ec.message();
  static std::atomic<int> counter{0};
  // ref: torch/utils/tensorboard/writer.py: events.out.tfevents.<time>.<host>.<pid>.<uid>;
  // TensorBoard only looks for "tfevents" in the name. pid + counter keep writers apart.
  const auto seconds = static_cast<long long>(wall_time_now());
  path_ = (std::filesystem::path(logdir) /
           ("events.out.tfevents." + std::to_string(seconds) + "." + host_name() + "." +
            std::to_string(::getpid()) + "." + std::to_string(counter++)))
              .string();
  file_ = std::fopen(path_.c_str(), "ab");
  REFRACT_CHECK(file_ != nullptr) << "cannot create " << path_ << ": " << std::strerror(errno);
  tb::Event event;
  event.set_wall_time(wall_time_now());
  event.set_file_version("brain.Event:2");
  write_event(event.SerializeAsString());
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  if (file_ != nullptr) {
    std::fflush(file_);
    std::fclose(file_);
  }
}

void TensorBoardWriter::write_event(const std::string& serialized_event) {
  const std::string record = tfrecord_frame(serialized_event);
  std::lock_guard<std::mutex> lock(mutex_);
  REFRACT_CHECK(std::fwrite(record.data(), 1, record.size(), file_) == record.size())
      << "cannot write " << path_ << ": " << std::strerror(errno);
}

void TensorBoardWriter::add_scalar(const std::string& tag, double value, int64_t step) {
  tb::Event event;
  event.set_wall_time(wall_time_now());
  event.set_step(step);
  tb::Summary::Value* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(static_cast<float>(value));
  write_event(event.SerializeAsString());
}

void TensorBoardWriter::add_text(const std::string& tag, const std::string& text, int64_t step) {
  tb::Event event;
  event.set_wall_time(wall_time_now());
  event.set_step(step);
  tb::Summary::Value* v = event.mutable_summary()->add_value();
  // ref: torch/utils/tensorboard/summary.py text(): tag + "/text_summary", plugin "text",
  // DT_STRING tensor of shape [1]. We keep the caller's tag as is (it is what they asked for).
  v->set_tag(tag);
  v->mutable_metadata()->mutable_plugin_data()->set_plugin_name("text");
  tb::TensorProto* t = v->mutable_tensor();
  t->set_dtype(kDtString);
  t->mutable_tensor_shape()->add_dim()->set_size(1);
  t->add_string_val(text);
  write_event(event.SerializeAsString());
}

void TensorBoardWriter::flush() {
  std::lock_guard<std::mutex> lock(mutex_);
  REFRACT_CHECK(std::fflush(file_) == 0) << "cannot flush " << path_ << ": " << std::strerror(errno);
  ::fsync(::fileno(file_));
}

}  // namespace refract::io
