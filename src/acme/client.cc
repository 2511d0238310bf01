#include "acme/client.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <charconv>
#include <ctime>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>

#include "base/io.h"

namespace vmctl::acme {
namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr int kNonceRetries = 3;
constexpr std::string_view kPemChain = "application/pem-certificate-chain";

Result<AccountKey> LoadOrCreateKey(const std::filesystem::path& path, const Progress& progress) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    VMCTL_ASSIGN_OR_RETURN(std::string pem, ReadFile(path));
    return AccountKey::FromPem(pem).WithContext(path.string());
  }
  progress("creating the ACME account key " + path.string());
  VMCTL_ASSIGN_OR_RETURN(AccountKey key, AccountKey::Generate());
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) return Internal("creating " + path.parent_path().string() + ": " + ec.message());
  ::chmod(path.parent_path().c_str(), 0700);
  VMCTL_TRY(WriteFileAtomic(path, key.ToPem(), 0600));
  return key;
}

}  // namespace

std::optional<std::chrono::seconds> ParseRetryAfter(std::string_view value,
                                                    std::chrono::system_clock::time_point now) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  // Anything longer is capped: a server asking for more than a day is as good as down, and the
  // cap keeps later conversions to finer units from overflowing.
  constexpr long kMaxSeconds = 24 * 3600;
  long seconds = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec == std::errc() && end == value.data() + value.size() && seconds >= 0) {
    return std::chrono::seconds(std::min(seconds, kMaxSeconds));
  }
  if (ec == std::errc::result_out_of_range &&
      value.find_first_not_of("0123456789") == std::string_view::npos) {
    return std::chrono::seconds(kMaxSeconds);
  }
  // IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
  struct tm tm = {};
  std::string text(value);
  const char* rest = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (rest == nullptr || *rest != '\0') return std::nullopt;
  time_t at = timegm(&tm);
  time_t now_t = std::chrono::system_clock::to_time_t(now);
  if (at <= now_t) return std::chrono::seconds(0);
  return std::chrono::seconds(std::min<time_t>(at - now_t, kMaxSeconds));
}

// One order's state: the challenges it published (removed again when it ends, whatever the
// outcome) and its deadline.
class AcmeClient::Order {
 public:
  Order(AcmeClient& client, const Progress& progress)
      : client_(client),
        progress_(progress),
        deadline_(SteadyClock::now() + client.options_.order_timeout) {}
  ~Order() { Unpublish(); }

  Result<IssuedCertificate> Run(const std::vector<std::string>& names, ChallengeType type);

 private:
  Result<void> Create(const std::vector<std::string>& names);
  Result<void> Authorize(ChallengeType type);
  Result<void> Publish(const Authorization& authz, const Challenge& challenge);
  void Unpublish();
  // POST-as-GET `url` until `done` says the parsed document is final.
  template <typename T>
  Result<T> PollUntil(const std::string& url, Result<T> (*parse)(std::string_view),
                      const std::function<bool(const T&)>& done, const std::string& what);
  Result<IssuedCertificate> FinalizeAndDownload(const std::vector<std::string>& names);

  AcmeClient& client_;
  const Progress& progress_;
  SteadyClock::time_point deadline_;
  std::string url_;
  acme::Order order_;
  std::vector<std::pair<std::string, std::string>> txt_;  // published (name, value)
  std::vector<std::string> tokens_;                       // published HTTP-01 tokens
};

Result<IssuedCertificate> AcmeClient::Order::Run(const std::vector<std::string>& names,
                                                 ChallengeType type) {
  VMCTL_TRY(Create(names));
  VMCTL_TRY(Authorize(type));
  Unpublish();
  return FinalizeAndDownload(names);
}

Result<void> AcmeClient::Order::Create(const std::vector<std::string>& names) {
  nlohmann::json ids = nlohmann::json::array();
  std::string list;
  for (const std::string& name : names) {
    ids.push_back({{"type", "dns"}, {"value", name}});
    list += (list.empty() ? "" : ", ") + name;
  }
  progress_("creating an order for " + list);
  VMCTL_ASSIGN_OR_RETURN(
      HttpResponse res,
      client_.Post(client_.directory_->new_order, nlohmann::json{{"identifiers", ids}}.dump()));
  url_ = res.Header("location");
  if (res.status != 201 || url_.rfind("https://", 0) != 0) {
    return Unavailable("newOrder answered " + std::to_string(res.status) +
                       " without an https Location");
  }
  VMCTL_ASSIGN_OR_RETURN(order_, ParseOrder(res.body));
  return Ok();
}

Result<void> AcmeClient::Order::Authorize(ChallengeType type) {
  std::string type_name = type == ChallengeType::kDns01 ? "dns-01" : "http-01";
  std::vector<std::pair<std::string, std::string>> pending;  // (authz url, challenge url)
  for (const std::string& authz_url : order_.authorizations) {
    VMCTL_ASSIGN_OR_RETURN(HttpResponse res, client_.Post(authz_url, ""));
    VMCTL_ASSIGN_OR_RETURN(Authorization authz, ParseAuthorization(res.body));
    if (authz.status == "valid") continue;
    if (authz.status != "pending") {
      return FailedPrecondition("authorization for " + authz.identifier.value + " is " +
                                authz.status);
    }
    auto it = std::find_if(authz.challenges.begin(), authz.challenges.end(),
                           [&](const Challenge& c) { return c.type == type_name; });
    if (it == authz.challenges.end() || it->token.empty()) {
      return FailedPrecondition("the server offers no " + type_name + " challenge for " +
                                authz.identifier.value);
    }
    VMCTL_TRY(Publish(authz, *it));
    pending.emplace_back(authz_url, it->url);
  }
  // Every answer is published before any is validated: both names of a wildcard order share
  // one TXT name, and the validator may look while the second value is still missing otherwise.
  for (const auto& [authz_url, challenge_url] : pending) {
    progress_("asking the server to validate " + challenge_url);
    VMCTL_TRY(client_.Post(challenge_url, "{}"));
  }
  for (const auto& [authz_url, challenge_url] : pending) {
    VMCTL_ASSIGN_OR_RETURN(
        Authorization authz,
        PollUntil<Authorization>(
            authz_url, ParseAuthorization,
            [](const Authorization& a) { return a.status != "pending"; }, "authorization"));
    if (authz.status != "valid") {
      std::string reason;
      for (const Challenge& c : authz.challenges) {
        if (c.error) reason = ": " + ProblemError(*c.error, 400).message();
      }
      return FailedPrecondition("validation of " + authz.identifier.value + " failed (" +
                                authz.status + ")" + reason);
    }
    progress_("validated " + std::string(authz.wildcard ? "*." : "") + authz.identifier.value);
  }
  return Ok();
}

Result<void> AcmeClient::Order::Publish(const Authorization& authz, const Challenge& challenge) {
  std::string key_authorization = KeyAuthorization(challenge.token, client_.key_->Thumbprint());
  if (challenge.type == "dns-01") {
    if (client_.responders_.dns == nullptr) return FailedPrecondition("no DNS publisher set up");
    std::string name = "_acme-challenge." + authz.identifier.value;
    std::string value = Dns01TxtValue(key_authorization);
    progress_("publishing TXT " + name + " " + value);
    VMCTL_TRY(client_.responders_.dns->Add(name, value));
    txt_.emplace_back(name, value);
  } else {
    if (client_.responders_.http == nullptr) return FailedPrecondition("no HTTP-01 responder");
    progress_("serving the HTTP-01 answer for " + authz.identifier.value);
    client_.responders_.http->Add(challenge.token, key_authorization);
    tokens_.push_back(challenge.token);
  }
  return Ok();
}

void AcmeClient::Order::Unpublish() {
  for (const auto& [name, value] : txt_) {
    progress_("removing TXT " + name + " " + value);
    if (auto r = client_.responders_.dns->Remove(name, value); !r.ok()) {
      // A stale TXT record is harmless (the next order adds its own value); say so and go on.
      spdlog::warn("acme: {}", r.error().message());
    }
  }
  txt_.clear();
  for (const std::string& token : tokens_) client_.responders_.http->Remove(token);
  tokens_.clear();
}

template <typename T>
Result<T> AcmeClient::Order::PollUntil(const std::string& url, Result<T> (*parse)(std::string_view),
                                       const std::function<bool(const T&)>& done,
                                       const std::string& what) {
  for (;;) {
    VMCTL_ASSIGN_OR_RETURN(HttpResponse res, client_.Post(url, ""));
    VMCTL_ASSIGN_OR_RETURN(T doc, parse(res.body));
    if (done(doc)) return doc;
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
        ParseRetryAfter(res.Header("retry-after"), std::chrono::system_clock::now())
            .value_or(
                std::chrono::duration_cast<std::chrono::seconds>(client_.options_.poll_interval)));
    if (wait <= std::chrono::milliseconds(0)) wait = client_.options_.poll_interval;
    wait = std::min<std::chrono::milliseconds>(wait, std::chrono::minutes(1));
    if (SteadyClock::now() + wait > deadline_) {
      return DeadlineExceeded("the " + what + " at " + url + " is still not done");
    }
    std::this_thread::sleep_for(wait);
  }
}

Result<IssuedCertificate> AcmeClient::Order::FinalizeAndDownload(
    const std::vector<std::string>& names) {
  using acme::Order;
  VMCTL_ASSIGN_OR_RETURN(
      order_, PollUntil<Order>(
                  url_, ParseOrder, [](const Order& o) { return o.status != "pending"; }, "order"));
  if (order_.status != "ready") {
    return FailedPrecondition(
        "the order is " + order_.status + " instead of ready" +
        (order_.error ? ": " + ProblemError(*order_.error, 400).message() : ""));
  }
  progress_("finalizing the order with a new key");
  VMCTL_ASSIGN_OR_RETURN(CsrAndKey csr, MakeCsr(names));
  VMCTL_TRY(client_.Post(order_.finalize, nlohmann::json{{"csr", Base64Url(csr.csr_der)}}.dump()));
  VMCTL_ASSIGN_OR_RETURN(
      order_,
      PollUntil<Order>(
          url_, ParseOrder,
          [](const Order& o) { return o.status != "ready" && o.status != "processing"; }, "order"));
  if (order_.status != "valid" || !order_.certificate) {
    return FailedPrecondition(
        "the order is " + order_.status + " after finalization" +
        (order_.error ? ": " + ProblemError(*order_.error, 400).message() : ""));
  }
  progress_("downloading the certificate");
  VMCTL_ASSIGN_OR_RETURN(HttpResponse res, client_.Post(*order_.certificate, "", kPemChain));
  VMCTL_ASSIGN_OR_RETURN(LeafInfo leaf,
                         ParseChainLeaf(res.body).WithContext("the downloaded certificate"));
  return IssuedCertificate{res.body, csr.key_pem, leaf.not_before, leaf.not_after};
}

AcmeClient::AcmeClient(AcmeClientOptions options, std::unique_ptr<HttpsClient> http,
                       ChallengeResponders responders)
    : options_(std::move(options)), http_(std::move(http)), responders_(responders) {}

AcmeClient::~AcmeClient() = default;

Result<IssuedCertificate> AcmeClient::Issue(const std::vector<std::string>& names,
                                            ChallengeType type, const Progress& progress) {
  if (names.empty()) return InvalidArgument("no names to order a certificate for");
  if (!directory_) {
    progress("fetching the ACME directory " + options_.directory_url);
    VMCTL_ASSIGN_OR_RETURN(HttpResponse res, http_->Request("GET", options_.directory_url));
    if (res.status != 200) {
      return Unavailable("the ACME directory " + options_.directory_url + " answered " +
                         std::to_string(res.status));
    }
    VMCTL_ASSIGN_OR_RETURN(directory_, ParseDirectory(res.body).WithContext("ACME directory"));
  }
  VMCTL_TRY(EnsureAccount(progress));
  Order order(*this, progress);
  return order.Run(names, type);
}

Result<void> AcmeClient::EnsureAccount(const Progress& progress) {
  if (!key_) {
    VMCTL_ASSIGN_OR_RETURN(key_, LoadOrCreateKey(options_.account_key_path, progress));
  }
  if (!account_url_.empty()) return Ok();
  progress("registering or finding the ACME account");
  nlohmann::json payload = {{"termsOfServiceAgreed", true}};
  if (!options_.email.empty()) payload["contact"] = {"mailto:" + options_.email};
  VMCTL_ASSIGN_OR_RETURN(HttpResponse res, Post(directory_->new_account, payload.dump()));
  std::string location = res.Header("location");
  if ((res.status != 200 && res.status != 201) || location.rfind("https://", 0) != 0) {
    return Unavailable("newAccount answered " + std::to_string(res.status) +
                       " without an https Location");
  }
  VMCTL_ASSIGN_OR_RETURN(Account account, ParseAccount(res.body).WithContext("ACME account"));
  if (account.status != "valid") return FailedPrecondition("the ACME account is " + account.status);
  account_url_ = location;
  progress(std::string(res.status == 201 ? "created" : "using") + " account " + account_url_);
  return Ok();
}

Result<void> AcmeClient::RefreshNonce() {
  VMCTL_ASSIGN_OR_RETURN(HttpResponse res, http_->Request("HEAD", directory_->new_nonce));
  nonce_ = res.Header("replay-nonce");
  if (nonce_.empty()) {
    return Unavailable("newNonce answered " + std::to_string(res.status) + " without a nonce");
  }
  return Ok();
}

Result<HttpResponse> AcmeClient::Post(const std::string& url, const std::string& payload,
                                      std::string_view accept) {
  for (int attempt = 0;; ++attempt) {
    Result<HttpResponse> res = PostOnce(url, payload, accept);
    if (res.ok() || attempt == kNonceRetries ||
        res.error().message().find("urn:ietf:params:acme:error:badNonce") == std::string::npos) {
      return res;
    }
  }
}

Result<HttpResponse> AcmeClient::PostOnce(const std::string& url, const std::string& payload,
                                          std::string_view accept) {
  if (nonce_.empty()) VMCTL_TRY(RefreshNonce());
  JwsHeader header{std::exchange(nonce_, ""), url, std::nullopt};
  if (!account_url_.empty()) header.kid = account_url_;
  VMCTL_ASSIGN_OR_RETURN(std::string jws, SignJws(*key_, header, payload));
  VMCTL_ASSIGN_OR_RETURN(HttpResponse res,
                         http_->Request("POST", url, jws, "application/jose+json", accept));
  // Every response carries the next nonce (RFC 8555 section 6.5), errors included.
  nonce_ = res.Header("replay-nonce");
  if (res.status < 400) return res;
  auto problem = ParseProblem(res.body);
  if (!problem.ok()) {
    return Unavailable("POST " + url + " answered " + std::to_string(res.status) +
                       " without a problem document");
  }
  return ProblemError(*problem, res.status);
}

}  // namespace vmctl::acme
