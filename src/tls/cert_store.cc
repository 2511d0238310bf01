#include "tls/cert_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <set>
#include <system_error>

#include "base/ascii.h"
#include "base/io.h"
#include "tls/durable_file.h"
#include "tls/names.h"
#include "tls/server_context.h"

namespace vmctl::tls {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;

std::string FormatTime(Clock::time_point t) {
  std::time_t tt = Clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

}  // namespace

bool CertificateInfo::NeedsRenewal(Clock::time_point now) const {
  return now >= not_after - (not_after - not_before) / 3;
}

Result<std::unique_ptr<CertStore>> CertStore::Open(fs::path dir, std::string default_name) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Internal("create " + dir.string() + ": " + ec.message());
  if (::chmod(dir.c_str(), 0700) != 0) return ErrnoError("chmod " + dir.string(), errno);
  std::unique_ptr<CertStore> store(new CertStore(dir, std::move(default_name)));
  std::vector<fs::path> certs;
  for (const auto& file : fs::directory_iterator(dir, ec)) {
    const fs::path& path = file.path();
    if (path.filename().string().find(".tmp.") != std::string::npos) {
      fs::remove(path, ec);  // an Install that stopped before its rename
    } else if (path.extension() == ".crt") {
      certs.push_back(path);
    }
  }
  if (ec) return Internal("read " + dir.string() + ": " + ec.message());
  std::sort(certs.begin(), certs.end());
  for (const fs::path& crt : certs) store->LoadFile(crt);
  return store;
}

void CertStore::LoadFile(const fs::path& crt) {
  auto entry = [&]() -> Result<std::shared_ptr<const Entry>> {
    VMCTL_ASSIGN_OR_RETURN(std::string chain_pem, ReadFile(crt));
    VMCTL_ASSIGN_OR_RETURN(std::string key_pem, ReadFile(fs::path(crt).replace_extension(".key")));
    return Prepare(chain_pem, key_pem);
  }();
  if (!entry.ok()) {
    problems_.push_back(crt.string() + ": " + entry.error().message() + "; skipped");
    return;
  }
  const CertificateInfo& info = (*entry)->info;
  std::lock_guard lock(mu_);
  for (const std::string& name : info.names) {
    // Two files for one name (an old custom-domain certificate and a newer wildcard): the one
    // valid longest wins.
    auto& slot = by_name_[name];
    if (slot && slot->info.not_after > info.not_after) {
      problems_.push_back(crt.string() + ": " + name + " is served from a newer certificate");
      continue;
    }
    slot = *entry;
  }
}

Result<std::shared_ptr<const CertStore::Entry>> CertStore::Prepare(std::string_view chain_pem,
                                                                   std::string_view key_pem) {
  VMCTL_ASSIGN_OR_RETURN(std::vector<UniqueX509> chain, ParseCertificateChain(chain_pem));
  VMCTL_ASSIGN_OR_RETURN(UniquePkey key, ParsePrivateKey(key_pem));
  X509* leaf = chain.front().get();
  CertificateInfo info{DnsNames(leaf), tls::NotBefore(leaf), tls::NotAfter(leaf)};
  if (info.not_after <= Clock::now()) {
    return InvalidArgument("the certificate expired on " + FormatTime(info.not_after));
  }
  std::erase_if(info.names, [](const std::string& n) { return !ValidateCertificateName(n).ok(); });
  if (info.names.empty()) return InvalidArgument("the certificate names no usable DNS name");
  VMCTL_ASSIGN_OR_RETURN(SharedSslCtx ctx, NewServerContext(chain, key.get()));
  return std::make_shared<const Entry>(Entry{std::move(ctx), std::move(info)});
}

Result<void> CertStore::Install(const std::vector<std::string>& names, std::string_view chain_pem,
                                std::string_view key_pem) {
  if (names.empty()) return InvalidArgument("a certificate needs at least one name");
  for (const std::string& name : names) VMCTL_TRY(ValidateCertificateName(name));
  VMCTL_ASSIGN_OR_RETURN(std::shared_ptr<const Entry> entry, Prepare(chain_pem, key_pem));
  for (const std::string& name : names) {
    if (std::find(entry->info.names.begin(), entry->info.names.end(), name) ==
        entry->info.names.end()) {
      return InvalidArgument("the certificate does not cover " + name);
    }
  }
  std::lock_guard install_lock(install_mu_);
  fs::path stem = dir_ / FileStem(names.front());
  // Key first: a crash between the two renames leaves a pair that does not match, which the next
  // Open reports and skips, rather than a certificate served with the wrong key.
  VMCTL_TRY(WriteFileDurably(fs::path(stem).concat(".key"), key_pem, 0600));
  VMCTL_TRY(WriteFileDurably(fs::path(stem).concat(".crt"), chain_pem, 0600));
  Register(entry);
  return Ok();
}

void CertStore::Register(const std::shared_ptr<const Entry>& entry) {
  std::lock_guard lock(mu_);
  for (const std::string& name : entry->info.names) by_name_[name] = entry;
}

std::shared_ptr<const CertStore::Entry> CertStore::Find(std::string_view server_name) const {
  std::string name = server_name.empty() ? default_name_ : LowercaseAscii(server_name);
  // A literal "*" in SNI names no host; it must not pick a wildcard entry by its key.
  if (name.find('*') != std::string::npos) return nullptr;
  std::string wildcard = WildcardFor(name);
  std::lock_guard lock(mu_);
  if (auto it = by_name_.find(name); it != by_name_.end()) return it->second;
  if (auto it = by_name_.find(wildcard); !wildcard.empty() && it != by_name_.end()) {
    return it->second;
  }
  return nullptr;
}

std::shared_ptr<SSL_CTX> CertStore::ForServerName(std::string_view server_name) {
  auto entry = Find(server_name);
  return entry ? entry->ctx : nullptr;
}

std::optional<CertificateInfo> CertStore::Lookup(std::string_view server_name) const {
  auto entry = Find(server_name);
  if (!entry) return std::nullopt;
  return entry->info;
}

std::optional<Clock::time_point> CertStore::NotAfter(std::string_view server_name) const {
  auto entry = Find(server_name);
  if (!entry) return std::nullopt;
  return entry->info.not_after;
}

std::vector<CertificateInfo> CertStore::Certificates() const {
  std::set<const Entry*> seen;
  std::vector<CertificateInfo> all;
  std::lock_guard lock(mu_);
  for (const auto& [name, entry] : by_name_) {
    if (seen.insert(entry.get()).second) all.push_back(entry->info);
  }
  return all;
}

std::vector<CertificateInfo> CertStore::NeedingRenewal(Clock::time_point now) const {
  std::vector<CertificateInfo> due = Certificates();
  std::erase_if(due, [&](const CertificateInfo& info) { return !info.NeedsRenewal(now); });
  return due;
}

Result<void> CertStore::Remove(std::string_view first_name) {
  std::lock_guard install_lock(install_mu_);
  {
    std::lock_guard lock(mu_);
    auto it = by_name_.find(first_name);
    if (it == by_name_.end()) return NotFound("no certificate for " + std::string(first_name));
    const Entry* entry = it->second.get();
    std::erase_if(by_name_, [&](const auto& slot) { return slot.second.get() == entry; });
  }
  fs::path stem = dir_ / FileStem(first_name);
  std::error_code ec;
  // The certificate first: a crash in between leaves a key without a chain, which Open ignores.
  for (const char* extension : {".crt", ".key"}) {
    fs::path file = fs::path(stem).concat(extension);
    if (!fs::remove(file, ec) && ec)
      return Internal("remove " + file.string() + ": " + ec.message());
  }
  return Ok();
}

}  // namespace vmctl::tls
