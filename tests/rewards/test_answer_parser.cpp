// Answer parsing: tags, lenient JSON, boxes, numbers, options, yes/no (hand-written inputs
// modelled on the reference projects' outputs).
#include <gtest/gtest.h>

#include "rewards/answer_parser.h"

using namespace refract::rewards;

TEST(AnswerParser, TagsFirstAnswerAndMissingClose) {
  EXPECT_EQ(*extract_answer("<think>x</think><answer>A</answer><answer>B</answer>"), "A");
  EXPECT_EQ(*extract_answer("<answer> [1, 2"), " [1, 2");  // Visual-RFT: read to the end
  EXPECT_FALSE(extract_answer("no tags").has_value());
  EXPECT_EQ(*extract_think("<think>a\nb</think>"), "a\nb");
  EXPECT_EQ(answer_or_text("  plain  "), "plain");
}

TEST(AnswerParser, JsonFencesSingleQuotesTrailingCommas) {
  auto j = parse_json_lenient("```json\n[{'bbox_2d': [1, 2, 3, 4], 'label': 'cat',},]\n```");
  ASSERT_TRUE(j);
  ASSERT_TRUE(j->is_array());
  ASSERT_EQ(j->size(), 1u);
  EXPECT_EQ((*j)[0]["label"], "cat");
  EXPECT_EQ((*j)[0]["bbox_2d"][3], 4);
}

TEST(AnswerParser, TruncatedListKeepsCompleteObjects) {
  auto j = parse_json_lenient(
      R"([{"bbox_2d": [1, 2, 3, 4], "label": "a"}, {"bbox_2d": [5, 6, 7, 8], "label": "b"}, {"bbox_2d": [9, 1)");
  ASSERT_TRUE(j);
  ASSERT_EQ(j->size(), 2u);
  EXPECT_EQ((*j)[1]["label"], "b");
}

TEST(AnswerParser, PythonLiteralsAndApostrophes) {
  auto j = parse_json_lenient(R"({"label": "dog's toy", "ok": True, "x": None})");
  ASSERT_TRUE(j);
  EXPECT_EQ((*j)["label"], "dog's toy");
  EXPECT_EQ((*j)["ok"], true);
  EXPECT_TRUE((*j)["x"].is_null());
}

TEST(AnswerParser, Boxes) {
  auto b = find_boxes("box [10, 20.5, 30, 40] and [1,2,3,4]");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_DOUBLE_EQ(b[0].y1, 20.5);
  // VLM-R1's pattern: integers, no space after '[' -> the float box is skipped.
  auto i = first_int_box("[1.5, 2, 3, 4] then [ 5, 6, 7, 8] then [10,20, 30,40]");
  ASSERT_TRUE(i);
  EXPECT_DOUBLE_EQ(i->x1, 10);
  EXPECT_DOUBLE_EQ(i->y2, 40);
}

TEST(AnswerParser, FindBoxesReadsQwen2VLCornerPairsOnlyWithoutBrackets) {
  auto b = find_boxes("cat(1,2),(3, 4) dog (5,6), (7,8)");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].x1, 1);
  EXPECT_EQ(b[0].y2, 4);
  EXPECT_EQ(b[1].x1, 5);
  EXPECT_EQ(b[1].y2, 8);
  // A [x1, y1, x2, y2] box present: corner pairs are not read.
  auto c = find_boxes("[9, 9, 10, 10] and (1,2),(3,4)");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].x1, 9);
  EXPECT_TRUE(find_boxes("(1,2) only one corner").empty());
}

TEST(AnswerParser, DetItemsFromQwen25Json) {
  auto d = parse_det_items(
      R"([{"bbox_2d": [1, 2, 3, 4], "label": "cat", "confidence": 0.7}, {"bbox_2d": [1, 2], "label": "bad"}])");
  EXPECT_TRUE(d.parsed);
  EXPECT_EQ(d.entries, 2u);
  ASSERT_EQ(d.items.size(), 1u);
  EXPECT_EQ(d.items[0].label, "cat");
  EXPECT_DOUBLE_EQ(*d.items[0].confidence, 0.7);
}

TEST(AnswerParser, Qwen2BoxTokens) {
  auto d = parse_det_items(
      "<|object_ref_start|>the dog<|object_ref_end|><|box_start|>(100,200),(300,400)<|box_end|>");
  ASSERT_EQ(d.items.size(), 1u);
  EXPECT_EQ(d.items[0].label, "the dog");
  EXPECT_DOUBLE_EQ(d.items[0].box.x2, 300);
  EXPECT_DOUBLE_EQ(d.items[0].box.y2, 400);
}

TEST(AnswerParser, Numbers) {
  EXPECT_DOUBLE_EQ(*parse_number("There are 12 cars"), 12);
  EXPECT_DOUBLE_EQ(*parse_number("-2.5 degrees"), -2.5);
  EXPECT_DOUBLE_EQ(*parse_number("1,024 pixels"), 1024);
  EXPECT_DOUBLE_EQ(*parse_number("1, 2"), 1);
  EXPECT_FALSE(parse_number("none").has_value());
}

TEST(AnswerParser, OptionLetters) {
  EXPECT_EQ(*parse_option_letter("B"), 'B');
  EXPECT_EQ(*parse_option_letter("The answer is C."), 'C');
  EXPECT_FALSE(parse_option_letter("no letter here").has_value());
  // Two candidates "A." and "D.": D is in the last 30% (+2) and followed by '.' (+1);
  // A gets +1 for '.', and "ANSWER" is not upper-case in the text -> D wins.
  EXPECT_EQ(*parse_option_letter("A. is wrong, so D."), 'D');
}

TEST(AnswerParser, YesNoWholeWords) {
  EXPECT_EQ(*parse_yes_no("Yes, it is."), "yes");
  EXPECT_EQ(*parse_yes_no("I do not know. No."), "no");
  EXPECT_FALSE(parse_yes_no("nothing").has_value());
}

TEST(AnswerParser, CleanTextLikeVlmR1) {
  EXPECT_EQ(clean_text("<answer>first</answer> <answer> The Cat.\nSat. </answer>"), "the cat. sat");
}
