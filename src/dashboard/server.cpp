// The HTTP side of `refract dashboard`: validates each request, answers from Dashboard (views.h),
// serves the embedded page. Errors are JSON {"error": "..."} with a 4xx status.
#include <fmt/format.h>
#include <httplib.h>

#include <cstdio>

#include "common/check.h"
#include "common/log.h"
#include "common/net.h"
#include "common/options.h"
#include "dashboard/assets.h"
#include "dashboard/dashboard.h"
#include "dashboard/render.h"
#include "dashboard/views.h"
#include "http/listen.h"

namespace refract::dashboard {

void declare(Options& o, DashboardSettings& s) {
  o.add("runs", &s.runs,
        "run directories: a training output_dir, a `refract eval` output_dir, or the `refract demo` output "
        "(its runs are found one level down)");
  o.add("host", &s.host, "address to bind (127.0.0.1: this machine only)");
  o.add("port", &s.port, "port to bind (0 = any free port; the URL is printed)");
  o.add("render", &s.render, "write curves.png and rollouts.png into this directory instead of serving").path();
  o.add("render_groups", &s.render_groups, "--render: prompts (with their G completions) in the rollout grid");
}

namespace {


void reply_json(httplib::Response& res, const nlohmann::json& j) {
  res.set_content(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

void reply_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  reply_json(res, {{"error", message}});
}

int64_t int_param(const httplib::Request& req, const std::string& name) {
  if (!req.has_param(name)) throw RequestError(400, "missing query parameter '" + name + "'");
  const std::string v = req.get_param_value(name);
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0') throw RequestError(400, "query parameter '" + name + "' must be an integer, got '" + v + "'");
  return x;
}

std::string string_param(const httplib::Request& req, const std::string& name) {
  if (!req.has_param(name)) throw RequestError(400, "missing query parameter '" + name + "'");
  const std::string v = req.get_param_value(name);
  if (v.find('\0') != std::string::npos) throw RequestError(400, "query parameter '" + name + "' holds a NUL byte");
  return v;
}

// Every handler runs through here: RequestError -> its status, anything else -> 500 with the reason.
template <typename Fn>
httplib::Server::Handler guarded(Fn fn) {
  return [fn](const httplib::Request& req, httplib::Response& res) {
    try {
      fn(req, res);
    } catch (const RequestError& e) {
      reply_error(res, e.status, e.what());
    } catch (const std::exception& e) {
      LOG_WARN("dashboard: {} {}: {}", req.method, req.path, e.what());
      reply_error(res, 500, e.what());
    }
  };
}


}  // namespace

void run_dashboard(const DashboardSettings& s) {
  Dashboard d(discover_runs(s.runs));
  for (const auto& r : d.runs()) LOG_INFO("run {}: {}", r.name, r.dir);
  if (!s.render.empty()) {
    const RenderResult out = render_pngs(d, s.render, s.render_groups);
    for (const auto& f : out.files) std::printf("wrote %s\n", f.c_str());
    return;
  }

  httplib::Server server;
  // Read-only: GET alone; anything else is 405.
  auto page = [](const std::string& path) {
    return guarded([path](const httplib::Request&, httplib::Response& res) {
      const Asset* a = find_asset(path);
      if (!a) throw RequestError(404, "no page " + path);
      res.set_content(std::string(a->bytes), std::string(a->content_type));
      res.set_header("Cache-Control", "no-cache");
    });
  };
  server.Get("/", page("/index.html"));
  server.Get("/index.html", page("/index.html"));
  server.Get("/app.js", page("/app.js"));
  server.Get("/style.css", page("/style.css"));
  server.Get("/api/runs", guarded([&](const httplib::Request&, httplib::Response& res) { reply_json(res, d.runs_json()); }));
  server.Get("/api/metrics", guarded([&](const httplib::Request& req, httplib::Response& res) {
               reply_json(res, d.metrics_json(int_param(req, "run")));
             }));
  server.Get("/api/rollouts", guarded([&](const httplib::Request& req, httplib::Response& res) {
               std::optional<int64_t> step;
               if (req.has_param("step")) step = int_param(req, "step");
               reply_json(res, d.rollouts_json(int_param(req, "run"), step));
             }));
  server.Get("/api/eval", guarded([&](const httplib::Request& req, httplib::Response& res) {
               reply_json(res, d.eval_json(int_param(req, "run"), string_param(req, "name")));
             }));
  server.Get("/api/image", guarded([&](const httplib::Request& req, httplib::Response& res) {
               FileReply f = d.image(int_param(req, "run"), string_param(req, "path"));
               res.set_content(std::move(f.bytes), f.content_type);
             }));
  server.Get("/api/file", guarded([&](const httplib::Request& req, httplib::Response& res) {
               FileReply f = d.file(int_param(req, "run"), string_param(req, "path"));
               res.set_content(std::move(f.bytes), f.content_type);
             }));
  auto read_only = [](const httplib::Request&, httplib::Response& res) { reply_error(res, 405, "read-only: GET only"); };
  server.Post(".*", read_only);
  server.Put(".*", read_only);
  server.Patch(".*", read_only);
  server.Delete(".*", read_only);
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.body.empty()) reply_error(res, res.status, res.status == 404 ? "no route " + req.path : "HTTP error");
  });
  server.set_default_headers({{"X-Content-Type-Options", "nosniff"}});

  const int port = http::bind(server, s.host, s.port);
  if (!is_loopback(s.host))
    LOG_WARN("listening on {}: anyone who reaches it can read these runs' logs and images", s.host);
  http::listen_until_signal(server, fmt::format("refract dashboard: listening on http://{}:{} ({} runs)", s.host, port,
                                                d.runs().size()));
}

}  // namespace refract::dashboard
