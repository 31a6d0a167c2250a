// `refract serve` end to end: the real binary on a free port with the tiny fixture model.
// A chat completion with a base64 PNG must return the OpenAI shape and, greedy, exactly the
// text generate() produces when called directly on the same prompt. The greedy check runs for
// both families (the Qwen2.5-VL and the Qwen2-VL tiny fixtures).
#include <gtest/gtest.h>
#include <httplib.h>
#include <torch/torch.h>

#include <fstream>
#include <thread>
#include <sstream>

#include <nlohmann/json.hpp>

#include "fixture_video.h"
#include "common/atomic_file.h"
#include "generate/generator.h"
#include "model/qwen2_5_vl.h"
#include "server_process.h"
#include "test_util.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "tiny_model.h"
#include "vision/image.h"
#include "vision/preprocess.h"
#include "test_device.h"
#include "vision/preprocess_video.h"
#include "io/torch_tensors.h"

namespace refract::serve {
namespace {
using json = nlohmann::json;
using namespace testing;

constexpr int64_t kMaxTokens = 12;

struct Qwen2_5_VLModel {
  static std::string fixture() { return kTinyFixture; }
  static const char* name() { return "e2e"; }
};
struct Qwen2VLModel {
  static std::string fixture() { return kTinyQ2Fixture; }
  static const char* name() { return "e2e_qwen2_vl"; }
};

template <class Family>
class ServeFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir(Family::name());
    model_dir_ = dir_->file("model");
    write_tiny_serving_model(model_dir_, Family::fixture());
    image_path_ = dir_->file("image.png");
    vision::write_png(image_path_, noise_image(/*width=*/84, /*height=*/56, /*seed=*/7));  // grid 1x4x6
    server_ = new ServerProcess();
    const bool ok = server_->start({"--model", model_dir_, "--port", "0", "--threads", "1", "--max_completion_length",
                                    "32", "--max_body_mb", "1", "--served_model_name", "tiny-vl"},
                                   dir_->file("server.log"));
    if (!ok) {
      std::ifstream log(dir_->file("server.log"));
      std::stringstream ss;
      ss << log.rdbuf();
      start_error_ = server_->error() + "\n" + ss.str();
    }
  }
  static void TearDownTestSuite() {
    if (server_) EXPECT_EQ(server_->stop(), 0) << "the server must exit cleanly on SIGTERM";
    delete server_;
    delete dir_;
  }
  void SetUp() override { ASSERT_TRUE(start_error_.empty()) << start_error_; }

  httplib::Client client() {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(300, 0);
    return c;
  }
  json chat_body(const json& extra) const {
    const std::string url = "data:image/png;base64," + base64_encode(read_file(image_path_));
    json body = {{"model", "tiny-vl"},
                 {"messages",
                  {{{"role", "user"},
                    {"content",
                     {{{"type", "image_url"}, {"image_url", {{"url", url}}}},
                      {{"type", "text"}, {"text", "Describe the image."}}}}}}}};
    for (const auto& [k, v] : extra.items()) body[k] = v;
    return body;
  }

  // The request's prompt built by hand: template -> processor (the server's path, independently).
  static generate::PromptInput hand_prompt(const text::Tokenizer& tok) {
    const vision::Preprocessed pre = vision::preprocess_image(vision::decode_image_file(image_path_), {});
    const std::vector<text::Message> messages = {
        {"user", {text::ContentItem::make_image(0, pre.num_image_tokens()), text::ContentItem::make_text("Describe the image.")}}};
    const text::EncodedChat chat = text::apply_chat_template(tok, messages, /*add_generation_prompt=*/true);
    generate::PromptInput prompt;
    prompt.input_ids.assign(chat.ids.begin(), chat.ids.end());
    prompt.pixel_values = torch::from_blob(const_cast<float*>(pre.pixel_values.data()), {pre.rows, 1176}, torch::kFloat32).clone();
    prompt.image_grid_thw = torch::tensor(std::vector<int64_t>(pre.grid_thw.begin(), pre.grid_thw.end())).view({1, 3});
    return prompt;
  }

  // POSTs a streaming request; returns the `data:` payloads in order (the last should be [DONE]).
  std::vector<std::string> stream_events(const json& body, int* status) {
    auto c = client();
    std::string raw;
    httplib::Headers headers;
    auto res = c.Post("/v1/chat/completions", headers, body.dump(), "application/json");
    *status = res ? res->status : -1;
    if (!res) return {};
    EXPECT_NE(res->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
    raw = res->body;
    std::vector<std::string> events;
    size_t at = 0;
    while (at < raw.size()) {
      const size_t end = raw.find("\n\n", at);
      EXPECT_NE(end, std::string::npos) << "unterminated event: " << raw.substr(at);
      if (end == std::string::npos) break;
      const std::string ev = raw.substr(at, end - at);
      EXPECT_EQ(ev.rfind("data: ", 0), 0u) << ev;
      events.push_back(ev.substr(6));
      at = end + 2;
    }
    return events;
  }

  void check_greedy_image_chat();
  void check_greedy_video_chat();

  static inline TempDir* dir_ = nullptr;
  static inline std::string model_dir_, image_path_, start_error_;
  static inline ServerProcess* server_ = nullptr;
};
using ServeEndToEnd = ServeFixture<Qwen2_5_VLModel>;
using ServeEndToEndQwen2VL = ServeFixture<Qwen2VLModel>;

TEST_F(ServeEndToEnd, HealthAndModels) {
  auto c = client();
  auto h = c.Get("/health");
  ASSERT_TRUE(h) << httplib::to_string(h.error()) << " port " << server_->port() << "\n" << read_file(dir_->file("server.log"));
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(json::parse(h->body)["status"], "ok");
  auto m = c.Get("/v1/models");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  const json j = json::parse(m->body);
  EXPECT_EQ(j["object"], "list");
  EXPECT_EQ(j["data"][0]["id"], "tiny-vl");
}

template <class Family>
void ServeFixture<Family>::check_greedy_image_chat() {
  auto c = client();
  auto res = c.Post("/v1/chat/completions", chat_body({{"temperature", 0}, {"max_tokens", kMaxTokens}}).dump(),
                    "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_NE(res->get_header_value("Content-Type").find("application/json"), std::string::npos);
  const json j = json::parse(res->body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "tiny-vl");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_TRUE(j["created"].is_number_integer());
  ASSERT_EQ(j["choices"].size(), 1u);
  const json& choice = j["choices"][0];
  EXPECT_EQ(choice["index"], 0);
  EXPECT_EQ(choice["message"]["role"], "assistant");
  ASSERT_TRUE(choice["message"]["content"].is_string());

  // The same request by hand: template -> processor -> generate(), greedy.
  torch::set_num_threads(1);
  const text::Tokenizer tok = text::Tokenizer::from_file(model_dir_);
  const generate::PromptInput prompt = hand_prompt(tok);
  ASSERT_EQ(prompt.pixel_values.size(0) / 4, 6);  // 6 image tokens (grid 1x4x6, merge 2x2)
  struct {
    std::vector<int64_t> ids;
  } chat{prompt.input_ids};
  auto model = model::load_pretrained(model_dir_, refract::testing::test_device(), "float32");
  model->eval();
  generate::GenerationConfig gen;
  gen.do_sample = false;
  gen.max_new_tokens = kMaxTokens;
  // The model's generation_config.json eos_token_id (Qwen2.5-VL tiny: [4002, 4000]; Qwen2-VL: 4002).
  const json gcfg = json::parse(read_file(model_dir_ + "/generation_config.json"));
  gen.stop_token_ids = gcfg["eos_token_id"].is_array() ? gcfg["eos_token_id"].get<std::vector<int64_t>>()
                                                       : std::vector<int64_t>{gcfg["eos_token_id"].get<int64_t>()};
  gen.pad_token_id = 4000;
  const auto direct = generate::generate(*model, {prompt}, gen);
  ASSERT_EQ(direct.completions.size(), 1u);
  const generate::Completion& d = direct.completions[0];
  std::vector<int32_t> ids(d.ids.begin(), d.ids.end());
  if (d.finish_reason == generate::FinishReason::kEos) ids.pop_back();  // eos is not content
  EXPECT_EQ(choice["message"]["content"].get<std::string>(), tok.decode(ids, /*skip_special_tokens=*/true));
  EXPECT_EQ(choice["finish_reason"], d.finish_reason == generate::FinishReason::kLength ? "length" : "stop");
  EXPECT_EQ(j["usage"]["prompt_tokens"], int64_t(chat.ids.size()));
  EXPECT_EQ(j["usage"]["completion_tokens"], int64_t(d.ids.size()));
  EXPECT_EQ(j["usage"]["total_tokens"], int64_t(chat.ids.size() + d.ids.size()));
  std::cout << "greedy completion: " << choice["message"]["content"] << " (" << d.ids.size() << " tokens, "
            << choice["finish_reason"] << ")\n";
}

// A video_url data URL (the fixture clip; fps 3 with small frames, qwen-vl-utils keys beside
// it) against generate() on a prompt built from the frames qwen-vl-utils itself gave for that
// clip and those settings (tests/fixtures/video/fetch.safetensors), the processor's video path
// and second_per_grid_ts = 2 / 3 (sample_fps 3).
template <class Family>
void ServeFixture<Family>::check_greedy_video_chat() {
  const std::string clip = std::string(REFRACT_FIXTURES_DIR) + "/video/clips/landscape.mp4";
  const json body = {{"model", "tiny-vl"},
                     {"temperature", 0},
                     {"max_tokens", kMaxTokens},
                     {"messages",
                      {{{"role", "user"},
                        {"content",
                         {{{"type", "video_url"},
                           {"video_url", {{"url", "data:video/mp4;base64," + base64_encode(read_file(clip))}}},
                           {"fps", 3},
                           {"min_pixels", 3136},
                           {"max_pixels", 6272}},
                          {{"type", "text"}, {"text", "What changes?"}}}}}}}};
  auto c = client();
  auto res = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json j = json::parse(res->body);

  torch::set_num_threads(1);
  const text::Tokenizer tok = text::Tokenizer::from_file(model_dir_);
  const std::vector<vision::Image> images = refract::testing::fixture_video_frames("landscape_fps3_small");
  const vision::PreprocessedVideo pv = vision::preprocess_video(images, vision::PreprocessConfig{});
  const std::vector<text::Message> messages = {
      {"user", {text::ContentItem::make_video(0, pv.num_video_tokens()), text::ContentItem::make_text("What changes?")}}};
  const text::EncodedChat chat = text::apply_chat_template(tok, messages, /*add_generation_prompt=*/true);
  generate::PromptInput prompt;
  prompt.input_ids.assign(chat.ids.begin(), chat.ids.end());
  prompt.pixel_values_videos = torch::from_blob(const_cast<float*>(pv.pixel_values.data()), {pv.rows, 1176}, torch::kFloat32).clone();
  prompt.video_grid_thw = torch::tensor(std::vector<int64_t>(pv.grid_thw.begin(), pv.grid_thw.end())).view({1, 3});
  prompt.second_per_grid_ts = torch::tensor(std::vector<float>{2.0f / 3.0f});
  const torch::Device dev = refract::testing::test_device();
  auto model = model::load_pretrained(model_dir_, dev, "float32");
  model->eval();
  generate::GenerationConfig gen;
  gen.do_sample = false;
  gen.max_new_tokens = kMaxTokens;
  const json gcfg = json::parse(read_file(model_dir_ + "/generation_config.json"));
  gen.stop_token_ids = gcfg["eos_token_id"].is_array() ? gcfg["eos_token_id"].get<std::vector<int64_t>>()
                                                       : std::vector<int64_t>{gcfg["eos_token_id"].get<int64_t>()};
  gen.pad_token_id = 4000;
  const auto direct = generate::generate(*model, {prompt}, gen);
  const generate::Completion& d = direct.completions[0];
  std::vector<int32_t> ids(d.ids.begin(), d.ids.end());
  if (d.finish_reason == generate::FinishReason::kEos) ids.pop_back();
  EXPECT_EQ(j["choices"][0]["message"]["content"].get<std::string>(), tok.decode(ids, /*skip_special_tokens=*/true));
  EXPECT_EQ(j["usage"]["prompt_tokens"], int64_t(chat.ids.size()));
  EXPECT_EQ(pv.num_video_tokens(), 12);

  // The served log-probs equal a full forward with the video and its seconds per temporal
  // patch; for Qwen2.5-VL (time positions scaled by them) they differ from the forward with
  // the default 1.0, so the seconds demonstrably reach the model.
  json lp_body = body;
  lp_body["logprobs"] = true;
  auto lp_res = c.Post("/v1/chat/completions", lp_body.dump(), "application/json");
  ASSERT_TRUE(lp_res);
  ASSERT_EQ(lp_res->status, 200) << lp_res->body;
  const json lp_json = json::parse(lp_res->body);
  const json& entries = lp_json["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(entries.size(), d.ids.size());
  std::vector<int64_t> full = prompt.input_ids;
  full.insert(full.end(), d.ids.begin(), d.ids.end());
  auto forward_logprobs = [&](float seconds) {
    model::ModelInputs in;
    in.input_ids = torch::tensor(full, torch::kLong).view({1, -1}).to(dev);
    in.pixel_values_videos = prompt.pixel_values_videos.to(dev);
    in.video_grid_thw = prompt.video_grid_thw;
    in.second_per_grid_ts = torch::tensor(std::vector<float>{seconds});
    return model->forward(in).logits[0].log_softmax(-1).cpu();  // [S, V]
  };
  const torch::Tensor with_seconds = forward_logprobs(2.0f / 3.0f), with_one = forward_logprobs(1.0f);
  const int64_t p0 = int64_t(prompt.input_ids.size());
  double max_gap = 0;
  for (size_t t = 0; t < entries.size(); ++t) {
    const int64_t id = d.ids[t];
    EXPECT_NEAR(entries[t]["logprob"].get<double>(), with_seconds[p0 - 1 + int64_t(t)][id].item<double>(), 1e-4);
    max_gap = std::max(max_gap, std::abs(entries[t]["logprob"].get<double>() - with_one[p0 - 1 + int64_t(t)][id].item<double>()));
  }
  if (std::string(Family::name()) == "e2e") EXPECT_GT(max_gap, 1e-4) << "second_per_grid_ts must matter for Qwen2.5-VL";
}

TEST_F(ServeEndToEnd, GreedyImageChatEqualsDirectGenerate) { check_greedy_image_chat(); }
TEST_F(ServeEndToEnd, GreedyVideoChatEqualsDirectGenerate) { check_greedy_video_chat(); }
TEST_F(ServeEndToEndQwen2VL, GreedyVideoChatEqualsDirectGenerate) { check_greedy_video_chat(); }
TEST_F(ServeEndToEndQwen2VL, GreedyImageChatEqualsDirectGenerate) { check_greedy_image_chat(); }

TEST_F(ServeEndToEnd, SeededSamplingIsReproducibleAndGivesNChoices) {
  auto c = client();
  const std::string body =
      chat_body({{"temperature", 1.0}, {"top_k", 50}, {"max_completion_tokens", 6}, {"n", 3}, {"seed", 1234}}).dump();
  auto a = c.Post("/v1/chat/completions", body, "application/json");
  auto b = c.Post("/v1/chat/completions", body, "application/json");
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->status, 200) << a->body;
  const json ja = json::parse(a->body), jb = json::parse(b->body);
  ASSERT_EQ(ja["choices"].size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(ja["choices"][i]["index"], i);
    EXPECT_EQ(ja["choices"][i]["message"], jb["choices"][i]["message"]);
  }
  EXPECT_LE(ja["usage"]["completion_tokens"].get<int64_t>(), 3 * 6);
}

TEST_F(ServeEndToEnd, BadRequestsGetOpenAIErrorsAndTheServerSurvives) {
  auto c = client();
  struct Case {
    std::string body;
    int status;
    std::string param;  // "" = null
  };
  const std::vector<Case> cases = {
      {"{not json", 400, ""},
      {chat_body({{"max_tokens", 33}}).dump(), 400, "max_tokens"},  // > --max_completion_length 32
      {chat_body({{"temperature", 3}}).dump(), 400, "temperature"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.org/a.png"}}]}]})",
       400, "messages[0].content[0].image_url.url"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]})",
       400, "messages[0].content[0].image_url.url"},
      {R"({"messages": [{"role": "robot", "content": "hi"}]})", 400, "messages[0].role"},
      {std::string(R"({"messages": [{"role": "user", "content": ")") + std::string(1100000, 'a') + "\"}]}", 413, ""},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.body.substr(0, 120));
    auto res = c.Post("/v1/chat/completions", k.body, "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, k.status);
    const json j = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(j.is_object()) << res->body;
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
    if (k.param.empty()) EXPECT_TRUE(j["error"]["param"].is_null()) << res->body;
    else EXPECT_EQ(j["error"]["param"], k.param);
  }
  auto nf = c.Get("/v1/nothing");
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->status, 404);
  EXPECT_EQ(json::parse(nf->body)["error"]["type"], "not_found_error");
  // Still alive and serving.
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
}

// Streaming sends what the non-streamed request returns, chunk by chunk, as OpenAI does:
// role first, content deltas, finish_reason last, then the usage chunk and [DONE].
TEST_F(ServeEndToEnd, StreamEqualsNonStreamedAndEndsWithUsageAndDone) {
  for (const json& sampling : {json{{"temperature", 0}}, json{{"temperature", 1.0}, {"seed", 77}, {"n", 2}}}) {
    SCOPED_TRACE(sampling.dump());
    json body = chat_body({{"max_tokens", kMaxTokens}});
    for (const auto& [k, v] : sampling.items()) body[k] = v;
    auto c = client();
    auto plain = c.Post("/v1/chat/completions", body.dump(), "application/json");
    ASSERT_TRUE(plain);
    ASSERT_EQ(plain->status, 200) << plain->body;
    const json expect = json::parse(plain->body);
    const size_t n = expect["choices"].size();

    body["stream"] = true;
    body["stream_options"] = {{"include_usage", true}};
    int status = 0;
    const std::vector<std::string> events = stream_events(body, &status);
    ASSERT_EQ(status, 200);
    ASSERT_GE(events.size(), 2 * n + 2);
    EXPECT_EQ(events.back(), "[DONE]");
    std::vector<std::string> content(n);
    std::vector<int> roles(n, 0), finishes(n, 0);
    std::string id;
    for (size_t e = 0; e + 2 < events.size(); ++e) {
      const json j = json::parse(events[e]);
      EXPECT_EQ(j["object"], "chat.completion.chunk");
      EXPECT_EQ(j["model"], "tiny-vl");
      if (id.empty()) id = j["id"];
      EXPECT_EQ(j["id"], id) << "one id for the whole stream";
      EXPECT_TRUE(j.contains("usage") && j["usage"].is_null()) << "include_usage: usage null until the end";
      ASSERT_EQ(j["choices"].size(), 1u);
      const json& ch = j["choices"][0];
      const size_t i = ch["index"].get<size_t>();
      ASSERT_LT(i, n);
      EXPECT_EQ(finishes[i], 0) << "chunk after the choice's finish_reason";
      if (ch["delta"].contains("role")) {
        EXPECT_EQ(ch["delta"]["role"], "assistant");
        EXPECT_EQ(roles[i], 0);
        EXPECT_TRUE(content[i].empty()) << "the role comes first";
        ++roles[i];
      } else {
        EXPECT_EQ(roles[i], 1) << "content before the role chunk";
      }
      if (ch["delta"].contains("content")) content[i] += ch["delta"]["content"].get<std::string>();
      if (!ch["finish_reason"].is_null()) {
        EXPECT_EQ(ch["finish_reason"], expect["choices"][i]["finish_reason"]);
        ++finishes[i];
      }
    }
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ(roles[i], 1);
      EXPECT_EQ(finishes[i], 1);
      EXPECT_EQ(content[i], expect["choices"][i]["message"]["content"].get<std::string>()) << "choice " << i;
    }
    const json usage = json::parse(events[events.size() - 2]);
    EXPECT_EQ(usage["choices"], json::array());
    EXPECT_EQ(usage["usage"], expect["usage"]);
  }
  // Without include_usage: no usage anywhere, [DONE] right after the last choice chunk.
  int status = 0;
  const auto events = stream_events(chat_body({{"max_tokens", 3}, {"temperature", 0}, {"stream", true}}), &status);
  ASSERT_EQ(status, 200);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  for (size_t e = 0; e + 1 < events.size(); ++e) EXPECT_FALSE(json::parse(events[e]).contains("usage"));
  EXPECT_FALSE(json::parse(events[events.size() - 2])["choices"][0]["finish_reason"].is_null());
}

// logprobs / top_logprobs: log_softmax of the model's raw logits (vLLM's default), checked
// against a full forward pass of prompt + completion (no KV cache), greedy and sampled (where
// the temperature must NOT change them); the streamed entries equal the non-streamed ones.
TEST_F(ServeEndToEnd, LogprobsEqualAFullForwardOfTheCompletion) {
  torch::set_num_threads(1);
  const text::Tokenizer tok = text::Tokenizer::from_file(model_dir_);
  const generate::PromptInput prompt = hand_prompt(tok);
  auto model = model::load_pretrained(model_dir_, refract::testing::test_device(), "float32");
  model->eval();
  constexpr int64_t kTop = 3;
  for (const json& sampling : {json{{"temperature", 0}}, json{{"temperature", 1.7}, {"seed", 5}}}) {
    SCOPED_TRACE(sampling.dump());
    json body = chat_body(
        {{"max_tokens", kMaxTokens}, {"logprobs", true}, {"top_logprobs", kTop}, {"return_tokens_as_token_ids", true}});
    for (const auto& [k, v] : sampling.items()) body[k] = v;
    auto c = client();
    auto res = c.Post("/v1/chat/completions", body.dump(), "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const json j = json::parse(res->body);
    const json& entries = j["choices"][0]["logprobs"]["content"];
    ASSERT_TRUE(entries.is_array());
    ASSERT_EQ(int64_t(entries.size()), j["usage"]["completion_tokens"].get<int64_t>()) << "one entry per token";
    ASSERT_GT(entries.size(), 0u);

    // vLLM's return_tokens_as_token_ids: "token_id:N"; `bytes` stay the token's own bytes.
    auto id_and_bytes = [&](const json& e) {
      const std::string t = e["token"].get<std::string>();
      EXPECT_EQ(t.rfind("token_id:", 0), 0u) << t;
      const int64_t id = std::stoll(t.substr(9));
      std::string bytes;
      for (int b : e["bytes"]) bytes.push_back(static_cast<char>(b));
      EXPECT_EQ(bytes, tok.decode({int32_t(id)})) << "token " << id;
      return id;
    };
    std::vector<int64_t> ids = prompt.input_ids;
    for (const json& e : entries) ids.push_back(id_and_bytes(e));
    model::ModelInputs in;
    in.input_ids = torch::tensor(ids, torch::kLong).view({1, -1});
    in.pixel_values = prompt.pixel_values;
    in.image_grid_thw = prompt.image_grid_thw;
    const torch::Tensor lp = model->forward(in).logits[0].log_softmax(-1);  // [S, V]
    const int64_t p = int64_t(prompt.input_ids.size());
    for (size_t t = 0; t < entries.size(); ++t) {
      SCOPED_TRACE("token " + std::to_string(t));
      const torch::Tensor row = lp[p - 1 + int64_t(t)];
      EXPECT_NEAR(entries[t]["logprob"].get<double>(), row[ids[p + t]].item<double>(), 1e-4);
      const auto top = row.topk(kTop);
      ASSERT_EQ(entries[t]["top_logprobs"].size(), size_t(kTop));
      for (int64_t k = 0; k < kTop; ++k) {
        const json& alt = entries[t]["top_logprobs"][k];
        EXPECT_NEAR(alt["logprob"].get<double>(), std::get<0>(top)[k].item<double>(), 1e-4);
        EXPECT_EQ(id_and_bytes(alt), std::get<1>(top)[k].item<int64_t>());
      }
      if (sampling["temperature"] == 0)
        EXPECT_EQ(entries[t]["top_logprobs"][0]["token"], entries[t]["token"]) << "greedy picks the top token";
    }

    // Streamed: the same entries, spread over the chunks.
    body["stream"] = true;
    int status = 0;
    const std::vector<std::string> events = stream_events(body, &status);
    ASSERT_EQ(status, 200);
    json streamed = json::array();
    for (const std::string& ev : events) {
      if (ev == "[DONE]") continue;
      const json ch = json::parse(ev)["choices"][0];
      if (ch["delta"].contains("role")) continue;
      for (const json& e : ch["logprobs"]["content"]) streamed.push_back(e);
    }
    EXPECT_EQ(streamed, entries);
  }
}

// Continuous batching: a seeded request gives the same completions whether it runs alone or
// while other requests (other prompts, lengths and settings) share its decode steps.
TEST_F(ServeEndToEnd, SeededRequestIsTheSameAloneOrBatched) {
  const json seeded = chat_body({{"temperature", 0.9}, {"top_p", 0.95}, {"max_tokens", 10}, {"n", 2}, {"seed", 4242}});
  auto c = client();
  auto alone = c.Post("/v1/chat/completions", seeded.dump(), "application/json");
  ASSERT_TRUE(alone);
  ASSERT_EQ(alone->status, 200) << alone->body;
  std::vector<json> others = {
      json{{"messages", {{{"role", "user"}, {"content", "A much longer text prompt that pads the others, " + std::string(200, 'x')}}}},
           {"max_tokens", 16}, {"temperature", 1.3}, {"seed", 1}},
      json{{"messages", {{{"role", "user"}, {"content", "short"}}}}, {"max_tokens", 5}, {"temperature", 0}},
      chat_body({{"max_tokens", 12}, {"repetition_penalty", 1.2}, {"temperature", 0}})};
  for (int round = 0; round < 2; ++round) {
    std::vector<std::thread> threads;
    std::vector<int> statuses(others.size(), 0);
    for (size_t i = 0; i < others.size(); ++i)
      threads.emplace_back([&, i] {
        auto oc = client();
        for (int k = 0; k < 2; ++k) {  // keep the batch busy while the seeded one runs
          auto r = oc.Post("/v1/chat/completions", others[i].dump(), "application/json");
          statuses[i] = r ? r->status : -1;
        }
      });
    auto batched = c.Post("/v1/chat/completions", seeded.dump(), "application/json");
    for (auto& t : threads) t.join();
    ASSERT_TRUE(batched);
    ASSERT_EQ(batched->status, 200) << batched->body;
    for (int st : statuses) EXPECT_EQ(st, 200);
    const json a = json::parse(alone->body), b = json::parse(batched->body);
    for (int i = 0; i < 2; ++i) EXPECT_EQ(a["choices"][i]["message"], b["choices"][i]["message"]) << "choice " << i;
    EXPECT_EQ(a["usage"], b["usage"]);
  }
}

}  // namespace
}  // namespace refract::serve
