// TensorBoard event files: what torch.utils.tensorboard.SummaryWriter writes for
// add_scalar / add_text, without TensorFlow. One writer owns one file
// <logdir>/events.out.tfevents.<unix time>.<host>.<pid>.<n>, appended as TFRecords of Event
// protos; the first record is file_version "brain.Event:2".
#pragma once
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

namespace refract::io {

class TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::string& logdir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // Summary.Value{tag, simple_value} (stored as float, like TensorBoard).
  void add_scalar(const std::string& tag, double value, int64_t step);
  // The text plugin's layout: a DT_STRING tensor of shape [1], plugin_name "text".
  void add_text(const std::string& tag, const std::string& text, int64_t step);
  // Pushes buffered records to the OS (and fsyncs), so TensorBoard sees them now.
  void flush();

  const std::string& path() const { return path_; }

 private:
  void write_event(const std::string& serialized_event);
  std::string path_;
  std::FILE* file_ = nullptr;
  std::mutex mutex_;  // trainers may log from several threads
};

}  // namespace refract::io
