#include "daemon/serve_web.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <utility>
#include <vector>

#include "acme/certificate_files.h"
#include "acme/https_client.h"

namespace vmctl::daemon {

WebFrontEnd::WebFrontEnd(WebFrontEndOptions options, tls::CertStore& certificates)
    : options_(std::move(options)), certificates_(certificates) {}

WebFrontEnd::~WebFrontEnd() { Stop(); }

Result<std::unique_ptr<WebFrontEnd>> WebFrontEnd::Start(WebFrontEndOptions options,
                                                        tls::CertStore& certificates,
                                                        controller::AuthService& auth,
                                                        controller::SharingService& sharing) {
  std::unique_ptr<WebFrontEnd> web(new WebFrontEnd(std::move(options), certificates));
  const WebFrontEndOptions& o = web->options_;
  VMCTL_ASSIGN_OR_RETURN(
      web->gatekeeper_,
      proxy::Gatekeeper::Create(
          {.domain = o.domain, .web_url = o.web_url, .ssh_command = o.ssh_command}, auth, sharing));
  if (o.acme) {
    VMCTL_TRY(web->PrepareAcme());
  } else {
    spdlog::info(
        "tls: custom domains get no certificate from the local CA (it may vouch for {} only); "
        "serving them needs ACME (--acme-directory)",
        o.domain);
  }
  proxy::ProxyOptions proxy_options = o.proxy;
  proxy_options.domain = o.domain;
  proxy_options.ssh_command = o.ssh_command;
  tls::CertificateSource& source = web->custom_domains_
                                       ? static_cast<tls::CertificateSource&>(*web->custom_domains_)
                                       : certificates;
  web->proxy_ = std::make_unique<proxy::Server>(std::move(proxy_options), source, *web->gatekeeper_,
                                                &web->answers_);
  if (auto started = web->proxy_->Start(); !started.ok()) {
    return started.error().WithContext("starting the HTTPS proxy");
  }
  if (web->renewer_) web->renewer_->Start();
  if (web->custom_domains_) web->custom_domains_->Start();
  return web;
}

Result<void> WebFrontEnd::PrepareAcme() {
  const acme::AcmeOptions& a = *options_.acme;
  auto https = acme::HttpsClient::Create({.ca_bundle = a.ca_bundle});
  if (!https.ok()) return https.error().WithContext("--acme-ca-bundle");
  auto custom_https = acme::HttpsClient::Create({.ca_bundle = a.ca_bundle});
  if (!custom_https.ok()) return custom_https.error().WithContext("--acme-ca-bundle");
  dns_ = acme::MakeDnsPublisher(a);
  const std::filesystem::path dir = options_.state_dir / "acme";
  const acme::AcmeClientOptions client{
      .directory_url = a.directory_url, .email = a.email, .account_key_path = dir / "account.key"};
  acme_ = std::make_unique<acme::AcmeClient>(
      client, *std::move(https), acme::ChallengeResponders{dns_.get(), &http_challenges_});
  custom_acme_ = std::make_unique<acme::AcmeClient>(
      client, *std::move(custom_https), acme::ChallengeResponders{nullptr, &http_challenges_});
  PrepareDomainRenewer(dir);
  PrepareCustomDomains();
  return Ok();
}

void WebFrontEnd::PrepareDomainRenewer(const std::filesystem::path& dir) {
  const std::vector<std::string> names = {options_.domain, "*." + options_.domain};
  // A certificate from an earlier run is served at once; the renewer replaces it when due.
  std::optional<acme::IssuedCertificate> current;
  if (auto loaded = acme::LoadCertificate(dir, options_.domain); !loaded.ok()) {
    spdlog::warn("acme: the stored certificate is not usable: {}", loaded.error().message());
  } else if (*loaded) {
    current = **loaded;
    if (auto installed = certificates_.Install(names, current->chain_pem, current->key_pem);
        !installed.ok()) {
      spdlog::warn("acme: cannot serve the stored certificate: {}", installed.error().message());
      current.reset();
    } else {
      // Says why no order follows a restart, and when one will.
      using std::chrono::floor, std::chrono::seconds;
      spdlog::info(
          "acme: serving the stored certificate (valid until {:%F %T} UTC, renewal at "
          "{:%F %T} UTC)",
          floor<seconds>(current->not_after),
          floor<seconds>(acme::RenewalTime(current->not_before, current->not_after)));
    }
  }
  renewer_ = std::make_unique<acme::Renewer>(
      [this, names]() {
        return acme_->Issue(names, acme::ChallengeType::kDns01,
                            [](const std::string& line) { spdlog::info("acme: {}", line); });
      },
      [this, dir, names](const acme::IssuedCertificate& cert) {
        if (auto saved = acme::SaveCertificate(dir, options_.domain, cert); !saved.ok()) {
          spdlog::error("acme: cannot store the new certificate: {}", saved.error().message());
        }
        if (auto installed = certificates_.Install(names, cert.chain_pem, cert.key_pem);
            !installed.ok()) {
          spdlog::error("acme: cannot serve the new certificate: {}", installed.error().message());
          return;
        }
        spdlog::info("acme: serving a new certificate for {}", fmt::join(names, ", "));
      },
      clock_, acme::RenewerOptions{}, current);
}

void WebFrontEnd::PrepareCustomDomains() {
  custom_domains_ = std::make_unique<acme::OnDemandCertificates>(
      acme::OnDemandOptions{.domain = options_.domain,
                            .log = [](const std::string& line) { spdlog::info("acme: {}", line); }},
      certificates_,
      [this](const std::string& domain) {
        return custom_acme_->Issue(
            {domain}, acme::ChallengeType::kHttp01,
            [&](const std::string& line) { spdlog::info("acme: {}: {}", domain, line); });
      },
      options_.domain_vm, clock_);
  if (options_.proxy.http_listen.empty()) {
    spdlog::warn(
        "acme: --http-listen is off: custom domains cannot pass HTTP-01 and get no certificate "
        "(the ACME server validates on port 80 of the address the domain points to)");
  }
}

void WebFrontEnd::Stop() {
  if (renewer_) renewer_->Stop();
  if (custom_domains_) custom_domains_->Stop();
  if (proxy_) proxy_->Stop();
}

std::string WebFrontEnd::Describe() const {
  std::vector<std::string> listeners;
  auto ports = proxy_->https_ports();
  for (size_t i = 0; i < ports.size() && i < options_.proxy.https_listen.size(); ++i) {
    const std::string& address = options_.proxy.https_listen[i];
    listeners.push_back(fmt::format("{}:{}", address.substr(0, address.rfind(':')), ports[i]));
  }
  std::string line =
      fmt::format("HTTPS proxy on {}: {} (VMs at https://VM.{}), certificates from {}",
                  fmt::join(listeners, ", "), options_.web_url, options_.domain,
                  options_.acme ? options_.acme->directory_url : "the local CA");
  if (proxy_->http_port() != 0) line += fmt::format("; plain HTTP on port {}", proxy_->http_port());
  return line;
}

}  // namespace vmctl::daemon
