// `refract serve` end to end: the real binary on a free port with the tiny fixture model.
// A chat completion with a base64 PNG must return the OpenAI shape and, greedy, exactly the
// text generate() produces when called directly on the same prompt. The greedy check runs for
// both families (the Qwen2.5-VL and the Qwen2-VL tiny fixtures).
#include <gtest/gtest.h>
#include <httplib.h>
#include <torch/torch.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

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

  void check_greedy_image_chat();

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
  const vision::Preprocessed pre = vision::preprocess_image(vision::decode_image_file(image_path_), {});
  ASSERT_EQ(pre.num_image_tokens(), 6);
  const std::vector<text::Message> messages = {
      {"user", {text::ContentItem::make_image(0, pre.num_image_tokens()), text::ContentItem::make_text("Describe the image.")}}};
  const text::EncodedChat chat = text::apply_chat_template(tok, messages, /*add_generation_prompt=*/true);
  generate::PromptInput prompt;
  prompt.input_ids.assign(chat.ids.begin(), chat.ids.end());
  prompt.pixel_values = torch::from_blob(const_cast<float*>(pre.pixel_values.data()), {pre.rows, 1176}, torch::kFloat32).clone();
  prompt.image_grid_thw = torch::tensor(std::vector<int64_t>(pre.grid_thw.begin(), pre.grid_thw.end())).view({1, 3});
  auto model = model::load_pretrained(model_dir_, torch::kCPU, "float32");
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

TEST_F(ServeEndToEnd, GreedyImageChatEqualsDirectGenerate) { check_greedy_image_chat(); }
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

}  // namespace
}  // namespace refract::serve
