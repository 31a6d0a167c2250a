// Request validation: every malformed request is a 400 whose message and `param` name the
// field (OpenAI's error shape); well-formed requests parse to the intended settings.
#include <gtest/gtest.h>

#include <filesystem>
#include <tuple>

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/check.h"
#include "serve/api_error.h"
#include "serve/chat_request.h"
#include "serve/chat_response.h"
#include "serve/delta_text.h"
#include "serve/engine.h"
#include "serve/request_images.h"
#include "vision/preprocessor_config.h"
#include "test_util.h"
#include "vision/preprocess.h"
#include "vision/probe.h"

namespace refract::serve {
namespace {
using json = nlohmann::json;
using testing::TempDir;

const char* kTextMsg = R"({"role": "user", "content": "hi"})";

// A body with one user message plus the given top-level fields (a JSON object's inside).
std::string with_fields(const std::string& fields) {
  return std::string(R"({"model": "m", "messages": [)") + kTextMsg + "]" + (fields.empty() ? "" : ", " + fields) + "}";
}
std::string with_messages(const std::string& messages) { return R"({"model": "m", "messages": )" + messages + "}"; }

struct BadCase {
  std::string name;
  std::string body;
  std::string param;    // expected `param` ("" = null)
  std::string message;  // expected substring of the message
};

RequestLimits test_limits() {
  RequestLimits l;
  l.max_body_bytes = 4096;
  l.max_completion_length = 64;
  l.max_n = 4;
  l.max_images = 2;
  return l;
}

const std::string kPng = "data:image/png;base64,iVBORw0KGgo=";  // syntax only; never decoded here

std::vector<BadCase> bad_cases() {
  const std::string img = R"({"type": "image_url", "image_url": {"url": ")" + kPng + R"("}})";
  return {
      {"not_json", "{\"messages\": [", "", "not valid JSON"},
      {"empty_body", "", "", "not valid JSON"},
      {"array_body", "[1, 2]", "", "must be a JSON object, got array"},
      {"unknown_field", with_fields(R"("foo": 1)"), "foo", "Unrecognized request argument supplied: foo"},
      {"missing_messages", R"({"model": "m"})", "messages", "messages is required"},
      {"messages_not_array", with_messages(R"("hello")"), "messages", "messages must be an array, got string"},
      {"messages_empty", with_messages("[]"), "messages", "at least one message"},
      {"message_not_object", with_messages("[3]"), "messages[0]", "messages[0] must be an object"},
      {"missing_role", with_messages(R"([{"content": "x"}])"), "messages[0].role", "messages[0].role is required"},
      {"role_not_string", with_messages(R"([{"role": 1, "content": "x"}])"), "messages[0].role", "must be a string"},
      {"unknown_role", with_messages(std::string("[") + kTextMsg + R"(, {"role": "tool", "content": "x"}])"),
       "messages[1].role", "'tool' is not one of"},
      {"unknown_message_field", with_messages(R"([{"role": "user", "content": "x", "tool_calls": []}])"),
       "messages[0].tool_calls", "unrecognized field 'tool_calls'"},
      {"missing_content", with_messages(R"([{"role": "user"}])"), "messages[0].content", "content is required"},
      {"null_content", with_messages(R"([{"role": "assistant", "content": null}])"), "messages[0].content",
       "content is required"},
      {"content_number", with_messages(R"([{"role": "user", "content": 5}])"), "messages[0].content",
       "must be a string or an array of content parts"},
      {"content_empty_array", with_messages(R"([{"role": "user", "content": []}])"), "messages[0].content",
       "must not be an empty array"},
      {"part_not_object", with_messages(R"([{"role": "user", "content": ["x"]}])"), "messages[0].content[0]",
       "must be an object"},
      {"part_missing_type", with_messages(R"([{"role": "user", "content": [{"text": "x"}]}])"),
       "messages[0].content[0].type", "type is required"},
      {"part_unknown_type",
       with_messages(R"([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "input_audio"}]}])"),
       "messages[0].content[1].type", "'input_audio' is not supported"},
      {"text_missing", with_messages(R"([{"role": "user", "content": [{"type": "text"}]}])"),
       "messages[0].content[0].text", "text is required"},
      {"text_not_string", with_messages(R"([{"role": "user", "content": [{"type": "text", "text": 7}]}])"),
       "messages[0].content[0].text", "must be a string, got integer"},
      {"image_in_assistant", with_messages(R"([{"role": "assistant", "content": [)" + img + "]}]"),
       "messages[0].content[0]", "only allowed in user messages"},
      {"image_url_missing", with_messages(R"([{"role": "user", "content": [{"type": "image_url"}]}])"),
       "messages[0].content[0].image_url", "image_url is required"},
      {"image_url_number", with_messages(R"([{"role": "user", "content": [{"type": "image_url", "image_url": 3}]}])"),
       "messages[0].content[0].image_url", "must be an object"},
      {"image_url_no_url",
       with_messages(R"([{"role": "user", "content": [{"type": "image_url", "image_url": {"detail": "low"}}]}])"),
       "messages[0].content[0].image_url.url", "url is required"},
      {"image_bad_detail",
       with_messages(R"([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": ")" + kPng +
                     R"(", "detail": "ultra"}}]}])"),
       "messages[0].content[0].image_url.detail", "auto, low or high"},
      {"image_http",
       with_messages(
           R"([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://example.com/a.png"}}]}])"),
       "messages[0].content[0].image_url.url", "remote image URLs are not fetched"},
      {"image_https_string",
       with_messages(R"([{"role": "user", "content": [{"type": "image_url", "image_url": "HTTPS://x/a.png"}]}])"),
       "messages[0].content[0].image_url.url", "remote image URLs"},
      {"image_data_not_image",
       with_messages(
           R"([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:text/plain;base64,aGk="}}]}])"),
       "messages[0].content[0].image_url.url", "image/* media type"},
      {"image_data_not_base64",
       with_messages(
           R"([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}])"),
       "messages[0].content[0].image_url.url", "base64-encoded"},
      {"image_missing_file",
       with_messages(
           R"([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "/nonexistent/x.png"}}]}])"),
       "messages[0].content[0].image_url.url", "local image files are disabled"},
      {"image_empty_url",
       with_messages(R"([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": ""}}]}])"),
       "messages[0].content[0].image_url.url", "is empty"},
      {"too_many_images", with_messages(R"([{"role": "user", "content": [)" + img + "," + img + "," + img + "]}]"),
       "messages[0].content[2]", "too many images: at most 2"},
      {"temperature_string", with_fields(R"("temperature": "hot")"), "temperature", "must be a number, got string"},
      {"temperature_high", with_fields(R"("temperature": 2.5)"), "temperature", "must be in [0, 2], got 2.5"},
      {"temperature_negative", with_fields(R"("temperature": -0.1)"), "temperature", "must be in [0, 2]"},
      {"top_p_zero", with_fields(R"("top_p": 0)"), "top_p", "must be in (0, 1], got 0"},
      {"top_p_high", with_fields(R"("top_p": 1.5)"), "top_p", "must be in (0, 1]"},
      {"top_k_negative", with_fields(R"("top_k": -2)"), "top_k", "must be >= 0"},
      {"top_k_fraction", with_fields(R"("top_k": 1.5)"), "top_k", "must be an integer, got number"},
      {"min_p_high", with_fields(R"("min_p": 1.01)"), "min_p", "must be in [0, 1]"},
      {"repetition_penalty_zero", with_fields(R"("repetition_penalty": 0)"), "repetition_penalty",
       "must be in (0, 10]"},
      {"max_tokens_zero", with_fields(R"("max_tokens": 0)"), "max_tokens", "must be >= 1, got 0"},
      {"max_tokens_too_many", with_fields(R"("max_tokens": 65)"), "max_tokens", "allows at most 64"},
      {"max_tokens_bool", with_fields(R"("max_tokens": true)"), "max_tokens", "must be an integer, got boolean"},
      {"max_completion_tokens_too_many", with_fields(R"("max_completion_tokens": 1000)"), "max_completion_tokens",
       "allows at most 64"},
      {"max_tokens_disagree", with_fields(R"("max_tokens": 5, "max_completion_tokens": 6)"), "max_completion_tokens",
       "disagree"},
      {"n_zero", with_fields(R"("n": 0)"), "n", "n must be in [1, 4], got 0"},
      {"n_too_many", with_fields(R"("n": 5)"), "n", "n must be in [1, 4], got 5"},
      {"seed_string", with_fields(R"("seed": "x")"), "seed", "must be an integer, got string"},
      {"seed_huge", with_fields(R"("seed": 18446744073709551615)"), "seed", "too large"},
      {"stop_number", with_fields(R"("stop": 3)"), "stop", "must be a string or an array of strings"},
      {"stop_item_number", with_fields(R"("stop": ["a", 1])"), "stop[1]", "must be a string"},
      {"stop_empty", with_fields(R"("stop": "")"), "stop", "must not be empty"},
      {"stop_too_many", with_fields(R"("stop": ["a", "b", "c", "d", "e"])"), "stop", "at most 4"},
      {"stream_string", with_fields(R"("stream": "yes")"), "stream", "must be a boolean"},
      {"stream_options_without_stream", with_fields(R"("stream_options": {"include_usage": true})"), "stream_options",
       "only be given when stream is true"},
      {"stream_options_not_object", with_fields(R"("stream": true, "stream_options": true)"), "stream_options",
       "must be an object"},
      {"stream_options_unknown", with_fields(R"("stream": true, "stream_options": {"continuous": true})"),
       "stream_options.continuous", "unrecognized field"},
      {"include_usage_string", with_fields(R"("stream": true, "stream_options": {"include_usage": "yes"})"),
       "stream_options.include_usage", "must be a boolean"},
      {"presence_penalty", with_fields(R"("presence_penalty": 0.5)"), "presence_penalty", "not supported"},
      {"logprobs_number", with_fields(R"("logprobs": 5)"), "logprobs", "must be a boolean, got integer"},
      {"top_logprobs_without_logprobs", with_fields(R"("top_logprobs": 2)"), "top_logprobs",
       "needs logprobs to be true"},
      {"top_logprobs_high", with_fields(R"("logprobs": true, "top_logprobs": 21)"), "top_logprobs",
       "must be in [0, 20], got 21"},
      {"top_logprobs_negative", with_fields(R"("logprobs": true, "top_logprobs": -1)"), "top_logprobs",
       "must be in [0, 20]"},
      {"model_number", std::string(R"({"model": 3, "messages": [)") + kTextMsg + "]}", "model", "model must be a string"},
  };
}

TEST(ServeChatRequest, EveryBadRequestIsA400NamingTheField) {
  const RequestLimits limits = test_limits();
  for (const BadCase& c : bad_cases()) {
    SCOPED_TRACE(c.name + ": " + c.body.substr(0, 200));
    try {
      parse_chat_request(c.body, limits);
      ADD_FAILURE() << "accepted";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
      EXPECT_EQ(e.type, "invalid_request_error");
      EXPECT_EQ(e.param, c.param);
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << "message: " << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "threw a non-API error: " << e.what();
    }
  }
}

TEST(ServeChatRequest, ParsesAFullRequest) {
  TempDir dir("req");
  const std::string png_path = dir.file("a.png");
  vision::write_png(png_path, testing::noise_image(30, 30, 1));
  const json body = {
      {"model", "tiny"},
      {"messages",
       {{{"role", "developer"}, {"content", "Be brief."}},
        {{"role", "user"},
         {"content",
          {{{"type", "text"}, {"text", "What is in "}},
           {{"type", "image_url"}, {"image_url", {{"url", kPng}, {"detail", "low"}}}},
           {{"type", "text"}, {"text", " and "}},
           {{"type", "image_url"}, {"image_url", "file://" + png_path}}}},
         {"name", "bob"}},
        {{"role", "assistant"}, {"content", "A cat."}},
        {{"role", "user"}, {"content", "Sure?"}}}},
      {"temperature", 0.7},
      {"top_p", 0.9},
      {"top_k", -1},
      {"min_p", 0.05},
      {"repetition_penalty", 1.05},
      {"max_completion_tokens", 32.0},  // integral float: accepted as 32
      {"n", 3},
      {"seed", -5},
      {"stop", {"\n\n", "END"}},
      {"stream", true},
      {"stream_options", {{"include_usage", true}}},
      {"logprobs", true},
      {"top_logprobs", 5},
      {"return_tokens_as_token_ids", true},
      {"presence_penalty", 0},
      {"frequency_penalty", nullptr},
      {"user", "u1"}};
  RequestLimits limits = test_limits();
  limits.allowed_local_media_path = canonical_media_dir(dir.path.string());
  const ChatRequest r = parse_chat_request(body.dump(), limits);
  EXPECT_EQ(r.model, "tiny");
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0].role, "system");  // developer -> system
  ASSERT_EQ(r.messages[1].content.size(), 4u);
  EXPECT_EQ(r.messages[1].content[0].text, "What is in ");
  EXPECT_EQ(r.messages[1].content[1].kind, text::ContentItem::Kind::kImage);
  EXPECT_EQ(r.messages[1].content[1].image_index, 0);
  EXPECT_EQ(r.messages[1].content[3].image_index, 1);
  ASSERT_EQ(r.image_urls.size(), 2u);
  EXPECT_EQ(r.image_urls[0], kPng);
  EXPECT_EQ(r.image_urls[1], limits.allowed_local_media_path + "/a.png");  // file:// stripped, canonical
  EXPECT_EQ(r.image_params[1], "messages[1].content[3].image_url.url");
  EXPECT_EQ(r.messages[2].role, "assistant");
  EXPECT_DOUBLE_EQ(r.temperature, 0.7);
  EXPECT_DOUBLE_EQ(r.top_p, 0.9);
  EXPECT_EQ(r.top_k, 0);  // -1 = off
  EXPECT_DOUBLE_EQ(r.min_p, 0.05);
  EXPECT_DOUBLE_EQ(r.repetition_penalty, 1.05);
  EXPECT_EQ(r.max_tokens, 32);
  EXPECT_EQ(r.n, 3);
  ASSERT_TRUE(r.seed.has_value());
  EXPECT_EQ(*r.seed, -5);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n\n", "END"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 5);
  EXPECT_TRUE(r.return_tokens_as_token_ids);
}

TEST(ServeChatRequest, DefaultsAndNulls) {
  const ChatRequest r =
      parse_chat_request(R"({"messages": [{"role": "user", "content": "x"}], "temperature": null, "stop": null})",
                         test_limits());
  EXPECT_EQ(r.model, "");
  EXPECT_DOUBLE_EQ(r.temperature, 1.0);  // OpenAI default
  EXPECT_DOUBLE_EQ(r.top_p, 1.0);
  EXPECT_EQ(r.max_tokens, 0);  // server default
  EXPECT_EQ(r.n, 1);
  EXPECT_FALSE(r.seed.has_value());
  EXPECT_TRUE(r.stop.empty());
}

// Local files: none by default; with allowed_local_media_path only files whose real path lies
// under it, and one message for every refusal (it never tells whether a path exists).
TEST(ServeChatRequest, LocalFilesOnlyUnderTheAllowedDirectory) {
  TempDir dir("local"), outside("outside");
  std::filesystem::create_directories(dir.path / "media" / "sub");
  const std::string media = canonical_media_dir((dir.path / "media").string());
  vision::write_png(media + "/sub/a.png", testing::noise_image(30, 30, 1));
  vision::write_png(outside.file("secret.png"), testing::noise_image(30, 30, 1));
  std::filesystem::create_symlink(outside.file("secret.png"), media + "/escape.png");
  std::filesystem::create_symlink("sub/a.png", media + "/inside_link.png");
  auto body = [](const std::string& url) {
    return with_messages(R"([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": ")" + url +
                         R"("}}]}])");
  };
  RequestLimits limits = test_limits();
  try {  // default: no local files at all
    parse_chat_request(body(media + "/sub/a.png"), limits);
    ADD_FAILURE() << "accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.param, "messages[0].content[0].image_url.url");
    EXPECT_NE(std::string(e.what()).find("disabled"), std::string::npos);
  }
  limits.allowed_local_media_path = media;
  EXPECT_EQ(parse_chat_request(body(media + "/sub/a.png"), limits).image_urls[0], media + "/sub/a.png");
  EXPECT_EQ(parse_chat_request(body("file://" + media + "/sub/a.png"), limits).image_urls[0], media + "/sub/a.png");
  EXPECT_EQ(parse_chat_request(body("file://localhost" + media + "/sub/%61.png"), limits).image_urls[0],
            media + "/sub/a.png");
  EXPECT_EQ(parse_chat_request(body("sub/a.png"), limits).image_urls[0], media + "/sub/a.png");  // relative to it
  EXPECT_EQ(parse_chat_request(body("inside_link.png"), limits).image_urls[0], media + "/sub/a.png");
  std::string refusal;
  for (const std::string& url :
       {outside.file("secret.png"), media + "/escape.png", media + "/../../" + outside.path.filename().string() + "/secret.png",
        "file://" + outside.file("secret.png"), media + "/missing.png", std::string("/etc/shadow"),
        std::string("/nonexistent/x.png"), media, media + "/sub", std::string("file:relative.png"), std::string("../x")}) {
    SCOPED_TRACE(url);
    try {
      parse_chat_request(body(url), limits);
      ADD_FAILURE() << "accepted";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
      EXPECT_EQ(e.param, "messages[0].content[0].image_url.url");
      if (refusal.empty()) refusal = e.what();
      EXPECT_EQ(std::string(e.what()), refusal) << "every refusal must read the same";
    }
  }
  EXPECT_EQ(refusal.find("exist"), std::string::npos) << refusal;
  // read_local_media re-checks at open time: a symlink swapped in after parsing cannot escape.
  EXPECT_EQ(read_local_media(media + "/sub/a.png", media, 1 << 20, "p"), read_file(media + "/sub/a.png"));
  EXPECT_THROW(read_local_media(media + "/escape.png", media, 1 << 20, "p"), ApiError);
  try {
    read_local_media(media + "/sub/a.png", media, 10, "p");
    ADD_FAILURE() << "accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 413);
  }
  EXPECT_THROW(canonical_media_dir(dir.file("nope")), refract::Error);
}

TEST(ServeChatRequest, JsonLimitsAndNumberOverflowAre400s) {
  RequestLimits limits = test_limits();
  limits.max_body_bytes = 1 << 20;
  for (const std::string& body :
       {with_fields(R"("temperature": 1e400)"), with_fields(R"("seed": 99999999999999999999999999)"),
        with_fields(R"("max_tokens": -1e400)"), std::string(100, '[') + std::string(100, ']'),
        "[" + [] {
          std::string s = "0";
          for (int i = 0; i < 200000; ++i) s += ",0";
          return s;
        }() + "]"}) {
    SCOPED_TRACE(body.substr(0, 80));
    try {
      parse_chat_request(body, limits);
      ADD_FAILURE() << "accepted";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400) << e.what();
    }
  }
  limits.max_body_bytes = 10;
  try {
    parse_chat_request(with_fields(""), limits);
    ADD_FAILURE() << "accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 413);
  }
}

TEST(ServeChatRequest, UnknownModelIs404ModelNotFound) {
  RequestLimits limits = test_limits();
  limits.served_model_name = "m";
  EXPECT_NO_THROW(parse_chat_request(with_fields(""), limits));  // with_fields names "m"
  EXPECT_NO_THROW(parse_chat_request(R"({"messages": [{"role": "user", "content": "x"}]})", limits));
  try {
    parse_chat_request(R"({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]})", limits);
    ADD_FAILURE() << "accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 404);
    EXPECT_EQ(e.param, "model");
    const json j = json::parse(error_body(e));
    EXPECT_EQ(j["error"]["code"], "model_not_found");
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  }
}

TEST(ServeChatRequest, ClientTextDropsSourceLocations) {
  EXPECT_EQ(client_text("[/work/main/src/vision/decode_png.cpp:42] image: bad CRC"), "image: bad CRC");
  EXPECT_EQ(client_text("a [x] b [src/a.cpp:7] c"), "a [x] b c");
  EXPECT_EQ(client_text("no location"), "no location");
}

TEST(ServeChatRequest, RemoteUrlClassification) {
  EXPECT_TRUE(is_remote_url("http://a/b.png"));
  EXPECT_TRUE(is_remote_url("https://a/b.png"));
  EXPECT_TRUE(is_remote_url("FTP://a/b.png"));
  EXPECT_TRUE(is_remote_url("s3://bucket/key"));
  EXPECT_TRUE(is_remote_url("//cdn.example.com/x.png"));
  EXPECT_FALSE(is_remote_url("file:///tmp/a.png"));
  EXPECT_FALSE(is_remote_url("data:image/png;base64,AAAA"));
  EXPECT_FALSE(is_remote_url("/tmp/a.png"));
  EXPECT_FALSE(is_remote_url("images/a b://c.png"));  // not a scheme
  EXPECT_FALSE(is_remote_url("relative/a.png"));
}

TEST(ServeChatRequest, ErrorBodyHasTheOpenAIShape) {
  const json a = json::parse(error_body(bad_request("top_p must be in (0, 1]", "top_p")));
  EXPECT_EQ(a["error"]["message"], "top_p must be in (0, 1]");
  EXPECT_EQ(a["error"]["type"], "invalid_request_error");
  EXPECT_EQ(a["error"]["param"], "top_p");
  EXPECT_TRUE(a["error"]["code"].is_null());
  const json b = json::parse(error_body(bad_request("bad \xff byte")));  // invalid UTF-8 must not throw
  EXPECT_TRUE(b["error"]["param"].is_null());
  EXPECT_EQ(b["error"]["message"], "bad \xEF\xBF\xBD byte");
}

TEST(ServeChatRequest, Base64MatchesRfc4648Vectors) {
  // RFC 4648 section 10 (checks the helper the image tests rely on).
  EXPECT_EQ(testing::base64_encode(""), "");
  EXPECT_EQ(testing::base64_encode("f"), "Zg==");
  EXPECT_EQ(testing::base64_encode("fo"), "Zm8=");
  EXPECT_EQ(testing::base64_encode("foo"), "Zm9v");
  EXPECT_EQ(testing::base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(testing::base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(testing::base64_encode("foobar"), "Zm9vYmFy");
}

TEST(ServeRequestImages, DecodesDataUrlsAndFilesAndFillsImageTokens) {
  TempDir dir("img");
  const std::string png_path = dir.file("b.png");
  vision::write_png(png_path, testing::noise_image(84, 56, 2));  // 56x84 -> grid 1x4x6 (fixture A's size)
  vision::write_png(dir.file("c.png"), testing::noise_image(112, 56, 3));  // -> grid 1x4x8
  const std::string url = "data:image/png;base64," + testing::base64_encode(read_file(dir.file("c.png")));
  const json body = {{"messages",
                      {{{"role", "user"},
                        {"content",
                         {{{"type", "image_url"}, {"image_url", {{"url", png_path}}}},
                          {{"type", "image_url"}, {"image_url", {{"url", url}}}}}}}}}};
  RequestLimits limits = test_limits();
  limits.max_body_bytes = 1 << 20;
  limits.allowed_local_media_path = canonical_media_dir(dir.path.string());
  ChatRequest r = parse_chat_request(body.dump(), limits);
  MediaLimits media;
  media.allowed_local_media_path = limits.allowed_local_media_path;
  const auto images = load_request_images(r, vision::PreprocessConfig{}, media);
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[0].grid_thw, (std::array<int64_t, 3>{1, 4, 6}));
  EXPECT_EQ(images[1].grid_thw, (std::array<int64_t, 3>{1, 4, 8}));
  EXPECT_EQ(images[1].rows, 32);
  EXPECT_EQ(r.messages[0].content[0].image_tokens, 6);  // t*h*w / merge^2
  EXPECT_EQ(r.messages[0].content[1].image_tokens, 8);
}

TEST(ServeRequestImages, UndecodableOrRejectedImagesAre400s) {
  TempDir dir("badimg");
  vision::write_png(dir.file("tiny.png"), testing::noise_image(10, 40, 4));  // < 28 px: smart_resize rejects
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"data:image/png;base64," + testing::base64_encode("not a png at all"), "cannot use this image"},
      {"data:image/png;base64,@@@@", "invalid base64 character"},
      {dir.file("tiny.png"), "cannot use this image"},
      {"data:image/png;base64," + testing::base64_encode(testing::png_header(100000, 100000)), "max_image_pixels"},
      {"data:image/jpeg;base64," + testing::base64_encode(testing::jpeg_header(60000, 60000)), "max_image_pixels"},
      {"data:image/webp;base64," + testing::base64_encode(testing::webp_vp8x_header(100000, 100000)), "max_image_pixels"},
      {"data:image/webp;base64," + testing::base64_encode(testing::webp_vp8l_header(16384, 16384)), "max_image_pixels"},
      {"data:image/bmp;base64," + testing::base64_encode(testing::bmp_header(100000, -100000)), "max_image_pixels"},
  };
  RequestLimits limits = test_limits();
  limits.max_body_bytes = 1 << 20;
  limits.allowed_local_media_path = canonical_media_dir(dir.path.string());
  MediaLimits media;
  media.allowed_local_media_path = limits.allowed_local_media_path;
  for (const auto& [url, msg] : cases) {
    SCOPED_TRACE(url);
    const json body = {{"messages",
                        {{{"role", "user"},
                          {"content",
                           {{{"type", "text"}, {"text", "x"}}, {{"type", "image_url"}, {"image_url", {{"url", url}}}}}}}}}};
    ChatRequest r = parse_chat_request(body.dump(), limits);
    try {
      load_request_images(r, vision::PreprocessConfig{}, media);
      ADD_FAILURE() << "accepted";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
      EXPECT_EQ(e.param, "messages[0].content[1].image_url.url");
      EXPECT_NE(std::string(e.what()).find(msg), std::string::npos) << e.what();
    }
  }
}

// Videos as vLLM takes them ({"type": "video_url", "video_url": {"url"}}), with qwen-vl-utils'
// sampling keys beside: data:video/* URLs and allowed local files; the sampled video's tokens
// fill the item; bad parts, not-videos and videos too large for the server are 400s naming the
// field, the last before any frame is decoded.
TEST(ServeRequestVideos, DataUrlsAndFilesAreSampledAsQwenVlUtils) {
  const std::string clip = std::string(REFRACT_FIXTURES_DIR) + "/video/clips/landscape.mp4";
  TempDir dir("vid");
  std::filesystem::copy_file(clip, dir.file("clip.mp4"));
  const std::string url = "data:video/mp4;base64," + testing::base64_encode(read_file(clip));
  const json body = {{"messages",
                      {{{"role", "user"},
                        {"content",
                         {{{"type", "video_url"}, {"video_url", {{"url", url}}}, {"fps", 3}, {"min_pixels", 3136},
                           {"max_pixels", 6272}},
                          {{"type", "text"}, {"text", "and"}},
                          {{"type", "video_url"}, {"video_url", {{"url", "clip.mp4"}}}, {"max_frames", 2},
                           {"min_pixels", 3136}, {"max_pixels", 6272}}}}}}}};
  RequestLimits limits = test_limits();
  limits.max_body_bytes = 1 << 20;
  limits.allowed_local_media_path = canonical_media_dir(dir.path.string());
  ChatRequest r = parse_chat_request(body.dump(), limits);
  ASSERT_EQ(r.video_urls.size(), 2u);
  EXPECT_EQ(r.messages[0].content[0].kind, text::ContentItem::Kind::kVideo);
  MediaLimits media;
  media.allowed_local_media_path = limits.allowed_local_media_path;
  const auto videos = load_request_videos(r, vision::PreprocessConfig{}, media);
  ASSERT_EQ(videos.size(), 2u);
  // fps 3 of a 12-frame 6 fps clip: 6 frames of 56x56 (fetch.json landscape_fps3_small),
  // sample_fps 3 -> 2/3 s per temporal patch; max_frames 2: 2 frames, sample_fps 1 -> 2 s.
  EXPECT_EQ(videos[0].processed.grid_thw, (std::array<int64_t, 3>{3, 4, 4}));
  EXPECT_DOUBLE_EQ(videos[0].second_per_grid_t, 2.0 / 3.0);
  EXPECT_EQ(videos[1].processed.grid_thw, (std::array<int64_t, 3>{1, 4, 4}));
  EXPECT_DOUBLE_EQ(videos[1].second_per_grid_t, 2.0);
  EXPECT_EQ(r.messages[0].content[0].video_tokens, 12);
  EXPECT_EQ(r.messages[0].content[2].video_tokens, 4);
}

TEST(ServeRequestVideos, BadVideosAre400sNamingTheField) {
  const std::string clip_url = "data:video/mp4;base64," +
                               testing::base64_encode(read_file(std::string(REFRACT_FIXTURES_DIR) + "/video/clips/landscape.mp4"));
  const std::string bomb = "YUV4MPEG2 W15000 H15000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + std::string(16, '\x80');
  RequestLimits limits = test_limits();
  limits.max_body_bytes = 1 << 20;
  // Parse-time: the part's fields and URL.
  const std::vector<BadCase> parse_cases = {
      {"image_media_type", R"([{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "data:image/png;base64,AAAA"}}]}])",
       "messages[0].content[0].video_url.url", "video/*"},
      {"remote", R"([{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "https://x.org/a.mp4"}}]}])",
       "messages[0].content[0].video_url.url", "remote video URLs"},
      {"local_disabled", R"([{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "/tmp/a.mp4"}}]}])",
       "messages[0].content[0].video_url.url", "local video files are disabled"},
      {"bad_key", R"([{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AA"}, "fsp": 2}]}])",
       "messages[0].content[0]", "unknown video key 'fsp'"},
      {"bad_fps", R"([{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AA"}, "fps": "x"}]}])",
       "messages[0].content[0]", "fps must be a number"},
      {"assistant", R"([{"role": "assistant", "content": [{"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AA"}}]}])",
       "messages[0].content[0]", "only allowed in user messages"},
      {"too_many", R"([{"role": "user", "content": [{"type": "video_url", "video_url": "data:video/mp4;base64,AA"}, {"type": "video_url", "video_url": "data:video/mp4;base64,AA"}, {"type": "video_url", "video_url": "data:video/mp4;base64,AA"}]}])",
       "messages[0].content[2]", "too many videos"},
  };
  for (const BadCase& c : parse_cases) {
    SCOPED_TRACE(c.name);
    try {
      parse_chat_request(with_messages(c.body), limits);
      ADD_FAILURE() << "accepted";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
      EXPECT_EQ(e.param, c.param);
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos) << e.what();
    }
  }
  // Load-time: not a video, a header declaring huge frames, more tokens than the server takes.
  MediaLimits small;
  small.max_video_tokens = 100;
  const std::vector<std::tuple<std::string, json, MediaLimits, std::string>> load_cases = {
      {"not_a_video", json{{"type", "video_url"}, {"video_url", "data:video/mp4;base64," + testing::base64_encode("just text")}},
       MediaLimits{}, "cannot use this video"},
      {"bomb", json{{"type", "video_url"}, {"video_url", "data:video/x-yuv4mpeg;base64," + testing::base64_encode(bomb)}},
       MediaLimits{}, "frames of 15000x15000"},
      {"too_many_tokens", json{{"type", "video_url"}, {"video_url", clip_url}}, small, "this server takes at most 100"},
  };
  for (const auto& [name, part, media, msg] : load_cases) {
    SCOPED_TRACE(name);
    const json body = {{"messages", {{{"role", "user"}, {"content", {part}}}}}};
    ChatRequest r = parse_chat_request(body.dump(), limits);
    try {
      load_request_videos(r, vision::PreprocessConfig{}, media);
      ADD_FAILURE() << "accepted";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
      EXPECT_EQ(e.param, "messages[0].content[0].video_url.url");
      EXPECT_NE(std::string(e.what()).find(msg), std::string::npos) << e.what();
    }
  }
}

// The header probe reads the stored size of every format the decoders accept, and the declared
// size of the bomb headers (without decoding them).
TEST(ServeRequestImages, ProbeReadsHeaderSizes) {
  const std::string images = std::string(REFRACT_FIXTURES_DIR) + "/image_preprocess/images/";
  for (const auto& [file, w, h] : std::vector<std::tuple<std::string, int64_t, int64_t>>{
           {"p01_rgb_w30_h31.png", 30, 31}, {"p04_pal_trns_w1000_h333.png", 1000, 333},
           {"p07_rgb_q90_w1023_h767.jpg", 1023, 767}, {"p08_gray_q90_w501_h377.jpg", 501, 377},
           {"p13_rgb_q90_w4000_h3000.jpg", 4000, 3000}, {"p10_bmp_w28_h28.bmp", 28, 28},
           {"p11_webp_w448_h336.webp", 448, 336}}) {
    SCOPED_TRACE(file);
    const std::string bytes = read_file(images + file);
    const auto size = vision::probe_image_size(bytes);
    ASSERT_TRUE(size.has_value());
    const vision::Image decoded = vision::decode_image_bytes(bytes, file);  // agrees with the decoder
    EXPECT_EQ(size->width * size->height, decoded.width * decoded.height);
    EXPECT_EQ(size->width, w);
    EXPECT_EQ(size->height, h);
  }
  auto probe = [](const std::string& b) { return vision::probe_image_size(b).value_or(vision::ImageSize{-1, -1}); };
  EXPECT_EQ(probe(testing::png_header(100000, 70000)).width, 100000);
  EXPECT_EQ(probe(testing::png_header(100000, 70000)).height, 70000);
  EXPECT_EQ(probe(testing::jpeg_header(65000, 64000)).width, 65000);
  EXPECT_EQ(probe(testing::jpeg_header(65000, 64000)).height, 64000);
  EXPECT_EQ(probe(testing::webp_vp8x_header(1 << 24, 3)).width, 1 << 24);
  EXPECT_EQ(probe(testing::webp_vp8l_header(16384, 200)).height, 200);
  EXPECT_EQ(probe(testing::bmp_header(5000, -7000)).height, 7000);
  // Truncated or foreign bytes: no size (the server refuses them).
  const std::string png = testing::png_header(10, 10);
  for (size_t n = 0; n < 24; ++n) EXPECT_FALSE(vision::probe_image_size(png.substr(0, n)).has_value()) << n;
  const std::string jpg = testing::jpeg_header(10, 10);
  for (size_t n = 0; n < 11; ++n) EXPECT_FALSE(vision::probe_image_size(jpg.substr(0, n)).has_value()) << n;
  EXPECT_FALSE(vision::probe_image_size("GIF89a....").has_value());
}

TEST(ServeRequestImages, PreprocessorConfigOverridesDefaults) {
  TempDir dir("pp");
  EXPECT_EQ(vision::load_preprocessor_config(dir.path.string()).max_pixels, vision::PreprocessConfig{}.max_pixels);
  write_file_atomic(dir.file("preprocessor_config.json"),
                    R"({"min_pixels": 1000, "max_pixels": 50000, "size": {"shortest_edge": 7, "longest_edge": 9}})");
  const vision::PreprocessConfig c = vision::load_preprocessor_config(dir.path.string());
  EXPECT_EQ(c.min_pixels, 1000);
  EXPECT_EQ(c.max_pixels, 50000);
  write_file_atomic(dir.file("preprocessor_config.json"), R"({"size": {"shortest_edge": 7, "longest_edge": 9}})");
  EXPECT_EQ(vision::load_preprocessor_config(dir.path.string()).max_pixels, 9);
}

TEST(ServeChatResponse, ChatCompletionShape) {
  ChatResult r;
  r.prompt_tokens = 10;
  r.completion_tokens = 7;
  r.choices.push_back({"hello", "stop", {1, 2, 3}});
  r.choices.push_back({"cut \xe4\xbd", "length", {4, 5, 6, 7}});  // half a UTF-8 character
  const json j = json::parse(chat_completion_body("chatcmpl-1", 1700000000, "tiny", r));
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["id"], "chatcmpl-1");
  EXPECT_EQ(j["model"], "tiny");
  EXPECT_EQ(j["created"], 1700000000);
  ASSERT_EQ(j["choices"].size(), 2u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "hello");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["choices"][1]["index"], 1);
  EXPECT_EQ(j["choices"][1]["message"]["content"], "cut \xEF\xBF\xBD");
  EXPECT_EQ(j["choices"][1]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 10);
  EXPECT_EQ(j["usage"]["completion_tokens"], 7);
  EXPECT_EQ(j["usage"]["total_tokens"], 17);
  const json m = json::parse(models_body("tiny", 5));
  EXPECT_EQ(m["object"], "list");
  EXPECT_EQ(m["data"][0]["id"], "tiny");
  EXPECT_EQ(m["data"][0]["object"], "model");
}

TEST(ServeDeltaText, Utf8CompletePrefix) {
  EXPECT_EQ(utf8_complete_prefix(""), 0u);
  EXPECT_EQ(utf8_complete_prefix("abc"), 3u);
  EXPECT_EQ(utf8_complete_prefix("a\xc3"), 1u);              // lead of a 2-byte character
  EXPECT_EQ(utf8_complete_prefix("a\xc3\xa9"), 3u);          // é complete
  EXPECT_EQ(utf8_complete_prefix("a\xe4\xbd"), 1u);          // 2 of 3 bytes of 你
  EXPECT_EQ(utf8_complete_prefix("\xe4\xbd\xa0"), 3u);
  EXPECT_EQ(utf8_complete_prefix("x\xf0\x9f\x98"), 1u);      // 3 of 4 bytes of an emoji
  EXPECT_EQ(utf8_complete_prefix("x\xf0\x9f\x98\x80"), 5u);
  EXPECT_EQ(utf8_complete_prefix("\x80\x80\x80\x80\x80"), 5u);  // not UTF-8: nothing to wait for
}

// Whatever the token boundaries, the streamed deltas concatenate to the non-streamed content
// (cut before the first stop string), and no delta ever contains a stop string's beginning
// that the stop string later completes, nor half a character.
TEST(ServeDeltaText, DeltasConcatenateToTheContent) {
  const std::string full = "h\xc3\xa9llo, w\xe4\xbd\xa0rld END tail";
  for (const std::vector<std::string>& stop : std::vector<std::vector<std::string>>{{}, {"END"}, {"zz", "rld E"}}) {
    for (size_t step = 1; step <= 4; ++step) {
      SCOPED_TRACE("step " + std::to_string(step) + " stops " + std::to_string(stop.size()));
      DeltaText d(stop);
      std::string streamed;
      const std::string content = d.content(full);
      size_t end = 0;
      // A real generation stops at the first token whose text completes a stop string.
      while (end < full.size()) {
        end = std::min(full.size(), end + step);
        const std::string text = full.substr(0, end);
        if (d.content(text) != text) break;
        const std::string delta = d.update(text);
        EXPECT_EQ(utf8_complete_prefix(delta), delta.size()) << "half a character sent";
        streamed += delta;
        EXPECT_EQ(content.compare(0, streamed.size(), streamed), 0) << "sent text the content does not have";
      }
      streamed += d.finish(full.substr(0, end));
      EXPECT_EQ(streamed, content);
    }
  }
  EXPECT_EQ(DeltaText({"END"}).content("a END b END"), "a ");
  DeltaText d({"END"});
  EXPECT_EQ(d.update("abcE"), "ab");  // "cE" might begin "END"
  EXPECT_EQ(d.update("abcEN"), "c");
  EXPECT_EQ(d.finish("abcEND"), "");
}

TEST(ServeChatResponse, StreamChunksHaveTheOpenAIShape) {
  ChunkHeader h{"chatcmpl-9", 1700000001, "tiny", /*include_usage=*/true, /*logprobs=*/true};
  const json role = json::parse(role_chunk(h, 1));
  EXPECT_EQ(role["object"], "chat.completion.chunk");
  EXPECT_EQ(role["id"], "chatcmpl-9");
  EXPECT_EQ(role["created"], 1700000001);
  EXPECT_EQ(role["model"], "tiny");
  EXPECT_TRUE(role.contains("usage") && role["usage"].is_null());
  ASSERT_EQ(role["choices"].size(), 1u);
  EXPECT_EQ(role["choices"][0]["index"], 1);
  EXPECT_EQ(role["choices"][0]["delta"], json({{"role", "assistant"}, {"content", ""}}));
  EXPECT_TRUE(role["choices"][0]["finish_reason"].is_null());

  ChoiceDelta d;
  d.index = 0;
  d.content = "h\xc3\xa9";
  LogprobEntry e;
  e.token = e.bytes = "\xc3";  // the first byte of é: bytes carry it, token text is U+FFFD
  e.logprob = -0.5f;
  e.top_logprobs = {{"\xc3", "\xc3", -0.5f}, {"token_id:97", "a", -1.25f}};
  d.logprobs = {e};
  const json c = json::parse(delta_chunk(h, d));
  EXPECT_EQ(c["choices"][0]["delta"], json({{"content", "h\xc3\xa9"}}));
  const json& lp = c["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(lp.size(), 1u);
  EXPECT_EQ(lp[0]["token"], "\xEF\xBF\xBD");
  EXPECT_EQ(lp[0]["bytes"], json::array({0xc3}));
  EXPECT_DOUBLE_EQ(lp[0]["logprob"].get<double>(), -0.5);
  ASSERT_EQ(lp[0]["top_logprobs"].size(), 2u);
  EXPECT_EQ(lp[0]["top_logprobs"][1], json({{"token", "token_id:97"}, {"logprob", -1.25}, {"bytes", {97}}}));
  EXPECT_TRUE(c["choices"][0]["finish_reason"].is_null());

  ChoiceDelta last;
  last.index = 2;
  last.finish_reason = "length";
  h.logprobs = false;
  const json f = json::parse(delta_chunk(h, last));
  EXPECT_EQ(f["choices"][0]["delta"], json::object());  // OpenAI: the last delta is {}
  EXPECT_EQ(f["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(f["choices"][0]["logprobs"].is_null());

  const json u = json::parse(usage_chunk(h, 10, 7));
  EXPECT_EQ(u["choices"], json::array());
  EXPECT_EQ(u["usage"], json({{"prompt_tokens", 10}, {"completion_tokens", 7}, {"total_tokens", 17}}));
  EXPECT_EQ(sse_event("[DONE]"), "data: [DONE]\n\n");
  h.include_usage = false;
  EXPECT_FALSE(json::parse(role_chunk(h, 0)).contains("usage"));
}

}  // namespace
}  // namespace refract::serve
