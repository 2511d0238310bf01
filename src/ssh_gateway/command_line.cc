#include "ssh_gateway/command_line.h"

#include "ssh_gateway/text.h"

namespace vmctl::ssh_gateway {

Result<std::vector<std::string>> SplitCommandLine(std::string_view line) {
  if (line.size() > kMaxCommandLine) {
    return InvalidArgument("command too long (at most " + std::to_string(kMaxCommandLine) +
                           " bytes)");
  }
  VMCTL_TRY(ValidateText(line, "the command", true));
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quote == '\'') {
      if (c == '\'') {
        quote = 0;
      } else {
        word += c;
      }
    } else if (quote == '"') {
      if (c == '"') {
        quote = 0;
      } else if (c == '\\' && i + 1 < line.size() &&
                 std::string_view("\"\\$`").find(line[i + 1]) != std::string_view::npos) {
        word += line[++i];
      } else {
        word += c;
      }
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else {
      in_word = true;
      if (c == '\'' || c == '"') {
        quote = c;
      } else if (c == '\\' && i + 1 < line.size()) {
        word += line[++i];
      } else {
        word += c;
      }
    }
  }
  if (quote != 0) return InvalidArgument(std::string("unterminated ") + quote + " quote");
  if (in_word) words.push_back(std::move(word));
  return words;
}

}  // namespace vmctl::ssh_gateway
