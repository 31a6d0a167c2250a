// Request -> prompt ids + pixel_values -> the scheduler's decode batch -> OpenAI choices.
// One scheduler thread owns the model (continuous batching, generate::DecodeBatch): requests
// wait in `pending` until the batch has room for their n rows (max_num_seqs); those that arrived
// during a step are prefilled together and join at the next step; every step decodes all rows
// together; a finished or cancelled request leaves at once. Callers block in run() on their Job: tokens and the end come back
// through it; cancellation goes the other way (Job::cancel, read at every step).
#include "serve/engine.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "common/check.h"
#include "common/log.h"
#include "generate/decode_batch.h"
#include "generate/generator.h"
#include "model/image_tensors.h"
#include "model/open_model.h"
#include "serve/api_error.h"
#include "serve/delta_text.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"

namespace refract::serve {

namespace {

std::vector<int32_t> to_int32(const std::vector<int64_t>& ids) { return {ids.begin(), ids.end()}; }

}  // namespace

struct PreparedChat {
  ChatRequest request;
  generate::PromptInput prompt;
  int64_t max_new_tokens = 0;
};

// What the scheduler tells a streaming caller: one token of choice `index`.
struct TokenEvent {
  int64_t index = 0;
  int64_t id = 0;
  generate::RawLogprobs raw;  // when logprobs were asked
  bool finished = false;
  generate::FinishReason reason = generate::FinishReason::kLength;
};

// One request between run() (its caller's thread) and the scheduler.
struct Job {
  const PreparedChat* prepared = nullptr;
  generate::RowConfig row_config;
  int64_t n = 1;
  bool stream = false;
  std::atomic<bool> cancel{false};  // set by the caller, read by the scheduler before every step
  int64_t batch_id = -1;            // scheduler only

  std::mutex mu;  // guards what follows
  std::condition_variable cv;
  std::deque<TokenEvent> events;  // streaming only
  std::vector<generate::Completion> completions;
  int64_t finished = 0;
  bool done = false;
  bool cancelled = false;
  std::exception_ptr error;

  void finish(bool was_cancelled, std::exception_ptr e = nullptr) {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    cancelled = was_cancelled;
    error = std::move(e);
    cv.notify_all();
  }
  bool is_done() {
    std::lock_guard<std::mutex> lock(mu);
    return done;
  }
};

struct ChatEngine::Impl {
  EngineConfig config;
  model::OpenedModel opened;
  std::mutex seed_mu;
  std::mt19937_64 seed_source{std::random_device{}()};

  std::mutex mu;  // guards pending and stopping
  std::condition_variable cv;
  std::deque<std::shared_ptr<Job>> pending;
  bool stopping = false;
  std::thread scheduler;

  void scheduler_loop();
};

void ChatEngine::Impl::scheduler_loop() {
  const text::Tokenizer& tok = opened.tok();
  auto decode = [&](const std::vector<int64_t>& ids) { return tok.decode(to_int32(ids)); };
  auto batch = std::make_unique<generate::DecodeBatch>(*opened.model, decode);
  std::vector<std::shared_ptr<Job>> active;
  auto fail_active = [&](const std::exception_ptr& e) {
    for (auto& job : active) job->finish(false, e);
    active.clear();
    batch = std::make_unique<generate::DecodeBatch>(*opened.model, decode);
  };
  while (true) {
    std::vector<std::shared_ptr<Job>> joining;
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return stopping || !pending.empty() || !batch->empty(); });
      if (stopping) break;
      // In arrival order while their rows fit (a request always fits an empty batch).
      int64_t rows = batch->rows();
      while (!pending.empty() && (rows == 0 || rows + pending.front()->n <= config.max_num_seqs)) {
        rows += pending.front()->n;
        joining.push_back(std::move(pending.front()));
        pending.pop_front();
      }
    }
    // The requests that arrived since the last step join together: one prefill (one
    // left-padded batch, the vision tower over all their images) and one cache copy.
    std::vector<std::shared_ptr<Job>> admitted;
    std::vector<generate::DecodeBatch::NewRequest> requests;
    for (auto& job : joining) {
      if (job->cancel) {
        job->finish(true);
        continue;
      }
      Job* j = job.get();
      generate::DecodeBatch::NewRequest q;
      q.prompt = &j->prepared->prompt;
      q.config = j->row_config;
      q.num_generations = j->n;
      q.on_token = [j](int64_t g, const generate::Completion& c, bool finished) {
        std::lock_guard<std::mutex> lock(j->mu);
        if (j->stream) {
          TokenEvent e;
          e.index = g;
          e.id = c.ids.back();
          if (!c.raw_logprobs.empty()) e.raw = c.raw_logprobs.back();
          e.finished = finished;
          e.reason = c.finish_reason;
          j->events.push_back(std::move(e));
        }
        if (finished) {
          j->completions[g] = c;
          if (++j->finished == j->n) j->done = true;
        }
        j->cv.notify_all();
      };
      admitted.push_back(job);
      requests.push_back(std::move(q));
    }
    auto add = [&](size_t first, size_t count) {
      const std::vector<generate::DecodeBatch::NewRequest> group(requests.begin() + first,
                                                                 requests.begin() + first + count);
      const std::vector<int64_t> ids = batch->add(group);
      for (size_t i = 0; i < count; ++i) {
        admitted[first + i]->batch_id = ids[i];
        active.push_back(admitted[first + i]);
      }
    };
    try {
      if (!requests.empty()) add(0, requests.size());
    } catch (...) {
      // add() changed nothing: find the request that fails by adding them one by one.
      for (size_t i = 0; i < requests.size(); ++i) {
        try {
          add(i, 1);
        } catch (...) {
          admitted[i]->finish(false, std::current_exception());
        }
      }
    }
    // A cancelled request leaves now; finished ones have left the batch already.
    for (auto& job : active)
      if (job->cancel && !job->is_done()) {
        batch->remove(job->batch_id);
        job->finish(true);
      }
    active.erase(std::remove_if(active.begin(), active.end(), [](const std::shared_ptr<Job>& j) { return j->is_done(); }),
                 active.end());
    if (batch->empty()) continue;
    try {
      batch->step();
    } catch (const std::exception& e) {
      LOG_ERROR("decode step failed ({}); failing the {} requests of the batch", e.what(), active.size());
      fail_active(std::current_exception());
    }
  }
  const auto stopped = std::make_exception_ptr(Error("the server is stopping"));
  fail_active(stopped);
  std::lock_guard<std::mutex> lock(mu);
  for (auto& job : pending) job->finish(false, stopped);
  pending.clear();
}

ChatEngine::ChatEngine(const EngineConfig& config) : impl_(std::make_unique<Impl>()) {
  impl_->config = config;
  // Merged once at load: serving then costs exactly what the base model costs.
  impl_->opened = model::open_model(config.model, model::AdapterUse::kMerge);
  impl_->opened.tok();  // serving needs the tokenizer next to the weights: fail at start, not per request
  impl_->scheduler = std::thread([m = impl_.get()] { m->scheduler_loop(); });
}

ChatEngine::~ChatEngine() {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  impl_->scheduler.join();
}

std::shared_ptr<PreparedChat> ChatEngine::prepare(ChatRequest req) const {
  const Impl& m = *impl_;
  const text::Tokenizer& tok = m.opened.tok();
  auto p = std::make_shared<PreparedChat>();
  const std::vector<vision::Preprocessed> images = load_request_images(req, m.opened.processor, m.config.media);
  std::vector<RequestVideo> videos = load_request_videos(req, m.opened.processor, m.config.media);
  const text::EncodedChat chat = text::apply_chat_template(tok, req.messages, /*add_generation_prompt=*/true);
  const int64_t prompt_len = static_cast<int64_t>(chat.ids.size());
  const int64_t max_len = m.config.max_model_len;
  // ref: vLLM: "This model's maximum context length is N tokens. However, you requested ..."
  if (req.max_tokens > 0) {
    if (prompt_len + req.max_tokens > max_len)
      throw bad_request("This model's maximum context length is " + std::to_string(max_len) +
                            " tokens (max_model_len). However, you requested " + std::to_string(prompt_len + req.max_tokens) +
                            " tokens (" + std::to_string(prompt_len) + " in the messages, " +
                            std::to_string(req.max_tokens) + " in the completion).",
                        "max_tokens");
    p->max_new_tokens = req.max_tokens;
  } else {
    // No max_tokens: as vLLM, what is left of the context (at most max_completion_length).
    if (prompt_len >= max_len)
      throw bad_request("This model's maximum context length is " + std::to_string(max_len) +
                            " tokens (max_model_len). However, your messages resulted in " + std::to_string(prompt_len) +
                            " tokens (image tokens included).",
                        "messages");
    p->max_new_tokens = std::min(m.config.max_completion_length, max_len - prompt_len);
  }
  p->prompt.input_ids.assign(chat.ids.begin(), chat.ids.end());
  const model::ImageTensors it = model::to_image_tensors(images);
  p->prompt.pixel_values = it.pixel_values;
  p->prompt.image_grid_thw = it.image_grid_thw;
  if (!videos.empty()) {
    std::vector<vision::PreprocessedVideo> processed;
    std::vector<double> seconds;
    for (RequestVideo& v : videos) {
      processed.push_back(std::move(v.processed));
      seconds.push_back(v.second_per_grid_t);
    }
    const model::VideoTensors vt = model::to_video_tensors(processed, seconds);
    p->prompt.pixel_values_videos = vt.pixel_values_videos;
    p->prompt.video_grid_thw = vt.video_grid_thw;
    p->prompt.second_per_grid_ts = vt.second_per_grid_ts;
  }
  p->request = std::move(req);
  return p;
}

int64_t ChatEngine::prompt_tokens(const PreparedChat& p) const { return static_cast<int64_t>(p.prompt.input_ids.size()); }

ChatResult ChatEngine::run(const PreparedChat& p, const std::function<bool()>& cancelled, const DeltaSink& on_delta) {
  Impl& m = *impl_;
  const text::Tokenizer& tok = m.opened.tok();
  const ChatRequest& req = p.request;

  auto job = std::make_shared<Job>();
  job->prepared = &p;
  job->n = req.n;
  job->stream = static_cast<bool>(on_delta);
  job->completions.resize(static_cast<size_t>(req.n));
  generate::RowConfig& rc = job->row_config;
  rc.sampling.do_sample = req.temperature > 0;  // ref: OpenAI temperature 0 = (near) deterministic
  rc.sampling.temperature = req.temperature > 0 ? req.temperature : 1.0;
  rc.sampling.top_p = req.top_p;
  rc.sampling.top_k = req.top_k;
  rc.sampling.min_p = req.min_p;
  rc.sampling.repetition_penalty = req.repetition_penalty;
  if (req.seed) {
    rc.seed = *req.seed;
  } else {
    std::lock_guard<std::mutex> lock(m.seed_mu);
    rc.seed = static_cast<int64_t>(m.seed_source() >> 1);
  }
  rc.max_new_tokens = p.max_new_tokens;
  rc.stop_token_ids = m.opened.stop_token_ids;
  rc.stop_strings = req.stop;
  rc.top_logprobs = req.logprobs ? req.top_logprobs : -1;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    if (m.stopping) throw Error("the server is stopping");
    m.pending.push_back(job);
  }
  m.cv.notify_all();

  // ref: OpenAI / vLLM: the eos token is not part of the message content.
  auto content_ids = [](std::vector<int64_t> ids, generate::FinishReason reason) {
    if (reason == generate::FinishReason::kEos && !ids.empty()) ids.pop_back();
    return to_int32(ids);
  };
  auto finish_reason = [](generate::FinishReason r) { return r == generate::FinishReason::kLength ? "length" : "stop"; };
  std::unordered_map<int64_t, std::string> token_text;  // id -> bytes, for logprobs
  auto piece = [&](int64_t id) -> const std::string& {
    auto it = token_text.find(id);
    if (it == token_text.end()) it = token_text.emplace(id, tok.decode({static_cast<int32_t>(id)})).first;
    return it->second;
  };
  auto logprob_token = [&](int64_t id, float logprob) {
    LogprobToken t;
    t.bytes = piece(id);
    t.token = req.return_tokens_as_token_ids ? "token_id:" + std::to_string(id) : t.bytes;
    t.logprob = logprob;
    return t;
  };
  auto logprob_entry = [&](int64_t id, const generate::RawLogprobs& r) {
    LogprobEntry e;
    static_cast<LogprobToken&>(e) = logprob_token(id, r.logprob);
    for (const generate::TokenLogprob& t : r.top) e.top_logprobs.push_back(logprob_token(t.id, t.logprob));
    return e;
  };

  // Wait for the end; meanwhile (streaming) turn each token into its choice's text delta, held
  // back while it may be part of a character or of a stop string (DeltaText), and ask
  // `cancelled` every 50 ms.
  std::vector<std::vector<int64_t>> ids(static_cast<size_t>(req.n));
  std::vector<DeltaText> deltas(static_cast<size_t>(req.n), DeltaText(req.stop));
  // The scheduler reads `p` until the job is done: leaving early (an exception) cancels and waits.
  struct WaitForJob {
    Job& job;
    Impl& m;
    ~WaitForJob() {
      if (job.is_done()) return;
      job.cancel = true;
      m.cv.notify_all();
      std::unique_lock<std::mutex> lock(job.mu);
      job.cv.wait(lock, [&] { return job.done; });
    }
  } wait_for_job{*job, m};
  std::unique_lock<std::mutex> lock(job->mu);
  while (true) {
    job->cv.wait_for(lock, std::chrono::milliseconds(50), [&] { return job->done || !job->events.empty(); });
    while (!job->events.empty()) {
      const TokenEvent e = std::move(job->events.front());
      job->events.pop_front();
      lock.unlock();
      ids[e.index].push_back(e.id);
      ChoiceDelta d;
      d.index = e.index;
      const std::string text = tok.decode(content_ids(ids[e.index], e.reason), /*skip_special_tokens=*/true);
      d.content = e.finished ? deltas[e.index].finish(text) : deltas[e.index].update(text);
      if (req.logprobs) d.logprobs.push_back(logprob_entry(e.id, e.raw));
      if (e.finished) d.finish_reason = finish_reason(e.reason);
      if (!d.content.empty() || !d.logprobs.empty() || e.finished) on_delta(d);
      lock.lock();
    }
    if (job->done) break;
    if (cancelled && !job->cancel) {
      lock.unlock();
      const bool stop = cancelled();
      lock.lock();
      if (stop) {
        job->cancel = true;
        m.cv.notify_all();  // the scheduler may be idle-waiting with this job still pending
      }
    }
  }
  if (job->error) std::rethrow_exception(job->error);
  if (job->cancelled) throw Cancelled();

  ChatResult out;
  out.logprobs = req.logprobs;
  out.prompt_tokens = static_cast<int64_t>(p.prompt.input_ids.size());
  for (const generate::Completion& c : job->completions) {
    ChatChoice choice;
    choice.token_ids = c.ids;
    out.completion_tokens += static_cast<int64_t>(c.ids.size());
    // ref: OpenAI: "the returned text will not contain the stop sequence".
    choice.text = DeltaText(req.stop).content(tok.decode(content_ids(c.ids, c.finish_reason), /*skip_special_tokens=*/true));
    choice.finish_reason = finish_reason(c.finish_reason);
    if (req.logprobs)
      for (size_t t = 0; t < c.ids.size(); ++t) choice.logprobs.push_back(logprob_entry(c.ids[t], c.raw_logprobs[t]));
    out.choices.push_back(std::move(choice));
  }
  return out;
}

ChatResult ChatEngine::complete(ChatRequest request) { return run(*prepare(std::move(request))); }

}  // namespace refract::serve
