#include "acme/hook_publisher.h"

#include <string>

#include "base/process.h"

namespace vmctl::acme {

Result<void> HookPublisher::Add(std::string_view name, std::string_view value) {
  return Run("add", name, value);
}

Result<void> HookPublisher::Remove(std::string_view name, std::string_view value) {
  return Run("del", name, value);
}

Result<void> HookPublisher::Run(std::string_view op, std::string_view name,
                                std::string_view value) {
  RunOptions options;
  options.timeout = timeout_;
  std::string what = "DNS hook " + command_.string() + " " + std::string(op);
  VMCTL_ASSIGN_OR_RETURN(RunOutput out, RunCommand({command_.string(), std::string(op),
                                                    std::string(name), std::string(value)},
                                                   options)
                                            .WithContext(what));
  if (out.exit_code != 0) {
    std::string err = out.err.size() > 400 ? out.err.substr(out.err.size() - 400) : out.err;
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    return Unavailable(what + " failed (exit " + std::to_string(out.exit_code) + ")" +
                       (err.empty() ? "" : ": " + err));
  }
  return Ok();
}

}  // namespace vmctl::acme
