// The HTTP layer of `refract serve` (cpp-httplib). Torch-free: the model lives behind ChatEngine.
// Every handler catches everything: a bad request is a 4xx with an OpenAI error body, a
// failure of ours is a 500 with a short message; the process never dies on a request.
//
// Safety (docs/serve.md): the API key and the body size are checked in the pre-routing handler,
// before any body byte is read; the chat body is read through a ContentReader that stops at
// max_body_mb whatever the transfer encoding (httplib itself buffers chunked bodies whole);
// images are decoded outside the model lock by at most max_queued_requests requests at once.
#include <fmt/format.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <random>

#include "common/check.h"
#include "common/log.h"
#include "common/net.h"
#include "common/options.h"
#include "http/listen.h"
#include "http/socket.h"
#include "serve/api_error.h"
#include "serve/chat_request.h"
#include "serve/chat_response.h"
#include "serve/engine.h"
#include "serve/request_images.h"
#include "serve/serve.h"

namespace refract::serve {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kJson = "application/json";
constexpr const char* kChatPath = "/v1/chat/completions";

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string completion_id() {
  static std::mt19937_64 rng{std::random_device{}()};
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "chatcmpl-%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

void reply_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(error_body(e), kJson);
}

// An answer given without reading the request body: the connection cannot be reused.
void reply_and_close(httplib::Response& res, const ApiError& e) {
  reply_error(res, e);
  res.set_header("Connection", "close");
}

ApiError internal_error() { return ApiError(500, "internal server error", "", "server_error"); }

std::string model_name(const ServeSettings& s) {
  if (!s.served_model_name.empty()) return s.served_model_name;
  std::filesystem::path p(s.model_name_or_path);
  if (!p.has_filename()) p = p.parent_path();  // "dir/" -> "dir"
  return p.filename().string();
}


// Compares without an early exit, so timing does not reveal how much of a key matched.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  return diff == 0;
}

}  // namespace

void declare(Options& o, ServeSettings& s) {
  model::declare(o, static_cast<model::ModelSettings&>(s));
  o.add("served_model_name", &s.served_model_name, "model id reported by the API (default: directory name)");
  o.add("host", &s.host, "address to bind (127.0.0.1: this machine only)");
  o.add("port", &s.port, "TCP port (0: any free port, printed at start)");
  o.add("max_completion_length", &s.max_completion_length, "default and maximum max_tokens per completion");
  o.add("max_num_completions", &s.max_num_completions, "maximum n per request");
  o.add("max_images", &s.max_images, "maximum images per request");
  o.add("max_videos", &s.max_videos, "maximum videos (video_url parts) per request");
  o.add("max_body_mb", &s.max_body_mb, "maximum request body size in MiB (413 above; chunked bodies too)");
  o.add("max_model_len", &s.max_model_len, "maximum prompt tokens (images expanded) + max_tokens per request");
  o.add("max_image_pixels", &s.max_image_pixels, "maximum decoded width * height of a request image (read from its header)");
  o.add("allowed_local_media_path", &s.allowed_local_media_path,
        "directory whose files image_url may name (file:// URLs or paths; default: no local files)")
      .path();
  o.add("api_key", &s.api_key, "require 'Authorization: Bearer KEY' on /v1/* (default: env REFRACT_API_KEY)");
  o.add("allow_unauthenticated", &s.allow_unauthenticated, "allow a non-loopback --host without an api_key");
  o.add("max_queued_requests", &s.max_queued_requests, "requests admitted at once (decoding, waiting, generating); 503 above");
  o.add("request_timeout", &s.request_timeout, "seconds a request may take from arrival to its last token (503 after)");
  o.add("read_timeout", &s.read_timeout, "seconds a connection may stay silent while sending or receiving");
  o.add("max_connections", &s.max_connections, "connections served at once (more wait for a free worker)");
  o.add("max_num_seqs", &s.max_num_seqs, "completions decoded together (continuous batching); more requests wait");
}

void run_serve(const ServeSettings& settings) {
  // Logs go to stderr: stdout carries the one announcement line scripts wait for (and a pipe
  // nobody reads after it would block the server once full).
  set_log_level("info");
  ServeSettings s = settings;
  REFRACT_CHECK(s.port >= 0 && s.port <= 65535) << "port: " << s.port << " is not a TCP port";
  REFRACT_CHECK(s.max_completion_length >= 1) << "max_completion_length must be >= 1";
  REFRACT_CHECK(s.max_body_mb >= 1 && s.max_body_mb <= 4096) << "max_body_mb must be in [1, 4096]";
  REFRACT_CHECK(s.max_model_len >= 2) << "max_model_len must be >= 2";
  REFRACT_CHECK(s.max_image_pixels >= 1) << "max_image_pixels must be >= 1";
  REFRACT_CHECK(s.max_images >= 0) << "max_images must be >= 0";
  REFRACT_CHECK(s.max_videos >= 0) << "max_videos must be >= 0";
  REFRACT_CHECK(s.max_queued_requests >= 1) << "max_queued_requests must be >= 1";
  REFRACT_CHECK(s.request_timeout > 0) << "request_timeout must be > 0";
  REFRACT_CHECK(s.read_timeout >= 1) << "read_timeout must be >= 1";
  REFRACT_CHECK(s.max_connections >= 1 && s.max_connections <= 4096) << "max_connections must be in [1, 4096]";
  REFRACT_CHECK(s.max_num_seqs >= 1) << "max_num_seqs must be >= 1";
  if (s.api_key.empty()) {
    if (const char* env = std::getenv("REFRACT_API_KEY")) s.api_key = env;
  }
  REFRACT_CHECK(is_loopback(s.host) || !s.api_key.empty() || s.allow_unauthenticated)
      << "host: " << s.host << " is reachable from other machines; set api_key (or REFRACT_API_KEY), "
      << "or pass --allow_unauthenticated to serve without authentication";
  model::validate(s);

  RequestLimits limits;
  limits.max_body_bytes = static_cast<size_t>(s.max_body_mb) << 20;
  limits.max_completion_length = s.max_completion_length;
  limits.max_n = s.max_num_completions;
  limits.max_images = s.max_images;
  limits.max_videos = s.max_videos;
  if (!s.allowed_local_media_path.empty())
    limits.allowed_local_media_path = canonical_media_dir(s.allowed_local_media_path);
  const std::string name = model_name(s);
  limits.served_model_name = name;

  EngineConfig ec;
  ec.model = s;
  ec.max_completion_length = s.max_completion_length;
  ec.max_model_len = s.max_model_len;
  ec.max_num_seqs = s.max_num_seqs;
  ec.media.max_image_pixels = s.max_image_pixels;
  ec.media.max_file_bytes = limits.max_body_bytes;
  ec.media.allowed_local_media_path = limits.allowed_local_media_path;
  ec.media.max_video_tokens = s.max_model_len;  // a video that cannot fit is refused before decoding
  ChatEngine engine(ec);

  const int64_t created = unix_now();
  std::atomic<int64_t> admitted{0};  // requests between admission and their response
  const std::string bearer = s.api_key.empty() ? "" : "Bearer " + s.api_key;
  const auto request_timeout = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s.request_timeout));

  httplib::Server server;
  const size_t workers = static_cast<size_t>(s.max_connections);
  server.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  server.set_read_timeout(s.read_timeout, 0);
  server.set_write_timeout(s.read_timeout, 0);
  server.set_keep_alive_timeout(5);
  server.set_payload_max_length(limits.max_body_bytes);

  // Before routing, so before httplib reads any body: methods, API key, declared body size.
  server.set_pre_routing_handler([&](const httplib::Request& req, httplib::Response& res) {
    using R = httplib::Server::HandlerResponse;
    if (req.method != "GET" && req.method != "HEAD" && req.method != "POST") {
      reply_and_close(res, ApiError(405, "method " + req.method + " is not allowed", "", "invalid_request_error"));
      return R::Handled;
    }
    if (!bearer.empty() && req.path.rfind("/v1/", 0) == 0 &&
        !same_secret(req.get_header_value("Authorization"), bearer)) {
      // ref: OpenAI 401: "Incorrect API key provided", code invalid_api_key.
      reply_and_close(res, ApiError(401,
                                    req.has_header("Authorization")
                                        ? "Incorrect API key provided."
                                        : "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
                                    "", "invalid_request_error", "invalid_api_key"));
      return R::Handled;
    }
    if (req.method == "POST" && req.path != kChatPath) {
      reply_and_close(res, ApiError(404, "no route POST " + req.path, "", "not_found_error"));
      return R::Handled;
    }
    if (req.has_header("Content-Length")) {
      // Up to 64 MiB over the limit the body is drained (discarded, never stored) so that an
      // ordinary client reads the 413; beyond that the connection is closed unread.
      const std::string v = req.get_header_value("Content-Length");
      const bool numeric = !v.empty() && v.size() <= 19 && v.find_first_not_of("0123456789") == std::string::npos;
      if (!numeric || std::stoull(v) > limits.max_body_bytes + (64u << 20)) {
        reply_and_close(res, ApiError(413, "request body exceeds the limit of " + std::to_string(limits.max_body_bytes) +
                                               " bytes (max_body_mb)"));
        return R::Handled;
      }
    }
    return R::Unhandled;
  });

  server.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", kJson);
  });
  server.Get("/v1/models", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(models_body(name, created), kJson);
  });
  // Generates (the request joins the engine's running batch). false = cancelled (client gone
  // or deadline passed) while waiting or during generation.
  auto run_request = [&](const PreparedChat& p, const std::function<bool()>& cancelled, const DeltaSink& on_delta,
                        ChatResult* out) {
    try {
      *out = engine.run(p, cancelled, on_delta);
    } catch (const Cancelled&) {
      return false;
    }
    return true;
  };
  const ApiError timeout_error(503, "the request did not finish within request_timeout (" +
                                        std::to_string(s.request_timeout) + " s)",
                               "", "server_error", "timeout");

  server.Post(kChatPath, [&](const httplib::Request& req, httplib::Response& res,
                             const httplib::ContentReader& content_reader) {
    const auto t0 = Clock::now();
    const auto deadline = t0 + request_timeout;
    struct Admission {
      std::atomic<int64_t>& n;
      ~Admission() { --n; }
    };
    const int64_t queued = ++admitted;
    // Held until the response is complete (for a stream: by its content provider).
    const std::shared_ptr<Admission> admission(new Admission{admitted});
    if (queued > s.max_queued_requests) {
      reply_and_close(res, ApiError(503, "the server is busy (max_queued_requests); retry later", "", "server_error"));
      res.set_header("Retry-After", "1");
      return;
    }
    try {
      // The body, up to the limit whatever the encoding (chunked, gzip: counted decoded).
      std::string body;
      bool too_large = false;
      const bool read_ok = content_reader([&](const char* data, size_t n) {
        if (body.size() + n > limits.max_body_bytes) {
          too_large = true;
          return false;
        }
        body.append(data, n);
        return true;
      });
      if (too_large || std::stoull("0" + req.get_header_value("Content-Length")) > limits.max_body_bytes)
        throw ApiError(413, "request body exceeds the limit of " + std::to_string(limits.max_body_bytes) +
                                " bytes (max_body_mb)");
      if (!read_ok) throw bad_request("could not read the request body");

      ChatRequest chat = parse_chat_request(body, limits);
      body.clear();
      body.shrink_to_fit();
      ChunkHeader header{completion_id(), unix_now(), name, chat.include_usage, chat.logprobs};
      const bool stream = chat.stream;
      const int64_t n = chat.n;
      const std::shared_ptr<PreparedChat> prepared = engine.prepare(std::move(chat));  // outside the lock
      const int fd = http::connection_fd(req);

      if (stream) {
        // Server-Sent Events: the 200 and the role chunks go out at once; errors after that
        // (deadline, internal) are sent as a `data: {"error": ...}` event, as vLLM does.
        res.set_header("Cache-Control", "no-cache");
        res.set_chunked_content_provider(
            "text/event-stream", [&, admission, prepared, header, n, fd, deadline, t0](size_t, httplib::DataSink& sink) {
              bool gone = false, late = false;
              auto send = [&](const std::string& payload) {
                const std::string event = sse_event(payload);
                if (!gone && !sink.write(event.data(), event.size())) gone = true;
              };
              auto cancelled = [&] {
                if (Clock::now() > deadline) late = true;
                else if (http::client_gone(fd)) gone = true;
                return late || gone;
              };
              for (int64_t i = 0; i < n; ++i) send(role_chunk(header, i));
              ChatResult result;
              bool finished = false;
              try {
                finished = run_request(*prepared, cancelled, [&](const ChoiceDelta& d) { send(delta_chunk(header, d)); },
                                      &result);
              } catch (const std::exception& e) {
                LOG_ERROR("chat completion failed: {}", e.what());
                send(error_body(internal_error()));
              }
              if (gone) {
                LOG_INFO("chat completion cancelled: the client disconnected");
                return false;  // closes the connection
              }
              if (late) send(error_body(timeout_error));
              if (finished && header.include_usage) send(usage_chunk(header, result.prompt_tokens, result.completion_tokens));
              send("[DONE]");
              sink.done();
              if (finished)
                LOG_INFO("chat completion (stream): {} prompt + {} completion tokens in {:.2f} s", result.prompt_tokens,
                         result.completion_tokens, std::chrono::duration<double>(Clock::now() - t0).count());
              return !gone;
            });
        return;
      }

      bool gone = false, late = false;
      auto cancelled = [&] {
        if (Clock::now() > deadline) late = true;
        else if (http::client_gone(fd)) gone = true;
        return late || gone;
      };
      ChatResult result;
      run_request(*prepared, cancelled, {}, &result);
      if (gone) {
        LOG_INFO("chat completion cancelled: the client disconnected");
        res.status = 499;  // nobody reads it
        res.set_header("Connection", "close");
        return;
      }
      if (late) throw timeout_error;
      res.set_content(chat_completion_body(header.id, header.created, name, result), kJson);
      const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
      LOG_INFO("chat completion: {} prompt + {} completion tokens in {:.2f} s", result.prompt_tokens,
               result.completion_tokens, secs);
    } catch (const ApiError& e) {
      LOG_INFO("{}: {}", e.status, e.what());
      reply_error(res, e);
      if (e.status == 413) res.set_header("Connection", "close");
    } catch (const std::bad_alloc&) {
      LOG_ERROR("chat completion failed: out of memory");
      reply_error(res, internal_error());
    } catch (const std::exception& e) {
      LOG_ERROR("chat completion failed: {}", e.what());
      reply_error(res, internal_error());
    }
  });
  // Statuses httplib produces itself (unknown route, oversized body, ...) get an OpenAI body too.
  server.set_error_handler([&](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 413) {
      reply_and_close(res, ApiError(413, "request body exceeds the limit of " + std::to_string(limits.max_body_bytes) +
                                             " bytes (max_body_mb)"));
    } else if (res.status == 404 && res.body.empty()) {
      reply_error(res, ApiError(404, "no route " + req.method + " " + req.path, "", "not_found_error"));
    } else if (res.body.empty() && res.status != 499) {
      reply_error(res, ApiError(res.status, "HTTP " + std::to_string(res.status), "",
                                res.status >= 500 ? "server_error" : "invalid_request_error"));
    }
  });
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    reply_error(res, internal_error());
  });

  const int port = http::bind(server, s.host, s.port);
  if (!is_loopback(s.host) && s.api_key.empty())
    LOG_WARN("listening on {} without an api_key (--allow_unauthenticated): anyone who reaches it can use it", s.host);
  http::listen_until_signal(server, fmt::format("refract serve: listening on http://{}:{} (model {})", s.host, port, name));
  LOG_INFO("server stopped");
}

}  // namespace refract::serve
