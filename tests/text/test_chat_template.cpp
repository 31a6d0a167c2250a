// Qwen ChatML against the spec's example string and known Qwen2.5 ids.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "tokenizer_fixture.h"

namespace refract::text {
namespace {

std::vector<int32_t> masked_ids(const EncodedChat& e) {
  std::vector<int32_t> out;
  for (size_t i = 0; i < e.ids.size(); ++i)
    if (e.assistant_mask[i]) out.push_back(e.ids[i]);
  return out;
}

TEST(ChatTemplate, SpecExampleTextAndIds) {
  const std::vector<Message> msgs = {
      {"user", {ContentItem::make_image(0), ContentItem::make_text("Describe this image.")}}};
  // The example of docs/qwen2_5_vl.md section 5, written out by hand.
  const std::string expected =
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
      "<|vision_start|><|image_pad|><|vision_end|>Describe this image.<|im_end|>\n"
      "<|im_start|>assistant\n";
  EXPECT_EQ(render_chat_text(msgs, /*add_generation_prompt=*/true), expected);
  const Tokenizer& tok = qwen_tokenizer();
  const EncodedChat e = apply_chat_template(tok, msgs, /*add_generation_prompt=*/true);
  EXPECT_EQ(e.ids, tok.encode(expected));
  // Known Qwen2.5 ids: <|im_start|>=151644 system=8948 \n=198 "You are a helpful assistant."
  const std::vector<int32_t> head = {151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198,
                                     151644, 872, 198, 151652, 151655, 151653};
  ASSERT_GE(e.ids.size(), head.size());
  EXPECT_EQ(std::vector<int32_t>(e.ids.begin(), e.ids.begin() + head.size()), head);
  const std::vector<int32_t> tail = {151645, 198, 151644, 77091, 198};
  EXPECT_EQ(std::vector<int32_t>(e.ids.end() - tail.size(), e.ids.end()), tail);
  EXPECT_EQ(e.assistant_mask, std::vector<uint8_t>(e.ids.size(), 0));
}

TEST(ChatTemplate, AssistantMaskCoversContentAndImEnd) {
  const std::vector<Message> msgs = {{"system", {ContentItem::make_text("Be brief.")}},
                                     {"user", {ContentItem::make_text("What is 2+2?")}},
                                     {"assistant", {ContentItem::make_text("4")}}};
  const Tokenizer& tok = qwen_tokenizer();
  const EncodedChat e = apply_chat_template(tok, msgs, /*add_generation_prompt=*/false);
  const std::string text = render_chat_text(msgs, false);
  EXPECT_EQ(text.rfind("<|im_start|>system\nBe brief.<|im_end|>\n", 0), 0u);  // no default system
  EXPECT_EQ(e.ids, tok.encode(text));
  // ... <|im_start|> assistant \n "4" <|im_end|> \n ; only "4" (id 19) and <|im_end|> trained.
  const std::vector<int32_t> tail = {151644, 77091, 198, 19, 151645, 198};
  ASSERT_GE(e.ids.size(), tail.size());
  EXPECT_EQ(std::vector<int32_t>(e.ids.end() - 6, e.ids.end()), tail);
  EXPECT_EQ(std::vector<uint8_t>(e.assistant_mask.end() - 6, e.assistant_mask.end()),
            (std::vector<uint8_t>{0, 0, 0, 1, 1, 0}));
  EXPECT_EQ(masked_ids(e), (std::vector<int32_t>{19, 151645}));
}

TEST(ChatTemplate, MultiImageInPlaceWithExpandedPads) {
  const std::vector<Message> msgs = {
      {"user",
       {ContentItem::make_text("Compare "), ContentItem::make_image(0, 4), ContentItem::make_text(" and "),
        ContentItem::make_image(1, 2), ContentItem::make_text(".")}},
      {"assistant", {ContentItem::make_text("<think>same</think><answer>yes</answer>")}}};
  const Tokenizer& tok = qwen_tokenizer();
  const std::string text = render_chat_text(msgs, false);
  const std::string pad = "<|image_pad|>";
  EXPECT_NE(text.find("user\nCompare <|vision_start|>" + pad + pad + pad + pad +
                      "<|vision_end|> and <|vision_start|>" + pad + pad + "<|vision_end|>.<|im_end|>"),
            std::string::npos);
  const EncodedChat e = apply_chat_template(tok, msgs, false);
  EXPECT_EQ(e.ids, tok.encode(text));
  int pads = 0;
  for (int32_t id : e.ids) pads += id == tok.token_to_id(pad);
  EXPECT_EQ(pads, 6);
  // The trained part decodes to exactly the assistant content plus <|im_end|>.
  EXPECT_EQ(tok.decode(masked_ids(e)), "<think>same</think><answer>yes</answer><|im_end|>");
}

TEST(ChatTemplate, LeadingNewlineOfAnswerIsTrained) {
  // "assistant\n" + "\nHi": HF tokenises the whole stretch ("\n\n" is one token); that token
  // holds a character of the answer, so it is trained (HF return_assistant_tokens_mask rule).
  const std::vector<Message> msgs = {{"user", {ContentItem::make_text("x")}},
                                     {"assistant", {ContentItem::make_text("\nHi")}}};
  const Tokenizer& tok = qwen_tokenizer();
  const EncodedChat e = apply_chat_template(tok, msgs, false);
  EXPECT_EQ(e.ids, tok.encode(render_chat_text(msgs, false)));
  EXPECT_EQ(tok.decode(masked_ids(e)), "\n\nHi<|im_end|>");
}

// A video item renders as Qwen2-VL / Qwen2.5-VL's chat_template.json writes it,
// `{% elif content['type'] == 'video' or 'video' in content %}<|vision_start|><|video_pad|><|vision_end|>`,
// in place among images and text; the processor then repeats <|video_pad|> t*h*w/4 times.
TEST(ChatTemplate, VideoItemsUseVideoPadsInPlace) {
  const std::vector<Message> raw = {
      {"user", {ContentItem::make_image(0), ContentItem::make_video(0), ContentItem::make_text("Same scene?")}}};
  EXPECT_EQ(render_chat_text(raw, true),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            "<|vision_start|><|image_pad|><|vision_end|><|vision_start|><|video_pad|><|vision_end|>Same scene?"
            "<|im_end|>\n<|im_start|>assistant\n");
  const std::vector<Message> expanded = {
      {"user", {ContentItem::make_video(0, 3), ContentItem::make_text("x"), ContentItem::make_video(1, 2)}}};
  const Tokenizer& tok = qwen_tokenizer();
  const EncodedChat e = apply_chat_template(tok, expanded, true);
  EXPECT_EQ(e.ids, tok.encode(render_chat_text(expanded, true)));
  int video_pads = 0, image_pads = 0;
  for (int32_t id : e.ids) {
    video_pads += id == tok.token_to_id("<|video_pad|>");
    image_pads += id == tok.token_to_id("<|image_pad|>");
  }
  EXPECT_EQ(video_pads, 5);
  EXPECT_EQ(image_pads, 0);
  EXPECT_EQ(tok.token_to_id("<|video_pad|>"), 151656);  // Qwen2.5's id (tokenizer fixture)
}

}  // namespace
}  // namespace refract::text
