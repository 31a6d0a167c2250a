// Unit checks of the tokenizer's pieces against hand-computed cases (Unicode tables, Rust's
// from_utf8_lossy documentation, the GPT-2 byte alphabet).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "text/byte_level.h"
#include "text/bpe.h"
#include "text/nfc.h"
#include "text/pre_tokenizer.h"
#include "text/utf8.h"

namespace refract::text {
namespace {

TEST(Utf8Lossy, ReplacesMaximalSubpartsLikeRust) {
  // Rust docs: b"Hello \xF0\x90\x80World" -> "Hello �World" (one U+FFFD for the cut 4-byte seq).
  EXPECT_EQ(utf8_lossy("Hello \xF0\x90\x80World"), "Hello \xEF\xBF\xBDWorld");
  // C0 can never start a sequence; 80 is a lone continuation: two replacements.
  EXPECT_EQ(utf8_lossy("\xC0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  // ED A0 80 would be a surrogate: ED alone is the maximal subpart, then A0, then 80.
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  // Above U+10FFFF: F4 90 .. -> four replacements.
  EXPECT_EQ(utf8_lossy("\xF4\x90\x80\x80"), std::string(4 * 3, '\0').replace(0, 12, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"));
  // A truncated 3-byte sequence followed by ASCII.
  EXPECT_EQ(utf8_lossy("\xE2\x82" "A"), "\xEF\xBF\xBD" "A");
  EXPECT_EQ(utf8_lossy("\xE2\x82\xAC"), "\xE2\x82\xAC");  // EURO SIGN intact
  EXPECT_TRUE(utf8_is_valid("\xE2\x82\xAC"));
  EXPECT_FALSE(utf8_is_valid("\xED\xA0\x80"));
}

TEST(Nfc, ComposesWithUnicode9TablesOnly) {
  EXPECT_EQ(nfc_unicode9("e\xCC\x81"), "\xC3\xA9");                  // e + U+0301 -> U+00E9
  EXPECT_EQ(nfc_unicode9("\xE1\x84\x80\xE1\x85\xA1"), "\xEA\xB0\x80");  // Hangul L+V -> U+AC00
  // U+0301 (ccc 230) + U+0323 (ccc 220): canonical reordering, then a + U+0323 -> U+1EA1.
  EXPECT_EQ(nfc_unicode9("a\xCC\x81\xCC\xA3"), "\xE1\xBA\xA1\xCC\x81");
  // README point 2: x + U+0301 + U+1DF9 (Unicode 10, ccc 220) stays as is under 9.0 tables;
  // a Unicode 15 normaliser would put U+1DF9 first.
  const std::string kept = "x\xCC\x81\xE1\xB7\xB9";
  EXPECT_EQ(nfc_unicode9(kept), kept);
  EXPECT_EQ(nfc_unicode9("plain ascii"), "plain ascii");
}

TEST(PreTokenizer, WhiteSpaceIsOnigurumaWhiteSpace) {
  // \s = White_Space: U+0085 yes; U+200B, U+FEFF, U+180E no.
  RegexSplitter split(R"(\s+)");
  std::vector<std::string_view> pieces;
  const std::string text = "a\xC2\x85" "b\xE2\x80\x8B" "c\xEF\xBB\xBF" "d\xE1\xA0\x8E" "e";
  split.split(text, pieces);
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[0], "a");
  EXPECT_EQ(pieces[1], "\xC2\x85");
  EXPECT_EQ(pieces[2], "b\xE2\x80\x8B" "c\xEF\xBB\xBF" "d\xE1\xA0\x8E" "e");
}

TEST(PreTokenizer, IsolatedKeepsGapsAndMatches) {
  RegexSplitter split(R"(\p{N})");
  std::vector<std::string_view> pieces;
  split.split("ab12c", pieces);
  EXPECT_EQ(pieces, (std::vector<std::string_view>{"ab", "1", "2", "c"}));
}

TEST(ByteLevel, Gpt2Alphabet) {
  const auto& t = byte_to_char();
  EXPECT_EQ(t[' '], 0x120u);  // 'Ġ'
  EXPECT_EQ(t['\n'], 0x10Au);  // 'Ċ'
  EXPECT_EQ(t['A'], static_cast<char32_t>('A'));
  EXPECT_EQ(t[0xAD], 0x143u);  // soft hyphen is remapped (last of the 68)
  EXPECT_EQ(byte_level_encode(" \n"), "\xC4\xA0\xC4\x8A");
  EXPECT_EQ(byte_level_decode("\xC4\xA0hi"), " hi");
  EXPECT_EQ(byte_level_decode(" <x>"), " <x>");  // plain space: not in the alphabet -> as is
}

TEST(Bpe, MergesByRankLeftmostFirst) {
  // Vocab: a=0 b=1 c=2, ab=3, bc=4, abc=5. Merges: (b,c) rank 0, (a,b) rank 1, (a,bc) rank 2.
  std::vector<std::string> vocab = {"a", "b", "c", "ab", "bc", "abc"};
  BpeModel bpe(vocab, {{1, 2}, {0, 1}, {0, 4}});
  EXPECT_EQ(bpe.merge_word("abc"), (std::vector<int32_t>{5}));      // bc first, then a+bc
  EXPECT_EQ(bpe.merge_word("abab"), (std::vector<int32_t>{3, 3}));
  EXPECT_EQ(bpe.merge_word("bcbc"), (std::vector<int32_t>{4, 4}));
  EXPECT_EQ(bpe.merge_word("cab"), (std::vector<int32_t>{2, 3}));
  // "aaa" with only (a,a): the leftmost pair merges first.
  BpeModel aa({"a", "aa"}, {{0, 0}});
  EXPECT_EQ(aa.merge_word("aaa"), (std::vector<int32_t>{1, 0}));
}

}  // namespace
}  // namespace refract::text
