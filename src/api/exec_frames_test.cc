#include "api/exec_frames.h"

#include <gtest/gtest.h>

#include "base/frame.h"

namespace vmctl::api {
namespace {

TEST(ParseExecInputTest, TakesTheFourFrameTypes) {
  auto inputs = DecodeExecInputs(EncodeFrame({{"type", "stdin"}, {"data", "aGk="}}) +
                                 EncodeFrame({{"type", "stdin_close"}}) +
                                 EncodeFrame({{"type", "resize"}, {"rows", 0}, {"cols", 120}}) +
                                 EncodeFrame({{"type", "signal"}, {"signal", 15}}));
  ASSERT_TRUE(inputs.ok()) << inputs.error().message();
  ASSERT_EQ(inputs->size(), 4u);
  EXPECT_EQ((*inputs)[0].data, "hi");
  EXPECT_EQ((*inputs)[1].kind, ExecInput::Kind::kStdinClose);
  EXPECT_EQ((*inputs)[2].cols, 120);
  EXPECT_EQ((*inputs)[3].signal, 15);
}

TEST(ParseExecInputTest, RejectsFramesOfTheWrongShape) {
  struct Case {
    nlohmann::json frame;
    const char* message;
  };
  for (const auto& c : std::vector<Case>{
           {{{"type", 5}}, "string 'type'"},
           {nlohmann::json::object(), "string 'type'"},
           {{{"type", "stdin"}}, "'data'"},
           {{{"type", "stdin"}, {"data", 7}}, "'data'"},
           {{{"type", "stdin"}, {"data", "!"}}, "base64"},
           {{{"type", "resize"}, {"rows", "40"}, {"cols", 80}}, "integer 'rows'"},
           {{{"type", "resize"}, {"rows", 40}, {"cols", 1e9}}, "integer 'cols'"},
           {{{"type", "resize"}, {"rows", -1}, {"cols", 80}}, "(got -1)"},
           {{{"type", "resize"}, {"rows", 40}, {"cols", uint64_t{1} << 63}},
            "(got 9223372036854775808)"},
           {{{"type", "signal"}, {"signal", 0}}, "between 1 and 64 (got 0)"},
           {{{"type", "signal"}}, "integer 'signal'"},
           {{{"type", "reboot"}}, "unknown exec stream frame type 'reboot'"},
       }) {
    auto r = ParseExecInput(c.frame);
    ASSERT_FALSE(r.ok()) << c.frame.dump();
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(c.message), std::string::npos)
        << c.frame.dump() << " -> " << r.error().message();
  }
}

TEST(ExecInputTest, EncodingRoundTrips) {
  std::string bytes;
  for (const ExecInput& input :
       {ExecInput{ExecInput::Kind::kStdin, std::string("a\0b", 3)},
        ExecInput{ExecInput::Kind::kStdinClose}, ExecInput{ExecInput::Kind::kResize, "", 40, 120},
        ExecInput{ExecInput::Kind::kSignal, "", 0, 0, 15}}) {
    bytes += EncodeFrame(EncodeExecInput(input));
  }
  auto inputs = DecodeExecInputs(bytes);
  ASSERT_TRUE(inputs.ok()) << inputs.error().message();
  ASSERT_EQ(inputs->size(), 4u);
  EXPECT_EQ((*inputs)[0].data, std::string("a\0b", 3));
  EXPECT_EQ((*inputs)[1].kind, ExecInput::Kind::kStdinClose);
  EXPECT_EQ((*inputs)[2].rows, 40);
  EXPECT_EQ((*inputs)[2].cols, 120);
  EXPECT_EQ((*inputs)[3].signal, 15);
}

TEST(ExecOutputTest, EncodingRoundTrips) {
  ExecOutput out{ExecOutput::Kind::kStdout, "hello\n"};
  ExecOutput err{ExecOutput::Kind::kStderr, std::string("\xff\0", 2)};
  ExecOutput exit{ExecOutput::Kind::kExit};
  exit.exit_code = 137;
  std::string bytes = EncodeFrame(EncodeExecOutput(out)) + EncodeFrame(EncodeExecOutput(err)) +
                      EncodeFrame(EncodeExecOutput(exit)) +
                      EncodeFrame(EncodeExecOutput(ExecError(NotFound("no VM named 'x'"))));
  auto outputs = DecodeExecOutputs(bytes);
  ASSERT_TRUE(outputs.ok()) << outputs.error().message();
  ASSERT_EQ(outputs->size(), 4u);
  EXPECT_EQ((*outputs)[0].data, "hello\n");
  EXPECT_EQ((*outputs)[1].kind, ExecOutput::Kind::kStderr);
  EXPECT_EQ((*outputs)[1].data, std::string("\xff\0", 2));
  EXPECT_EQ((*outputs)[2].exit_code, 137);
  EXPECT_EQ((*outputs)[3].kind, ExecOutput::Kind::kError);
  EXPECT_EQ((*outputs)[3].code, ErrorCode::kNotFound);
  EXPECT_EQ((*outputs)[3].message, "no VM named 'x'");
  // The wire format is docs/api.md's.
  EXPECT_EQ(EncodeExecOutput(exit), nlohmann::json({{"type", "exit"}, {"code", 137}}));
  EXPECT_EQ(EncodeExecOutput(out),
            nlohmann::json({{"type", "stdout"}, {"data", Base64Encode("hello\n")}}));
}

TEST(ExecOutputTest, RejectsFramesOfTheWrongShape) {
  struct Case {
    nlohmann::json frame;
    const char* message;
  };
  for (const auto& c : std::vector<Case>{
           {nlohmann::json::array(), "string 'type'"},
           {{{"type", "stdout"}}, "'data'"},
           {{{"type", "stderr"}, {"data", "!"}}, "base64"},
           {{{"type", "exit"}}, "integer 'code'"},
           {{{"type", "exit"}, {"code", int64_t{1} << 40}}, "must be between"},
           {{{"type", "error"}, {"code", "not_found"}}, "'message'"},
           {{{"type", "stdin"}, {"data", ""}}, "unknown exec stream frame type 'stdin'"},
       }) {
    auto r = ParseExecOutput(c.frame);
    ASSERT_FALSE(r.ok()) << c.frame.dump();
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(c.message), std::string::npos)
        << c.frame.dump() << " -> " << r.error().message();
  }
}

}  // namespace
}  // namespace vmctl::api
