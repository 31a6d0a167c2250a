// `refract serve` safe by default: a malformed-request battery against the real binary on
// loopback. Every case gets its status and OpenAI error body, the server stays up and answers
// a normal request afterwards, its peak memory (VmHWM) stays bounded, and no file outside
// --allowed_local_media_path is opened (inotify watches the directory next to it).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/inotify.h>
#include <sys/socket.h>

#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "server_process.h"
#include "test_util.h"
#include "tiny_model.h"
#include "vision/image.h"

namespace refract::serve {
namespace {
using json = nlohmann::json;
using namespace testing;

constexpr const char* kKey = "sk-test-0123456789";
constexpr int64_t kMaxBodyMb = 1;

// Peak resident memory of a process, in MiB (VmHWM of /proc/<pid>/status).
double peak_rss_mib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1;
}

// A raw TCP connection, for what httplib's client will not send (chunked bodies, missing
// headers, lies about Content-Length, slow clients).
struct RawConnection {
  int fd = -1;
  explicit RawConnection(int port) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      close(fd);
      fd = -1;
    }
    timeval tv{30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~RawConnection() {
    if (fd >= 0) close(fd);
  }
  bool send_all(const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += size_t(n);
    }
    return true;
  }
  // Reads until the peer closes, a complete response with Content-Length arrived, or timeout.
  std::string read_response() {
    std::string out;
    char buf[65536];
    while (true) {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      out.append(buf, size_t(n));
      const size_t end = out.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      const size_t cl = out.find("Content-Length: ");
      if (cl != std::string::npos && cl < end) {
        const size_t len = std::stoul(out.substr(cl + 16));
        if (out.size() >= end + 4 + len) break;
      }
    }
    return out;
  }
};

int status_of(const std::string& response) {
  if (response.rfind("HTTP/1.1 ", 0) != 0 || response.size() < 12) return -1;
  return std::stoi(response.substr(9, 3));
}
std::string body_of(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

class ServeSafety : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("safety");
    namespace fs = std::filesystem;
    model_dir_ = dir_->file("model");
    write_tiny_serving_model(model_dir_);
    fs::create_directories(dir_->path / "media" / "sub");
    fs::create_directories(dir_->path / "outside");
    media_ = fs::canonical(dir_->path / "media").string();
    outside_ = fs::canonical(dir_->path / "outside").string();
    vision::write_png(media_ + "/sub/ok.png", noise_image(84, 56, 7));
    vision::write_png(outside_ + "/secret.png", noise_image(84, 56, 8));
    fs::create_symlink(outside_ + "/secret.png", media_ + "/escape.png");
    fs::create_symlink(outside_, media_ + "/outdir");
    // Watch the outside directory before the server starts: any open of a file in it shows.
    inotify_fd_ = inotify_init1(IN_NONBLOCK);
    if (inotify_add_watch(inotify_fd_, outside_.c_str(), IN_OPEN | IN_ACCESS) < 0) start_error_ = "inotify_add_watch failed";
    server_ = new ServerProcess();
    const bool ok = server_->start(
        {"--model", model_dir_, "--port", "0", "--threads", "1", "--max_completion_length", "16", "--max_body_mb",
         std::to_string(kMaxBodyMb), "--served_model_name", "tiny-vl", "--max_model_len", "300", "--max_image_pixels",
         "1000000", "--max_images", "2", "--allowed_local_media_path", media_, "--api_key", kKey,
         "--max_queued_requests", "1", "--read_timeout", "5"},
        dir_->file("server.log"));
    if (!ok) start_error_ = server_->error() + "\n" + read_file(dir_->file("server.log"));
  }
  static void TearDownTestSuite() {
    if (server_) EXPECT_EQ(server_->stop(), 0) << "the server must exit cleanly on SIGTERM";
    delete server_;
    if (inotify_fd_ >= 0) close(inotify_fd_);
    delete dir_;
  }
  void SetUp() override { ASSERT_TRUE(start_error_.empty()) << start_error_; }

  httplib::Client client(bool with_key = true) {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(120, 0);
    if (with_key) c.set_bearer_token_auth(kKey);
    return c;
  }
  static json image_body(const std::string& url, const json& extra = json::object()) {
    json body = {{"model", "tiny-vl"},
                 {"max_tokens", 4},
                 {"messages",
                  {{{"role", "user"},
                    {"content", {{{"type", "image_url"}, {"image_url", {{"url", url}}}}, {{"type", "text"}, {"text", "Hi."}}}}}}}};
    for (const auto& [k, v] : extra.items()) body[k] = v;
    return body;
  }
  static json video_body(const std::string& url, const json& part_keys = json::object()) {
    json part = {{"type", "video_url"}, {"video_url", {{"url", url}}}};
    for (const auto& [k, v] : part_keys.items()) part[k] = v;
    return {{"model", "tiny-vl"},
            {"max_tokens", 4},
            {"messages", {{{"role", "user"}, {"content", {part, {{"type", "text"}, {"text", "Hi."}}}}}}}};
  }
  static std::string data_url(const std::string& mime, const std::string& bytes) {
    return "data:" + mime + ";base64," + base64_encode(bytes);
  }
  // A normal request must still work (the server is up and its queue slot was released).
  void expect_still_serving() {
    auto c = client();
    const std::string body = image_body(data_url("image/png", read_file(media_ + "/sub/ok.png"))).dump();
    for (int attempt = 0; attempt < 50; ++attempt) {  // a closed slow connection frees its slot promptly
      auto res = c.Post("/v1/chat/completions", body, "application/json");
      ASSERT_TRUE(res) << httplib::to_string(res.error());
      if (res->status == 503) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      ASSERT_EQ(res->status, 200) << res->body;
      EXPECT_EQ(json::parse(res->body)["object"], "chat.completion");
      return;
    }
    FAIL() << "still busy after 5 s";
  }

  static TempDir* dir_;
  static std::string model_dir_, media_, outside_, start_error_;
  static ServerProcess* server_;
  static int inotify_fd_;
};
TempDir* ServeSafety::dir_ = nullptr;
std::string ServeSafety::model_dir_, ServeSafety::media_, ServeSafety::outside_, ServeSafety::start_error_;
ServerProcess* ServeSafety::server_ = nullptr;
int ServeSafety::inotify_fd_ = -1;

TEST_F(ServeSafety, MalformedRequestBattery) {
  auto c = client();
  struct Case {
    std::string name;
    std::string body;
    int status;
    std::string param;    // "" = null
    std::string message;  // substring of the message
  };
  const std::string ok_png = read_file(media_ + "/sub/ok.png");
  std::string long_text(3000, 'q');  // ~1500 tokens > max_model_len 300
  const std::vector<Case> cases = {
      {"invalid_json", "{\"messages\": [", 400, "", "not valid JSON"},
      {"not_an_object", "[1,2,3]", 400, "", "JSON object"},
      {"wrong_type", image_body(data_url("image/png", ok_png), {{"temperature", "hot"}}).dump(), 400, "temperature",
       "must be a number"},
      {"messages_type", R"({"messages": "hi"})", 400, "messages", "must be an array"},
      {"out_of_range_n", image_body(data_url("image/png", ok_png), {{"n", 0}}).dump(), 400, "n", "n must be in"},
      {"out_of_range_max_tokens", image_body(data_url("image/png", ok_png), {{"max_tokens", 17}}).dump(), 400,
       "max_tokens", "at most 16"},
      {"number_overflow", R"({"messages": [{"role": "user", "content": "x"}], "temperature": 1e999})", 400, "",
       "not valid JSON"},
      {"integer_overflow", R"({"messages": [{"role": "user", "content": "x"}], "seed": 123456789012345678901234567890})",
       400, "seed", "must be an integer"},
      {"deep_nesting", std::string(5000, '[') + std::string(5000, ']'), 400, "", "nests deeper"},
      {"remote_url", image_body("https://example.com/cat.png").dump(), 400, "messages[0].content[0].image_url.url",
       "not fetched"},
      {"bad_data_url_base64", image_body("data:image/png;base64,@@@").dump(), 400,
       "messages[0].content[0].image_url.url", "invalid base64"},
      {"bad_data_url_type", image_body("data:text/html;base64,PGh0bWw+").dump(), 400,
       "messages[0].content[0].image_url.url", "image/*"},
      {"not_an_image", image_body(data_url("image/png", "GIF89a not really")).dump(), 400,
       "messages[0].content[0].image_url.url", "cannot use this image"},
      {"png_bomb", image_body(data_url("image/png", png_header(100000, 100000))).dump(), 400,
       "messages[0].content[0].image_url.url", "max_image_pixels"},
      // Found by fuzz_image_decode: width * height of this header overflows int64.
      {"png_bomb_overflowing_product",
       image_body(data_url("image/png", png_header(0xFFFFFFFFu, 0xFFFFFF00u))).dump(), 400,
       "messages[0].content[0].image_url.url", "max_image_pixels"},
      {"png_just_over", image_body(data_url("image/png", png_header(1001, 1000))).dump(), 400,
       "messages[0].content[0].image_url.url", "max_image_pixels"},
      {"jpeg_bomb", image_body(data_url("image/jpeg", jpeg_header(65000, 65000))).dump(), 400,
       "messages[0].content[0].image_url.url", "max_image_pixels"},
      {"webp_vp8x_bomb", image_body(data_url("image/webp", webp_vp8x_header(1 << 20, 1 << 20))).dump(), 400,
       "messages[0].content[0].image_url.url", "max_image_pixels"},
      {"webp_vp8l_bomb", image_body(data_url("image/webp", webp_vp8l_header(16384, 16384))).dump(), 400,
       "messages[0].content[0].image_url.url", "max_image_pixels"},
      {"bmp_bomb", image_body(data_url("image/bmp", bmp_header(100000, 100000))).dump(), 400,
       "messages[0].content[0].image_url.url", "max_image_pixels"},
      {"path_outside", image_body(outside_ + "/secret.png").dump(), 400, "messages[0].content[0].image_url.url",
       "allowed_local_media_path"},
      {"path_traversal", image_body(media_ + "/../outside/secret.png").dump(), 400,
       "messages[0].content[0].image_url.url", "allowed_local_media_path"},
      {"relative_traversal", image_body("../outside/secret.png").dump(), 400, "messages[0].content[0].image_url.url",
       "allowed_local_media_path"},
      {"file_url_traversal", image_body("file://" + media_ + "/%2e%2e/outside/secret.png").dump(), 400,
       "messages[0].content[0].image_url.url", "allowed_local_media_path"},
      {"symlink_escape", image_body(media_ + "/escape.png").dump(), 400, "messages[0].content[0].image_url.url",
       "allowed_local_media_path"},
      {"symlinked_dir_escape", image_body(media_ + "/outdir/secret.png").dump(), 400,
       "messages[0].content[0].image_url.url", "allowed_local_media_path"},
      {"etc_shadow", image_body("file:///etc/shadow").dump(), 400, "messages[0].content[0].image_url.url",
       "allowed_local_media_path"},
      {"missing_file", image_body(media_ + "/nope.png").dump(), 400, "messages[0].content[0].image_url.url",
       "allowed_local_media_path"},
      {"directory", image_body(media_ + "/sub").dump(), 400, "messages[0].content[0].image_url.url",
       "allowed_local_media_path"},
      {"too_many_images",
       json{{"messages",
             {{{"role", "user"},
               {"content",
                {{{"type", "image_url"}, {"image_url", data_url("image/png", ok_png)}},
                 {{"type", "image_url"}, {"image_url", data_url("image/png", ok_png)}},
                 {{"type", "image_url"}, {"image_url", data_url("image/png", ok_png)}}}}}}}}
           .dump(),
       400, "messages[0].content[2]", "too many images"},
      {"prompt_over_max_model_len",
       json{{"messages", {{{"role", "user"}, {"content", long_text}}}}}.dump(), 400, "messages",
       "maximum context length is 300"},
      {"prompt_plus_max_tokens_over_max_model_len",
       json{{"max_tokens", 16}, {"messages", {{{"role", "user"}, {"content", std::string(560, 'q')}}}}}.dump(), 400,
       "max_tokens", "maximum context length is 300"},
      {"unknown_model", image_body(data_url("image/png", ok_png), {{"model", "gpt-4o"}}).dump(), 404, "model",
       "does not exist"},
      {"stream_not_boolean", image_body(data_url("image/png", ok_png), {{"stream", 1}}).dump(), 400, "stream",
       "must be a boolean"},
      {"stream_options_without_stream",
       image_body(data_url("image/png", ok_png), {{"stream_options", {{"include_usage", true}}}}).dump(), 400,
       "stream_options", "only be given when stream is true"},
      {"top_logprobs_out_of_range",
       image_body(data_url("image/png", ok_png), {{"logprobs", true}, {"top_logprobs", 21}}).dump(), 400, "top_logprobs",
       "must be in [0, 20]"},
      {"stream_with_bad_image", image_body(data_url("image/png", png_header(100000, 100000)), {{"stream", true}}).dump(),
       400, "messages[0].content[0].image_url.url", "max_image_pixels"},
      // Videos: a 70-byte YUV4MPEG2 header declaring 60000x60000 frames, bytes that are no
      // video, and a real clip whose sampling (fps 6: all 12 frames of 280x392) gives more
      // tokens than max_model_len; each refused before a frame is decoded.
      {"video_bomb", video_body(data_url("video/x-yuv4mpeg", "YUV4MPEG2 W15000 H15000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + std::string(16, 'x'))).dump(),
       400, "messages[0].content[0].video_url.url", "frames of 15000x15000"},
      {"not_a_video", video_body(data_url("video/mp4", ok_png)).dump(), 400, "messages[0].content[0].video_url.url",
       "cannot use this video"},
      {"video_too_many_tokens", video_body(data_url("video/mp4", read_file(std::string(REFRACT_FIXTURES_DIR) + "/video/clips/landscape.mp4")), {{"fps", 6}}).dump(),
       400, "messages[0].content[0].video_url.url", "this server takes at most 300"},
      {"video_unknown_key", video_body(data_url("video/mp4", "x"), {{"fsp", 1}}).dump(), 400, "messages[0].content[0]",
       "unknown video key 'fsp'"},
      {"body_over_limit", json{{"messages", {{{"role", "user"}, {"content", std::string(1100000, 'a')}}}}}.dump(), 413,
       "", "max_body_mb"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    auto res = c.Post("/v1/chat/completions", k.body, "application/json");
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, k.status) << res->body;
    const json j = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << res->body;
    EXPECT_NE(j["error"]["message"].get<std::string>().find(k.message), std::string::npos) << res->body;
    if (k.param.empty()) EXPECT_TRUE(j["error"]["param"].is_null()) << res->body;
    else EXPECT_EQ(j["error"]["param"], k.param) << res->body;
    EXPECT_EQ(res->body.find("/work/"), std::string::npos) << "no source paths in errors: " << res->body;
    EXPECT_EQ(res->body.find(".cpp:"), std::string::npos) << res->body;
    if (k.name == "unknown_model") EXPECT_EQ(j["error"]["code"], "model_not_found");
  }
  // Refusals of local paths never tell whether the file exists.
  auto missing = c.Post("/v1/chat/completions", image_body(media_ + "/nope.png").dump(), "application/json");
  auto outside = c.Post("/v1/chat/completions", image_body(outside_ + "/secret.png").dump(), "application/json");
  ASSERT_TRUE(missing && outside);
  EXPECT_EQ(json::parse(missing->body)["error"]["message"], json::parse(outside->body)["error"]["message"]);
  // An allowed file works, by path and by file:// URL.
  for (const std::string& url : {media_ + "/sub/ok.png", "file://" + media_ + "/sub/ok.png", std::string("sub/ok.png")}) {
    auto res = c.Post("/v1/chat/completions", image_body(url).dump(), "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200) << url << ": " << res->body;
  }
  expect_still_serving();
  // Nothing outside the allowed directory was opened (or read).
  char events[4096];
  const ssize_t n = read(inotify_fd_, events, sizeof(events));
  EXPECT_LE(n, 0) << "a file outside --allowed_local_media_path was opened";
}

TEST_F(ServeSafety, ApiKeyGuardsV1AndHealthStaysOpen) {
  auto anonymous = client(/*with_key=*/false);
  const std::string body = json{{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 2}}.dump();
  auto none = anonymous.Post("/v1/chat/completions", body, "application/json");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(json::parse(none->body)["error"]["code"], "invalid_api_key");
  EXPECT_EQ(anonymous.Get("/v1/models")->status, 401);
  anonymous.set_bearer_token_auth("sk-wrong");
  auto wrong = anonymous.Post("/v1/chat/completions", body, "application/json");
  ASSERT_TRUE(wrong);
  EXPECT_EQ(wrong->status, 401);
  EXPECT_EQ(json::parse(wrong->body)["error"]["type"], "invalid_request_error");
  anonymous.set_bearer_token_auth(std::string(kKey) + "x");
  EXPECT_EQ(anonymous.Get("/v1/models")->status, 401);
  auto health = client(false).Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto models = client().Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 200);
  auto ok = client().Post("/v1/chat/completions", body, "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
}

TEST_F(ServeSafety, BodyLimitHoldsForContentLengthAndChunkedBodies) {
  const std::string auth = std::string("Authorization: Bearer ") + kKey + "\r\n";
  const double before = peak_rss_mib(server_->pid());
  {  // A declared Content-Length over the limit: 413 before any body byte is read.
    RawConnection conn(server_->port());
    ASSERT_TRUE(conn.send_all("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + auth +
                              "Content-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n"));
    const std::string r = conn.read_response();
    EXPECT_EQ(status_of(r), 413) << r;
    EXPECT_NE(body_of(r).find("max_body_mb"), std::string::npos) << r;
  }
  {  // 64 MiB chunked (limit 1 MiB): the server stops reading at the limit and answers 413.
    RawConnection conn(server_->port());
    ASSERT_TRUE(conn.send_all("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + auth +
                              "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"));
    std::string response;
    std::thread reader([&] { response = conn.read_response(); });
    const std::string chunk = std::string("10000\r\n") + std::string(0x10000, ' ') + "\r\n";
    int sent = 0;
    for (; sent < 1024; ++sent)
      if (!conn.send_all(chunk)) break;  // the server closed the connection: expected
    reader.join();
    EXPECT_EQ(status_of(response), 413) << response.substr(0, 300);
    EXPECT_LT(sent, 1024) << "the server read the whole 64 MiB body";
  }
  {  // The same over a chunked POST to another route: never buffered either.
    RawConnection conn(server_->port());
    ASSERT_TRUE(conn.send_all("POST /v1/other HTTP/1.1\r\nHost: x\r\n" + auth + "Transfer-Encoding: chunked\r\n\r\n"));
    std::string response;
    std::thread reader([&] { response = conn.read_response(); });
    const std::string chunk = std::string("10000\r\n") + std::string(0x10000, ' ') + "\r\n";
    for (int i = 0; i < 256; ++i)
      if (!conn.send_all(chunk)) break;
    reader.join();
    EXPECT_EQ(status_of(response), 404) << response.substr(0, 300);
  }
  const double after = peak_rss_mib(server_->pid());
  std::cout << "server VmHWM: " << before << " MiB before the oversized bodies, " << after << " MiB after\n";
  // Buffering the chunked body would add >= 64 MiB; connection threads and their malloc arenas
  // add some MiB (libtorch 1.13: < 16, 2.x: ~18).
  EXPECT_LT(after - before, 32.0) << "an oversized body was buffered";
  expect_still_serving();
}

TEST_F(ServeSafety, FullQueueIs503WithRetryAfter) {
  // A slow client holds the only admission slot (--max_queued_requests 1) while it uploads.
  RawConnection slow(server_->port());
  ASSERT_TRUE(slow.send_all(std::string("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ") +
                            kKey + "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"mess"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto busy = client().Post("/v1/chat/completions", json{{"messages", {{{"role", "user"}, {"content", "hi"}}}}}.dump(),
                            "application/json");
  ASSERT_TRUE(busy);
  EXPECT_EQ(busy->status, 503) << busy->body;
  EXPECT_EQ(busy->get_header_value("Retry-After"), "1");
  EXPECT_EQ(json::parse(busy->body)["error"]["type"], "server_error");
  // Slow clients do not starve the rest: /health answers while 20 connections sit idle.
  std::vector<std::unique_ptr<RawConnection>> idle;
  for (int i = 0; i < 20; ++i) {
    idle.push_back(std::make_unique<RawConnection>(server_->port()));
    idle.back()->send_all("GET /health HTTP/1.1\r\nHo");
  }
  httplib::Client quick("127.0.0.1", server_->port());
  quick.set_read_timeout(3, 0);
  const auto t0 = std::chrono::steady_clock::now();
  auto health = quick.Get("/health");
  ASSERT_TRUE(health) << httplib::to_string(health.error());
  EXPECT_EQ(health->status, 200);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 2.0);
  idle.clear();
  close(slow.fd);  // the slot is released when its read fails
  slow.fd = -1;
  expect_still_serving();
}

TEST(ServeSafetyStart, NonLoopbackHostWithoutApiKeyRefusesToStart) {
  TempDir dir("host");
  write_tiny_serving_model(dir.file("model"));
  ServerProcess server;
  EXPECT_FALSE(server.start({"--model", dir.file("model"), "--port", "0", "--host", "0.0.0.0"}, dir.file("log"), 60000));
  EXPECT_NE(read_file(dir.file("log")).find("allow_unauthenticated"), std::string::npos) << read_file(dir.file("log"));
}

TEST_F(ServeSafety, PeakMemoryStaysBounded) {
  // After the battery (whichever order gtest ran it in): the bombs did not allocate their pixels.
  const double peak = peak_rss_mib(server_->pid());
  std::cout << "server VmHWM: " << peak << " MiB\n";
  EXPECT_GT(peak, 0);
  EXPECT_LT(peak, 1024.0);
}

// An abandoned request stops generating (issue 14: "an abandoned request keeps generating"):
// a client that closes its connection mid-stream, or while waiting for a non-streamed answer,
// cancels its generation at the next decode step; the server says so in its log and serves on.
TEST(ServeSafetyCancel, ClientThatLeavesCancelsItsGeneration) {
  TempDir dir("cancel");
  write_tiny_serving_model(dir.file("model"));
  ServerProcess server;
  ASSERT_TRUE(server.start({"--model", dir.file("model"), "--port", "0", "--threads", "1", "--max_completion_length",
                            "6000", "--max_model_len", "8192"},
                           dir.file("log")))
      << server.error() << read_file(dir.file("log"));
  // Greedy, 6000 tokens: far longer than the time it takes to notice the client left.
  const json body = {{"max_tokens", 6000}, {"temperature", 0}, {"messages", {{{"role", "user"}, {"content", "Go on."}}}}};
  auto count = [&](const std::string& what) {
    const std::string log = read_file(dir.file("log"));
    size_t n = 0;
    for (size_t at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) ++n;
    return n;
  };
  auto wait_for = [&](const std::string& what, size_t n) {
    for (int i = 0; i < 600 && count(what) < n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return count(what);
  };
  {
    // Streaming: read the first event (the role chunk), then hang up.
    json sb = body;
    sb["stream"] = true;
    RawConnection conn(server.port());
    const std::string payload = sb.dump();
    ASSERT_TRUE(conn.send_all("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              "Content-Length: " + std::to_string(payload.size()) + "\r\n\r\n" + payload));
    std::string got;
    char buf[4096];
    while (got.find("data: ") == std::string::npos) {
      const ssize_t n = ::recv(conn.fd, buf, sizeof(buf), 0);
      ASSERT_GT(n, 0) << got;
      got.append(buf, size_t(n));
    }
    EXPECT_EQ(status_of(got), 200) << got;
  }
  EXPECT_EQ(wait_for("cancelled: the client disconnected", 1), 1u) << read_file(dir.file("log"));
  {
    // Not streaming: send the request, wait a little, hang up.
    RawConnection conn(server.port());
    const std::string payload = body.dump();
    ASSERT_TRUE(conn.send_all("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              "Content-Length: " + std::to_string(payload.size()) + "\r\n\r\n" + payload));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  EXPECT_EQ(wait_for("cancelled: the client disconnected", 2), 2u) << read_file(dir.file("log"));
  EXPECT_EQ(count("completion tokens in"), 0u) << "an abandoned generation ran to its end";
  // Still serving.
  httplib::Client c("127.0.0.1", server.port());
  c.set_read_timeout(120, 0);
  auto res = c.Post("/v1/chat/completions", json{{"max_tokens", 3}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}}.dump(),
                    "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(server.stop(), 0);
}

}  // namespace
}  // namespace refract::serve
