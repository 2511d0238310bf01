#ifndef VMCTL_DAEMON_SERVE_WEB_H_
#define VMCTL_DAEMON_SERVE_WEB_H_

// Internal to the daemon: the HTTPS front end's parts and the order they are built and stopped
// in (serve_web.cc).

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "acme/client.h"
#include "acme/http_challenges.h"
#include "acme/on_demand.h"
#include "acme/options.h"
#include "acme/renewal.h"
#include "base/result.h"
#include "controller/auth_service.h"
#include "controller/sharing_service.h"
#include "proxy/acme_challenges.h"
#include "proxy/gatekeeper.h"
#include "proxy/server.h"
#include "tls/cert_store.h"

namespace vmctl::daemon {

struct WebFrontEndOptions {
  std::filesystem::path state_dir;
  std::string domain;       // DOMAIN: VMs are VM.DOMAIN
  std::string web_url;      // where browsers reach DOMAIN
  std::string ssh_command;  // how users reach the gateway, for the pages' hints
  proxy::ProxyOptions proxy;
  std::optional<acme::AcmeOptions> acme;  // nullopt: the local CA's certificate
  // The id of the VM a custom domain is registered to, nullopt for none (from the store): which
  // VM's order budget a custom domain's certificate spends.
  acme::OnDemandCertificates::VmOf domain_vm;
};

// The HTTPS proxy with its Gatekeeper, and, when ACME is configured, the renewal that keeps
// DOMAIN's certificate in `certificates` (DNS-01) and the custom domains' certificates obtained
// on first use (HTTP-01 through the plain-HTTP listener). Does not own the certificate store or the
// services, which must outlive it. Stop() (and destruction) stops the renewal, then the proxy, and
// waits for both.
class WebFrontEnd {
 public:
  // Starts listening and, with ACME, renewing. kInvalidArgument (bad options), kUnavailable
  // (an address in use).
  static Result<std::unique_ptr<WebFrontEnd>> Start(WebFrontEndOptions options,
                                                    tls::CertStore& certificates,
                                                    controller::AuthService& auth,
                                                    controller::SharingService& sharing);
  ~WebFrontEnd();
  WebFrontEnd(const WebFrontEnd&) = delete;
  WebFrontEnd& operator=(const WebFrontEnd&) = delete;

  void Stop();
  // One line for the daemon's start-up message.
  std::string Describe() const;

 private:
  // The plain-HTTP listener answers ACME HTTP-01 challenges from the client's table.
  class ChallengeAnswers final : public proxy::AcmeHttpChallenges {
   public:
    explicit ChallengeAnswers(acme::HttpChallenges& table) : table_(table) {}
    std::optional<std::string> KeyAuthorization(std::string_view token) override {
      return table_.Lookup(token);
    }

   private:
    acme::HttpChallenges& table_;
  };

  WebFrontEnd(WebFrontEndOptions options, tls::CertStore& certificates);
  // The clients and the renewers, not yet running (they need the proxy's HTTP-01 answers).
  Result<void> PrepareAcme();
  void PrepareDomainRenewer(const std::filesystem::path& dir);
  void PrepareCustomDomains();

  WebFrontEndOptions options_;
  tls::CertStore& certificates_;
  acme::HttpChallenges http_challenges_;
  ChallengeAnswers answers_{http_challenges_};
  std::unique_ptr<proxy::Gatekeeper> gatekeeper_;
  std::unique_ptr<proxy::Server> proxy_;
  std::unique_ptr<acme::DnsPublisher> dns_;
  std::unique_ptr<acme::AcmeClient> acme_;
  acme::SystemClock clock_;
  std::unique_ptr<acme::Renewer> renewer_;
  // Its own client: AcmeClient runs one order at a time, and a custom domain's first use should
  // not wait behind DOMAIN's DNS-01 renewal.
  std::unique_ptr<acme::AcmeClient> custom_acme_;
  std::unique_ptr<acme::OnDemandCertificates> custom_domains_;
};

}  // namespace vmctl::daemon

#endif  // VMCTL_DAEMON_SERVE_WEB_H_
