#include "text/bpe.h"

#include <mutex>
#include <queue>
#include <unordered_map>

#include "common/check.h"

namespace refract::text {
namespace {

// Open-addressing map (id_a, id_b) -> (rank, merged id): the hot lookup of BPE.
class PairTable {
 public:
  struct Value {
    int32_t rank;
    int32_t id;
  };
  explicit PairTable(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    keys_.assign(cap, kEmpty);
    values_.resize(cap);
    mask_ = cap - 1;
  }
  void insert(int32_t a, int32_t b, Value v) {
    const uint64_t k = key(a, b);
    size_t i = hash(k) & mask_;
    while (keys_[i] != kEmpty && keys_[i] != k) i = (i + 1) & mask_;
    // ref: tokenizers models/bpe/model.rs collects merges into a HashMap: a repeated pair keeps
    // its last rank.
    keys_[i] = k;
    values_[i] = v;
  }
  const Value* find(int32_t a, int32_t b) const {
    const uint64_t k = key(a, b);
    size_t i = hash(k) & mask_;
    while (true) {
      if (keys_[i] == k) return &values_[i];
      if (keys_[i] == kEmpty) return nullptr;
      i = (i + 1) & mask_;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
  std::vector<uint64_t> keys_;
  std::vector<Value> values_;
  size_t mask_ = 0;
};

// ref: tokenizers models/bpe/cache.rs: words shorter than this are cached; the cache stops
// growing when full (no eviction).
constexpr size_t kCacheMaxWordBytes = 256;
constexpr size_t kCacheCapacity = 1 << 17;

}  // namespace

struct BpeModel::Impl {
  std::vector<std::string> vocab_bytes;
  int32_t byte_id[256];
  PairTable merges{1};
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;
};

BpeModel::BpeModel(std::vector<std::string> vocab_bytes,
                   const std::vector<std::pair<int32_t, int32_t>>& merges)
    : impl_(std::make_unique<Impl>()) {
  impl_->vocab_bytes = std::move(vocab_bytes);
  const auto& vb = impl_->vocab_bytes;
  std::unordered_map<std::string_view, int32_t> by_bytes;
  by_bytes.reserve(vb.size());
  for (size_t id = 0; id < vb.size(); ++id) {
    if (!vb[id].empty()) by_bytes.emplace(vb[id], static_cast<int32_t>(id));
  }
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    auto it = by_bytes.find(std::string_view(&c, 1));
    impl_->byte_id[b] = it == by_bytes.end() ? -1 : it->second;
  }
  impl_->merges = PairTable(merges.size());
  std::string joined;
  for (size_t r = 0; r < merges.size(); ++r) {
    const auto [a, b] = merges[r];
    joined = vb.at(a) + vb.at(b);
    auto it = by_bytes.find(joined);
    REFRACT_CHECK(it != by_bytes.end()) << "BPE merge " << r << " (ids " << a << ", " << b
                                        << ") produces a token missing from the vocab";
    impl_->merges.insert(a, b, {static_cast<int32_t>(r), it->second});
  }
  impl_->cache.reserve(kCacheCapacity);
}

BpeModel::~BpeModel() = default;

std::vector<int32_t> BpeModel::merge_word(std::string_view word) const {
  const size_t n = word.size();
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool alive;
  };
  std::vector<Symbol> sym(n);
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = impl_->byte_id[static_cast<unsigned char>(word[i])];
    REFRACT_CHECK(id >= 0) << "byte " << static_cast<int>(static_cast<unsigned char>(word[i]))
                           << " has no token in the vocabulary (no byte fallback / unk)";
    sym[i] = {id, static_cast<int32_t>(i) - 1, i + 1 < n ? static_cast<int32_t>(i + 1) : -1, true};
  }
  // ref: tokenizers models/bpe/word.rs merge_all: lowest rank first, leftmost on ties; a queued
  // pair is stale when its left symbol died or its right neighbour changed.
  struct Cand {
    int32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  for (size_t i = 0; i + 1 < n; ++i) {
    if (const auto* m = impl_->merges.find(sym[i].id, sym[i + 1].id))
      heap.push({m->rank, static_cast<int32_t>(i), m->id});
  }
  while (!heap.empty()) {
    const Cand top = heap.top();
    heap.pop();
    Symbol& left = sym[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = sym[left.next];
    const auto* m = impl_->merges.find(left.id, right.id);
    if (m == nullptr || m->id != top.new_id) continue;
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) sym[right.next].prev = top.pos;
    if (left.prev >= 0) {
      if (const auto* p = impl_->merges.find(sym[left.prev].id, left.id))
        heap.push({p->rank, left.prev, p->id});
    }
    if (left.next >= 0) {
      if (const auto* p = impl_->merges.find(left.id, sym[left.next].id))
        heap.push({p->rank, top.pos, p->id});
    }
  }
  std::vector<int32_t> ids;
  for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = sym[i].next) ids.push_back(sym[i].id);
  return ids;
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  const bool cacheable = word.size() < kCacheMaxWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(impl_->cache_mutex);
    thread_local std::string key;
    key.assign(word.data(), word.size());
    auto it = impl_->cache.find(key);
    if (it != impl_->cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids = merge_word(word);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(impl_->cache_mutex);
    if (impl_->cache.size() < kCacheCapacity) impl_->cache.emplace(std::string(word), std::move(ids));
  }
}

}  // namespace refract::text
