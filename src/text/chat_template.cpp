// Qwen2-VL / Qwen2.5-VL ChatML, rendered straight to ids.
// ref: Qwen2.5-VL processor chat template,
// https://huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct/blob/main/chat_template.json
#include "text/chat_template.h"

#include "common/check.h"
#include "text/tokenizer.h"

namespace refract::text {

namespace {

constexpr const char* kDefaultSystem = "You are a helpful assistant.";

// Walks the template once; `Sink` receives text (with a "trained" flag) and special tokens.
// Both renderings (ids and text) share this walk so they cannot drift apart.
template <typename Sink>
void walk_chat(const std::vector<Message>& messages, bool add_generation_prompt, Sink& sink) {
  auto emit_message = [&](const std::string& role, const std::vector<ContentItem>& content) {
    const bool trained = role == "assistant";
    sink.special("<|im_start|>", false);
    sink.text(role + "\n", false);
    for (const ContentItem& item : content) {
      if (item.kind == ContentItem::Kind::kText) {
        sink.text(item.text, trained);
      } else {
        // The template writes one <|image_pad|> (<|video_pad|>); the processor then repeats it
        // t*h*w/4 times. Before preprocessing (tokens == 0) the template's single pad is kept.
        const bool video = item.kind == ContentItem::Kind::kVideo;
        sink.special("<|vision_start|>", false);
        const int64_t tokens = video ? item.video_tokens : item.image_tokens;
        const int64_t pads = tokens > 0 ? tokens : 1;
        for (int64_t i = 0; i < pads; ++i) sink.special(video ? "<|video_pad|>" : "<|image_pad|>", false);
        sink.special("<|vision_end|>", false);
      }
    }
    // The closing <|im_end|> is trained (the model must learn to stop); the "\n" after it is
    // not: it is template glue the model never has to produce before stopping.
    sink.special("<|im_end|>", trained);
    sink.text("\n", false);
  };
  if (messages.empty() || messages.front().role != "system") {
    emit_message("system", {ContentItem::make_text(kDefaultSystem)});
  }
  for (const Message& m : messages) {
    REFRACT_CHECK(m.role == "system" || m.role == "user" || m.role == "assistant")
        << "chat message role '" << m.role << "' is not system, user or assistant";
    emit_message(m.role, m.content);
  }
  if (add_generation_prompt) {
    sink.special("<|im_start|>", false);
    sink.text("assistant\n", false);
  }
}

struct TextSink {
  std::string out;
  void text(const std::string& t, bool) { out += t; }
  void special(const char* tok, bool) { out += tok; }
};

// Text between special tokens is tokenised as one stretch, exactly as HF tokenises the whole
// rendered prompt (added tokens split it into the same stretches).
struct IdSink {
  const Tokenizer& tok;
  EncodedChat out;
  std::string stretch;
  size_t trained_from = std::string::npos;  // byte offset in `stretch` where trained text starts

  void text(const std::string& t, bool trained) {
    if (trained && trained_from == std::string::npos) trained_from = stretch.size();
    stretch += t;
  }
  void special(const char* name, bool trained) {
    flush();
    const int32_t id = tok.token_to_id(name);
    REFRACT_CHECK(id >= 0) << "the tokenizer has no token " << name;
    out.ids.push_back(id);
    out.assistant_mask.push_back(trained ? 1 : 0);
  }
  void flush() {
    if (stretch.empty()) return;
    const std::vector<int32_t> ids = tok.encode(stretch);
    // Trained text always runs to the end of its stretch (the next special token), and it
    // starts after "\n", which NFC never merges with what follows: its offset survives NFC.
    // A token overlapping the trained span is trained (HF return_assistant_tokens_mask marks
    // every token holding a character of the generation span).
    size_t end = 0;
    for (int32_t id : ids) {
      end += tok.token_bytes(id).size();
      out.ids.push_back(id);
      out.assistant_mask.push_back(trained_from != std::string::npos && end > trained_from ? 1 : 0);
    }
    stretch.clear();
    trained_from = std::string::npos;
  }
};

}  // namespace

EncodedChat apply_chat_template(const Tokenizer& tok, const std::vector<Message>& messages,
                                bool add_generation_prompt) {
  IdSink sink{tok, {}, {}, std::string::npos};
  walk_chat(messages, add_generation_prompt, sink);
  sink.flush();
  return std::move(sink.out);
}

std::string render_chat_text(const std::vector<Message>& messages, bool add_generation_prompt) {
  TextSink sink;
  walk_chat(messages, add_generation_prompt, sink);
  return sink.out;
}

}  // namespace refract::text
