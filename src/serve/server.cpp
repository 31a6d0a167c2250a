// The HTTP layer of `refract serve` (cpp-httplib). Torch-free: the model lives behind ChatEngine.
// Every handler catches everything: a bad request is a 400 with an OpenAI error body, a
// failure of ours is a 500; the process never dies on a request.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "common/check.h"
#include "common/log.h"
#include "common/options.h"
#include "serve/api_error.h"
#include "serve/chat_request.h"
#include "serve/chat_response.h"
#include "serve/engine.h"
#include "serve/request_images.h"
#include "serve/serve.h"

namespace refract::serve {
namespace {

constexpr const char* kJson = "application/json";
std::atomic<bool> g_stop_requested{false};

void on_signal(int) { g_stop_requested = true; }

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

std::string model_name(const ServeSettings& s) {
  if (!s.served_model_name.empty()) return s.served_model_name;
  std::filesystem::path p(s.model_name_or_path);
  if (!p.has_filename()) p = p.parent_path();  // "dir/" -> "dir"
  return p.filename().string();
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
  o.add("max_body_mb", &s.max_body_mb, "maximum request body size in MiB");
  o.add("allow_local_files", &s.allow_local_files, "accept local file paths / file:// URLs as image_url");
}

void run_serve(const ServeSettings& s) {
  REFRACT_CHECK(s.port >= 0 && s.port <= 65535) << "port: " << s.port << " is not a TCP port";
  REFRACT_CHECK(s.max_completion_length >= 1) << "max_completion_length must be >= 1";
  REFRACT_CHECK(s.max_body_mb >= 1) << "max_body_mb must be >= 1";
  model::validate(s);

  EngineConfig ec;
  ec.model = s;
  ec.max_completion_length = s.max_completion_length;
  ChatEngine engine(ec);

  RequestLimits limits;
  limits.max_body_bytes = static_cast<size_t>(s.max_body_mb) << 20;
  limits.max_completion_length = s.max_completion_length;
  limits.max_n = s.max_num_completions;
  limits.max_images = s.max_images;
  limits.allow_local_files = s.allow_local_files;
  const std::string name = model_name(s);
  const int64_t created = unix_now();
  std::mutex generate_mutex;  // one generation at a time: the model and its threads are shared

  httplib::Server server;
  server.set_payload_max_length(limits.max_body_bytes);
  server.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", kJson);
  });
  server.Get("/v1/models", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(models_body(name, created), kJson);
  });
  server.Post("/v1/chat/completions", [&](const httplib::Request& req, httplib::Response& res) {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      ChatRequest chat = parse_chat_request(req.body, limits);
      ChatResult result;
      {
        std::lock_guard<std::mutex> lock(generate_mutex);
        result = engine.complete(std::move(chat));
      }
      res.set_content(chat_completion_body(completion_id(), unix_now(), name, result), kJson);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      LOG_INFO("chat completion: {} prompt + {} completion tokens in {:.2f} s", result.prompt_tokens,
               result.completion_tokens, secs);
    } catch (const ApiError& e) {
      LOG_INFO("400: {}", e.what());
      reply_error(res, e);
    } catch (const std::exception& e) {
      LOG_ERROR("chat completion failed: {}", e.what());
      reply_error(res, ApiError(500, std::string("internal error: ") + e.what(), "", "server_error"));
    }
  });
  // Statuses httplib produces itself (unknown route, oversized body, ...) get an OpenAI body too.
  server.set_error_handler([&](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 413) {
      reply_error(res, bad_request("request body exceeds the limit of " + std::to_string(limits.max_body_bytes) +
                                   " bytes (max_body_mb)"));
    } else if (res.status == 404) {
      reply_error(res, ApiError(404, "no route " + req.method + " " + req.path, "", "not_found_error"));
    } else if (res.body.empty()) {
      reply_error(res, ApiError(res.status, "HTTP " + std::to_string(res.status), "",
                                res.status >= 500 ? "server_error" : "invalid_request_error"));
    }
  });
  server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    reply_error(res, ApiError(500, "internal error", "", "server_error"));
  });

  int port = static_cast<int>(s.port);
  if (port == 0) {
    port = server.bind_to_any_port(s.host);
    REFRACT_CHECK(port > 0) << "host: cannot bind " << s.host << " on any port";
  } else {
    REFRACT_CHECK(server.bind_to_port(s.host, port)) << "port: cannot bind " << s.host << ":" << port << " (in use?)";
  }
  if (s.host != "127.0.0.1" && s.host != "localhost" && s.host != "::1")
    LOG_WARN("listening on {}: reachable from other machines; there is no authentication", s.host);

  // SIGINT / SIGTERM stop the listener from a watcher thread (stop() is not signal-safe).
  g_stop_requested = false;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done && !g_stop_requested) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    server.stop();
  });
  // stdout, one line, flushed: scripts and tests wait for it (and read the port when --port 0).
  std::printf("refract serve: listening on http://%s:%d (model %s)\n", s.host.c_str(), port, name.c_str());
  std::fflush(stdout);
  server.listen_after_bind();
  done = true;
  watcher.join();
  LOG_INFO("server stopped");
}

}  // namespace refract::serve
