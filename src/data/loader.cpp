#include "data/loader.h"

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include "common/check.h"
#include "data/rng.h"
#include "vision/image.h"

namespace refract::data {

LoaderState LoaderState::from_json(const nlohmann::json& j) {
  REFRACT_CHECK(j.is_object() && j.contains("epoch") && j.contains("index") &&
                j["epoch"].is_number_integer() && j["index"].is_number_integer())
      << "data loader state must be {\"epoch\": int, \"index\": int}, got " << j.dump();
  LoaderState s;
  s.epoch = j["epoch"];
  s.index = j["index"];
  REFRACT_CHECK(s.epoch >= 0 && s.index >= 0) << "data loader state out of range: " << j.dump();
  return s;
}

LoaderConfig loader_config(const DataConfig& c, int64_t batch_size) {
  LoaderConfig l;
  l.batch_size = batch_size;
  l.seed = effective_data_seed(c);
  l.num_workers = c.num_workers;
  l.prefetch_factor = c.prefetch_factor;
  l.preprocess.min_pixels = c.min_pixels;
  l.preprocess.max_pixels = c.max_pixels;
  return l;
}

LoadedSample load_sample(const Sample& s, const vision::PreprocessConfig& cfg) {
  LoadedSample out;
  out.sample = s;
  try {
    for (auto& ref : out.sample.images) {
      const vision::Image img = ref.path.rfind("data:", 0) == 0 ? vision::decode_data_url(ref.path)
                                                               : vision::decode_image_file(ref.path);
      ref.width = img.width;
      ref.height = img.height;
      out.images.push_back(vision::preprocess_image(img, cfg));
    }
  } catch (const std::exception& e) {
    REFRACT_FAIL() << s.source << ": " << e.what();
  }
  for (auto& m : out.sample.prompt)
    for (auto& item : m.content)
      if (item.kind == text::ContentItem::Kind::kImage && item.image_index >= 0 &&
          item.image_index < static_cast<int64_t>(out.images.size()))
        item.image_tokens = out.images[static_cast<size_t>(item.image_index)].num_image_tokens();
  return out;
}

struct DataLoader::Impl {
  std::vector<Sample> samples;
  LoaderConfig cfg;
  LoaderState position;   // next batch handed out
  LoaderState scheduled;  // next batch to schedule

  // Cached order of the epochs in flight (at most two at a time: current and next).
  mutable std::mutex order_mutex;
  mutable std::deque<std::pair<int64_t, std::shared_ptr<const std::vector<int64_t>>>> orders;

  struct Pending {
    LoaderState at;
    std::shared_future<Batch> batch;
  };
  std::deque<Pending> pending;

  // Worker pool.
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<std::function<void()>> tasks;
  std::vector<std::thread> workers;
  bool stop = false;

  int64_t shard_size() const {
    const int64_t n = static_cast<int64_t>(samples.size());
    const int64_t per_rank = (n + cfg.world_size - 1) / cfg.world_size;
    return cfg.drop_last ? per_rank / cfg.batch_size * cfg.batch_size : per_rank;
  }

  std::vector<int64_t> compute_order(int64_t epoch) const {
    const int64_t n = static_cast<int64_t>(samples.size());
    std::vector<int64_t> perm(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) perm[static_cast<size_t>(i)] = i;
    if (cfg.shuffle) {
      Rng rng(derive_seed(cfg.seed, static_cast<uint64_t>(epoch)));
      rng.shuffle(perm);
    }
    // ref: torch.utils.data.DistributedSampler: pad by wrapping, then take every W-th.
    const int64_t per_rank = (n + cfg.world_size - 1) / cfg.world_size;
    const int64_t total = per_rank * cfg.world_size;
    for (int64_t i = n; i < total; ++i) perm.push_back(perm[static_cast<size_t>(i % n)]);
    std::vector<int64_t> mine;
    for (int64_t i = cfg.rank; i < total; i += cfg.world_size) mine.push_back(perm[static_cast<size_t>(i)]);
    mine.resize(static_cast<size_t>(shard_size()));
    return mine;
  }

  std::shared_ptr<const std::vector<int64_t>> order(int64_t epoch) const {
    std::lock_guard<std::mutex> lock(order_mutex);
    for (const auto& [e, o] : orders)
      if (e == epoch) return o;
    auto o = std::make_shared<const std::vector<int64_t>>(compute_order(epoch));
    orders.emplace_back(epoch, o);
    if (orders.size() > 3) orders.pop_front();
    return o;
  }

  // Normalises a position to the start of the next epoch when the current one is used up.
  LoaderState normalise(LoaderState s) const {
    if (s.index >= shard_size()) return {s.epoch + 1, 0};
    return s;
  }

  Batch build(LoaderState at) const {
    const auto ord = order(at.epoch);
    Batch b;
    b.epoch = at.epoch;
    b.index = at.index;
    const int64_t end = std::min<int64_t>(at.index + cfg.batch_size, static_cast<int64_t>(ord->size()));
    for (int64_t i = at.index; i < end; ++i)
      b.items.push_back(load_sample(samples[static_cast<size_t>((*ord)[static_cast<size_t>(i)])], cfg.preprocess));
    return b;
  }

  void schedule_ahead() {
    const size_t depth = static_cast<size_t>(std::max<int64_t>(1, cfg.num_workers * cfg.prefetch_factor));
    while (pending.size() < depth) {
      const LoaderState at = normalise(scheduled);
      auto task = std::make_shared<std::packaged_task<Batch()>>([this, at] { return build(at); });
      pending.push_back({at, task->get_future().share()});
      {
        std::lock_guard<std::mutex> lock(mutex);
        tasks.emplace_back([task] { (*task)(); });
      }
      cv.notify_one();
      scheduled = {at.epoch, at.index + cfg.batch_size};
    }
  }

  void worker_loop() {
    while (true) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex);
        cv.wait(lock, [&] { return stop || !tasks.empty(); });
        if (stop) return;
        task = std::move(tasks.front());
        tasks.pop_front();
      }
      task();
    }
  }
};

DataLoader::DataLoader(std::vector<Sample> samples, LoaderConfig cfg) : impl_(std::make_unique<Impl>()) {
  REFRACT_CHECK(!samples.empty()) << "data loader: no samples";
  REFRACT_CHECK(cfg.batch_size >= 1) << "data loader: batch_size must be >= 1";
  REFRACT_CHECK(cfg.world_size >= 1 && cfg.rank >= 0 && cfg.rank < cfg.world_size)
      << "data loader: rank " << cfg.rank << " not in [0, world_size " << cfg.world_size << ")";
  impl_->samples = std::move(samples);
  impl_->cfg = cfg;
  REFRACT_CHECK(impl_->shard_size() > 0)
      << "data loader: drop_last leaves no batch (" << impl_->samples.size() << " samples, batch_size "
      << cfg.batch_size << ", world_size " << cfg.world_size << ")";
  for (int64_t i = 0; i < cfg.num_workers; ++i) impl_->workers.emplace_back([this] { impl_->worker_loop(); });
}

DataLoader::~DataLoader() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stop = true;
    impl_->tasks.clear();
  }
  impl_->cv.notify_all();
  for (auto& t : impl_->workers) t.join();
}

Batch DataLoader::next() {
  Impl& m = *impl_;
  if (m.cfg.num_workers == 0) {
    const LoaderState at = m.normalise(m.position);
    m.position = {at.epoch, at.index + m.cfg.batch_size};
    return m.build(at);
  }
  m.schedule_ahead();
  Impl::Pending p = std::move(m.pending.front());
  m.pending.pop_front();
  m.position = {p.at.epoch, p.at.index + m.cfg.batch_size};
  m.schedule_ahead();
  return p.batch.get();
}

LoaderState DataLoader::state() const { return impl_->normalise(impl_->position); }

void DataLoader::load_state(const LoaderState& s) {
  Impl& m = *impl_;
  REFRACT_CHECK(s.epoch >= 0 && s.index >= 0) << "data loader state out of range";
  // Queued batches are dropped (their futures are never read); a batch a worker is already
  // building finishes unobserved (it only reads `samples` and the order cache).
  {
    std::lock_guard<std::mutex> lock(m.mutex);
    m.tasks.clear();
  }
  m.pending.clear();
  m.position = s;
  m.scheduled = s;
}

int64_t DataLoader::samples_per_epoch() const { return impl_->shard_size(); }

int64_t DataLoader::batches_per_epoch() const {
  return (impl_->shard_size() + impl_->cfg.batch_size - 1) / impl_->cfg.batch_size;
}

std::vector<int64_t> DataLoader::epoch_order(int64_t epoch) const { return *impl_->order(epoch); }

}  // namespace refract::data
