// Qwen ChatML rendering straight to token ids (the processor's chat_template.json).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace refract::text {

class Tokenizer;

// One item of a message's content, in order.
struct ContentItem {
  enum class Kind { kText, kImage, kVideo };
  Kind kind = Kind::kText;
  std::string text;          // kText
  int64_t image_index = -1;  // kImage: index into the sample's image list
  int64_t image_tokens = 0;  // kImage: t*h*w/4 from its grid (filled once preprocessed)
  int64_t video_index = -1;  // kVideo: index into the sample's video list
  int64_t video_tokens = 0;  // kVideo: t*h*w/4 from its video_grid_thw

  static ContentItem make_text(std::string t) { return {Kind::kText, std::move(t), -1, 0}; }
  static ContentItem make_image(int64_t index, int64_t tokens = 0) {
    return {Kind::kImage, "", index, tokens};
  }
  static ContentItem make_video(int64_t index, int64_t tokens = 0) {
    return {Kind::kVideo, "", -1, 0, index, tokens};
  }
};

struct Message {
  std::string role;  // "system" | "user" | "assistant"
  std::vector<ContentItem> content;
};

struct EncodedChat {
  std::vector<int32_t> ids;
  // 1 where the token is assistant output the model must learn (the assistant content and its
  // closing <|im_end|>), 0 elsewhere (system, user, image, role headers). The "\n" after an
  // assistant's <|im_end|> is 0: template glue, never generated before stopping (common SFT
  // practice). A token that straddles "assistant\n" and the content (content starting with
  // "\n") is 1, as HF return_assistant_tokens_mask marks any token holding a trained character.
  std::vector<uint8_t> assistant_mask;
};

// Renders `<|im_start|>role\n...<|im_end|>\n` per message, with the default system prompt
// "You are a helpful assistant." when the first message is not a system message. An image
// becomes <|vision_start|> + image_tokens x <|image_pad|> + <|vision_end|> (one pad, as the raw
// template writes, while image_tokens is 0); a video the same with <|video_pad|>. Text between special tokens is tokenised as one
// stretch, so the ids equal tokenizer.encode(render_chat_text(...)). With
// add_generation_prompt, `<|im_start|>assistant\n` is appended.
EncodedChat apply_chat_template(const Tokenizer& tok, const std::vector<Message>& messages,
                                bool add_generation_prompt);

// The same rendering as text (image pads expanded), for logs and debugging.
std::string render_chat_text(const std::vector<Message>& messages, bool add_generation_prompt);

}  // namespace refract::text
