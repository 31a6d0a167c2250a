// safetensors reader (mmap) and atomic streaming writer.
// ref: https://github.com/huggingface/safetensors safetensors/src/tensor.rs (validation rules:
// header length within the file, JSON object header, offsets sorted, contiguous and covering
// the whole data section, byte size == numel * dtype size).
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "common/atomic_file.h"
#include "common/check.h"

namespace refract::io {

namespace {

using json = nlohmann::json;

struct DTypeRow {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeRow kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
};

bool lookup_dtype(const std::string& name, DType* out) {
  for (const auto& row : kDTypes) {
    if (name == row.name) {
      *out = row.dtype;
      return true;
    }
  }
  return false;
}

// numel * elem_size with overflow detection; false on overflow or negative dimension.
bool checked_nbytes(const std::vector<int64_t>& shape, size_t elem_size, size_t* out) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return false;
    const auto ud = static_cast<uint64_t>(d);
    if (ud != 0 && n > std::numeric_limits<uint64_t>::max() / ud) return false;
    n *= ud;
  }
  if (n > std::numeric_limits<uint64_t>::max() / elem_size) return false;
  *out = static_cast<size_t>(n * elem_size);
  return true;
}

// Parses the header JSON, rejecting duplicate keys at any depth (nlohmann would silently keep
// the last one; a duplicated tensor name would make the file ambiguous).
json parse_header_json(const std::string& where, const char* begin, size_t len) {
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  auto cb = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (event == json::parse_event_t::key && !keys.empty()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(begin, begin + len, cb);
  } catch (const json::exception& e) {
    REFRACT_FAIL() << where << ": invalid JSON header: " << e.what();
  }
  REFRACT_CHECK(duplicate.empty()) << where << ": duplicate name '" << duplicate
                                   << "' in header";
  return header;
}

std::vector<int64_t> parse_shape(const std::string& where, const std::string& name,
                                 const json& j) {
  REFRACT_CHECK(j.is_array()) << where << ": tensor '" << name << "': shape is not an array";
  std::vector<int64_t> shape;
  for (const auto& d : j) {
    REFRACT_CHECK(d.is_number_unsigned() &&
                  d.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        << where << ": tensor '" << name << "': shape entry " << d.dump()
        << " is not a non-negative integer";
    shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
  }
  return shape;
}

std::string build_header(const std::vector<const TensorToWrite*>& sorted,
                         const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const TensorToWrite* t : sorted) {
    size_t expect = 0;
    REFRACT_CHECK(checked_nbytes(t->shape, dtype_size(t->dtype), &expect))
        << "tensor '" << t->name << "': invalid shape";
    REFRACT_CHECK(expect == t->nbytes) << "tensor '" << t->name << "': shape needs " << expect
                                       << " bytes but " << t->nbytes << " were given";
    REFRACT_CHECK(t->nbytes == 0 || t->data != nullptr)
        << "tensor '" << t->name << "': null data";
    header[t->name] = {{"dtype", dtype_name(t->dtype)},
                       {"shape", t->shape},
                       {"data_offsets", {offset, offset + t->nbytes}}};
    offset += t->nbytes;
  }
  std::string text = header.dump();
  // ref: safetensors tensor.rs prepare(): pad with spaces so the data starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

std::vector<const TensorToWrite*> sorted_unique(const std::vector<TensorToWrite>& tensors) {
  std::vector<const TensorToWrite*> sorted;
  for (const auto& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const TensorToWrite* a, const TensorToWrite* b) { return a->name < b->name; });
  for (size_t i = 0; i < sorted.size(); ++i) {
    REFRACT_CHECK(sorted[i]->name != "__metadata__") << "'__metadata__' is not a tensor name";
    REFRACT_CHECK(i == 0 || sorted[i]->name != sorted[i - 1]->name)
        << "duplicate tensor name '" << sorted[i]->name << "'";
  }
  return sorted;
}

std::string length_prefix(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    // Chunked so a multi-GB tensor never needs one giant write().
    ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0 && errno == EINTR) continue;
    REFRACT_CHECK(w > 0) << "cannot write " << path << ": " << std::strerror(errno);
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

size_t dtype_size(DType d) {
  for (const auto& row : kDTypes)
    if (row.dtype == d) return row.size;
  REFRACT_FAIL() << "invalid DType " << static_cast<int>(d);
}

const char* dtype_name(DType d) {
  for (const auto& row : kDTypes)
    if (row.dtype == d) return row.name;
  REFRACT_FAIL() << "invalid DType " << static_cast<int>(d);
}

DType dtype_from_name(const std::string& name) {
  DType d;
  REFRACT_CHECK(lookup_dtype(name, &d)) << "unknown dtype '" << name << "'";
  return d;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---- SafetensorsFile ------------------------------------------------------------------------

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  REFRACT_CHECK(fd >= 0) << "cannot open " << path << ": " << std::strerror(errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    REFRACT_FAIL() << "cannot stat " << path << ": " << std::strerror(e);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    REFRACT_FAIL() << path << ": not a regular file";
  }
  const auto size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    REFRACT_FAIL() << path << ": file is " << size << " bytes, too small for the 8-byte header length";
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  ::close(fd);  // the mapping keeps the file alive
  REFRACT_CHECK(map != MAP_FAILED) << "cannot mmap " << path << ": " << std::strerror(e);
  f->map_ = map;
  f->map_size_ = size;
  f->parse(static_cast<const uint8_t*>(map), size);
  return f;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::from_bytes(std::string bytes,
                                                             const std::string& name) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = name;
  f->owned_ = std::move(bytes);
  f->parse(reinterpret_cast<const uint8_t*>(f->owned_.data()), f->owned_.size());
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, map_size_);
}

void SafetensorsFile::parse(const uint8_t* base, size_t size) {
  const std::string& where = path_;
  REFRACT_CHECK(size >= 8) << where << ": file is " << size
                           << " bytes, too small for the 8-byte header length";
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | base[i];
  REFRACT_CHECK(header_len <= size - 8) << where << ": header length " << header_len
                                        << " is beyond the file size " << size;
  const char* header_begin = reinterpret_cast<const char*>(base + 8);
  // ref: tensor.rs InvalidHeaderStart: the header must be a JSON object.
  REFRACT_CHECK(header_len > 0 && header_begin[0] == '{')
      << where << ": invalid JSON header: it does not start with '{'";
  const json header = parse_header_json(where, header_begin, header_len);
  REFRACT_CHECK(header.is_object()) << where << ": invalid JSON header: not an object";

  const uint8_t* data = base + 8 + header_len;
  const size_t data_size = size - 8 - header_len;

  struct Span {
    size_t begin, end;
    size_t index;
  };
  std::vector<Span> spans;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (v.is_null()) continue;
      REFRACT_CHECK(v.is_object()) << where << ": __metadata__ is not an object";
      for (auto m = v.begin(); m != v.end(); ++m) {
        REFRACT_CHECK(m.value().is_string())
            << where << ": non-string metadata value for key '" << m.key()
            << "': " << m.value().dump();
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    REFRACT_CHECK(v.is_object()) << where << ": tensor '" << name << "': entry is not an object";
    auto dt = v.find("dtype");
    REFRACT_CHECK(dt != v.end() && dt->is_string())
        << where << ": tensor '" << name << "': missing string field 'dtype'";
    TensorInfo info;
    info.name = name;
    REFRACT_CHECK(lookup_dtype(dt->get<std::string>(), &info.dtype))
        << where << ": tensor '" << name << "': unknown dtype '" << dt->get<std::string>() << "'";
    auto sh = v.find("shape");
    REFRACT_CHECK(sh != v.end()) << where << ": tensor '" << name << "': missing field 'shape'";
    info.shape = parse_shape(where, name, *sh);
    auto off = v.find("data_offsets");
    REFRACT_CHECK(off != v.end() && off->is_array() && off->size() == 2 &&
                  (*off)[0].is_number_unsigned() && (*off)[1].is_number_unsigned())
        << where << ": tensor '" << name
        << "': data_offsets must be an array of two non-negative integers";
    const uint64_t b = (*off)[0].get<uint64_t>();
    const uint64_t e = (*off)[1].get<uint64_t>();
    REFRACT_CHECK(b <= e && e <= data_size)
        << where << ": tensor '" << name << "': data_offsets [" << b << ", " << e
        << "] out of range (data section is " << data_size << " bytes)";
    size_t expect = 0;
    REFRACT_CHECK(checked_nbytes(info.shape, dtype_size(info.dtype), &expect) &&
                  expect == e - b)
        << where << ": tensor '" << name << "': shape/byte size mismatch: shape needs "
        << expect << " bytes of " << dtype_name(info.dtype) << " but data_offsets span "
        << (e - b);
    info.data = data + b;
    info.nbytes = static_cast<size_t>(e - b);
    spans.push_back({static_cast<size_t>(b), static_cast<size_t>(e), tensors_.size()});
    tensors_.push_back(std::move(info));
  }

  // ref: tensor.rs validate(): sorted by offsets, each tensor starts where the previous ended
  // (no overlap, no hole) and the last one ends at the end of the buffer.
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  size_t cursor = 0;
  for (const Span& s : spans) {
    const std::string& name = tensors_[s.index].name;
    REFRACT_CHECK(s.begin >= cursor) << where << ": tensor '" << name << "': data_offsets ["
                                     << s.begin << ", " << s.end << "] overlap a previous tensor";
    REFRACT_CHECK(s.begin == cursor) << where << ": tensor '" << name
                                     << "': data_offsets leave a hole at bytes [" << cursor
                                     << ", " << s.begin << ")";
    cursor = s.end;
  }
  REFRACT_CHECK(cursor == data_size) << where << ": data_offsets not covering the data: tensors end at "
                                     << cursor << " but the data section is " << data_size
                                     << " bytes";

  // Keep tensors in file (offset) order: sequential reads walk the mapping forward.
  std::vector<TensorInfo> ordered;
  ordered.reserve(tensors_.size());
  for (const Span& s : spans) ordered.push_back(std::move(tensors_[s.index]));
  tensors_ = std::move(ordered);
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& SafetensorsFile::at(const std::string& name) const {
  const TensorInfo* t = find(name);
  REFRACT_CHECK(t != nullptr) << path_ << ": no tensor named '" << name << "'";
  return *t;
}

// ---- TensorStore ----------------------------------------------------------------------------

namespace {

std::string metadata_value(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

}  // namespace

TensorStore TensorStore::open(const std::string& path_or_dir) {
  namespace fs = std::filesystem;
  TensorStore store;
  store.where_ = path_or_dir;
  fs::path index_path;
  fs::path single_path;
  std::error_code ec;
  if (fs::is_directory(path_or_dir, ec)) {
    const fs::path dir(path_or_dir);
    if (fs::exists(dir / "model.safetensors.index.json")) {
      index_path = dir / "model.safetensors.index.json";
    } else if (fs::exists(dir / "model.safetensors")) {
      single_path = dir / "model.safetensors";
    } else {
      REFRACT_FAIL() << path_or_dir
                     << ": directory has neither model.safetensors.index.json nor model.safetensors";
    }
  } else {
    const std::string& p = path_or_dir;
    const std::string suffix = ".index.json";
    if (p.size() >= suffix.size() && p.compare(p.size() - suffix.size(), suffix.size(), suffix) == 0)
      index_path = p;
    else
      single_path = p;
  }

  if (!single_path.empty()) {
    auto f = SafetensorsFile::open(single_path.string());
    store.files_.push_back(f);
    // Names are unique within one file (parse rejects duplicates).
    for (const TensorInfo& t : f->tensors()) store.by_name_[t.name] = &t;
    store.metadata_ = f->metadata();
    return store;
  }

  // ref: transformers modeling_utils (sharded checkpoints): {"metadata": {...},
  // "weight_map": {tensor name: shard file name relative to the index}}.
  const std::string index_text = read_file(index_path.string());
  json index;
  try {
    index = json::parse(index_text);
  } catch (const json::exception& e) {
    REFRACT_FAIL() << index_path.string() << ": invalid JSON: " << e.what();
  }
  REFRACT_CHECK(index.is_object()) << index_path.string() << ": not a JSON object";
  auto wm = index.find("weight_map");
  REFRACT_CHECK(wm != index.end() && wm->is_object())
      << index_path.string() << ": missing object 'weight_map'";
  const fs::path base = index_path.parent_path();
  std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    REFRACT_CHECK(it.value().is_string()) << index_path.string() << ": weight_map['" << it.key()
                                          << "'] is not a file name";
    const std::string shard = it.value().get<std::string>();
    if (!shards.count(shard)) shards[shard] = SafetensorsFile::open((base / shard).string());
  }
  std::map<std::string, std::string> owner;  // tensor -> shard, to name both on duplicates
  for (const auto& [shard, f] : shards) {
    store.files_.push_back(f);
    for (const TensorInfo& t : f->tensors()) {
      auto [it, inserted] = owner.emplace(t.name, shard);
      REFRACT_CHECK(inserted) << index_path.string() << ": tensor '" << t.name
                              << "' appears in both " << it->second << " and " << shard;
      store.by_name_[t.name] = &t;
    }
    for (const auto& [k, v] : f->metadata()) store.metadata_.emplace(k, v);
  }
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    const std::string shard = it.value().get<std::string>();
    REFRACT_CHECK(shards.at(shard)->find(it.key()) != nullptr)
        << index_path.string() << ": weight_map puts '" << it.key() << "' in " << shard
        << " but that shard has no such tensor";
  }
  auto meta = index.find("metadata");
  if (meta != index.end() && meta->is_object())
    for (auto m = meta->begin(); m != meta->end(); ++m)
      store.metadata_[m.key()] = metadata_value(m.value());
  return store;
}

const TensorInfo* TensorStore::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const TensorInfo& TensorStore::at(const std::string& name) const {
  const TensorInfo* t = find(name);
  REFRACT_CHECK(t != nullptr) << where_ << ": no tensor named '" << name << "'";
  return *t;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  out.reserve(by_name_.size());
  for (const auto& kv : by_name_) out.push_back(kv.first);
  return out;
}

// ---- writing --------------------------------------------------------------------------------

std::string safetensors_bytes(const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  const auto sorted = sorted_unique(tensors);
  const std::string header = build_header(sorted, metadata);
  std::string out = length_prefix(header.size());
  out += header;
  for (const TensorToWrite* t : sorted)
    if (t->nbytes) out.append(static_cast<const char*>(t->data), t->nbytes);
  return out;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const auto sorted = sorted_unique(tensors);
  const std::string header = build_header(sorted, metadata);
  // Streamed to a temporary sibling then renamed: a checkpoint may be many GB, so the
  // tensors are written straight from their buffers instead of being joined in memory.
  const std::string tmp = temp_path_for(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  REFRACT_CHECK(fd >= 0) << "cannot create " << tmp << ": " << std::strerror(errno);
  try {
    const std::string prefix = length_prefix(header.size());
    write_all(fd, prefix.data(), prefix.size(), path);
    write_all(fd, header.data(), header.size(), path);
    for (const TensorToWrite* t : sorted) write_all(fd, t->data, t->nbytes, path);
    REFRACT_CHECK(::fsync(fd) == 0) << "cannot flush " << path << ": " << std::strerror(errno);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    REFRACT_FAIL() << "cannot close " << path << ": " << std::strerror(e);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    REFRACT_FAIL() << "cannot rename " << tmp << " to " << path << ": " << std::strerror(e);
  }
  fsync_directory(std::filesystem::path(path).parent_path().string());
}

}  // namespace refract::io
