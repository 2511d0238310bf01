#ifndef VMCTL_CONTROLLER_MAILER_H_
#define VMCTL_CONTROLLER_MAILER_H_

#include <string>

#include "base/result.h"

namespace vmctl::controller {

// One plain-text mail to one recipient.
struct Mail {
  std::string to;  // a NormalizeEmail'd address
  std::string subject;
  std::string body;  // lines separated by "\n"
};

// Sends mail (the registration service's verification codes). The SMTP implementation is
// smtp_mailer.h; tests use a fake.
//
// Threading: implementations are thread-safe; Send blocks until the mail is handed over.
// Errors: kUnavailable (the server cannot be reached or refused the mail, with its reply),
// kDeadlineExceeded (it stopped answering), kInvalidArgument (an address it cannot carry).
class Mailer {
 public:
  virtual ~Mailer() = default;
  virtual Result<void> Send(const Mail& mail) = 0;
};

}  // namespace vmctl::controller

#endif  // VMCTL_CONTROLLER_MAILER_H_
