#include "acme/dns_update.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cctype>
#include <vector>

#include "base/ascii.h"
#include "base/frame.h"

namespace vmctl::acme {
namespace {

constexpr uint16_t kTypeSoa = 6;
constexpr uint16_t kTypeTxt = 16;
constexpr uint16_t kTypeTsig = 250;
constexpr uint16_t kClassIn = 1;
constexpr uint16_t kClassNone = 254;
constexpr uint16_t kClassAny = 255;
constexpr uint16_t kOpcodeUpdate = 5;
constexpr uint16_t kFudge = 300;
constexpr std::string_view kAlgorithm = "hmac-sha256";

// ---- key file ----

struct Tokenizer {
  std::string_view text;
  size_t pos = 0;

  void SkipSpaceAndComments() {
    for (;;) {
      while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos]))) ++pos;
      if (text.substr(pos, 1) == "#" || text.substr(pos, 2) == "//") {
        while (pos < text.size() && text[pos] != '\n') ++pos;
      } else if (text.substr(pos, 2) == "/*") {
        size_t end = text.find("*/", pos + 2);
        pos = end == std::string_view::npos ? text.size() : end + 2;
      } else {
        return;
      }
    }
  }

  // The next token: a word, a quoted string (returned without quotes), or one of "{};".
  // Empty at the end; kInvalidArgument for an unterminated string.
  Result<std::string> Next() {
    SkipSpaceAndComments();
    if (pos >= text.size()) return std::string();
    char c = text[pos];
    if (c == '{' || c == '}' || c == ';') return std::string(1, text[pos++]);
    if (c == '"') {
      size_t end = text.find('"', pos + 1);
      if (end == std::string_view::npos) return InvalidArgument("unterminated string");
      std::string s(text.substr(pos + 1, end - pos - 1));
      pos = end + 1;
      return s;
    }
    size_t start = pos;
    while (pos < text.size() && !std::isspace(static_cast<unsigned char>(text[pos])) &&
           text[pos] != '{' && text[pos] != '}' && text[pos] != ';' && text[pos] != '"') {
      ++pos;
    }
    return std::string(text.substr(start, pos - start));
  }

  Result<void> Expect(std::string_view want) {
    VMCTL_ASSIGN_OR_RETURN(std::string got, Next());
    if (got != want) {
      return InvalidArgument("expected '" + std::string(want) + "', got '" + got + "'");
    }
    return Ok();
  }
};

std::string StripDot(std::string s) {
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

Result<TsigKey> ParseKeyBlock(Tokenizer& t) {
  VMCTL_TRY(t.Expect("key"));
  VMCTL_ASSIGN_OR_RETURN(std::string name, t.Next());
  if (name.empty() || name == "{") return InvalidArgument("the key has no name");
  VMCTL_TRY(t.Expect("{"));
  std::string algorithm, secret;
  for (;;) {
    VMCTL_ASSIGN_OR_RETURN(std::string word, t.Next());
    if (word == "}") break;
    VMCTL_ASSIGN_OR_RETURN(std::string value, t.Next());
    if (word == "algorithm") {
      algorithm = LowercaseAscii(value);
    } else if (word == "secret") {
      secret = value;
    } else {
      return InvalidArgument("unknown key statement '" + word + "'");
    }
    VMCTL_TRY(t.Expect(";"));
  }
  VMCTL_TRY(t.Expect(";"));
  if (algorithm != kAlgorithm) {
    return InvalidArgument("key algorithm must be hmac-sha256, not '" + algorithm + "'");
  }
  VMCTL_ASSIGN_OR_RETURN(std::string decoded, Base64Decode(secret).WithContext("the key's secret"));
  if (decoded.empty()) return InvalidArgument("the key has no secret");
  return TsigKey{LowercaseAscii(StripDot(name)), std::move(decoded)};
}

// ---- wire format ----

void Put16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}
void Put32(std::string& out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v >> 16));
  Put16(out, static_cast<uint16_t>(v));
}
void Put48(std::string& out, uint64_t v) {
  Put16(out, static_cast<uint16_t>(v >> 32));
  Put32(out, static_cast<uint32_t>(v));
}

// Uncompressed wire form of a name given without the trailing dot.
Result<std::string> WireName(std::string_view name) {
  std::string out;
  if (name.empty()) return InvalidArgument("empty DNS name");
  size_t start = 0;
  for (;;) {
    size_t dot = name.find('.', start);
    std::string_view label =
        name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63) {
      return InvalidArgument("bad DNS name '" + std::string(name) + "'");
    }
    out.push_back(static_cast<char>(label.size()));
    out.append(label);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  out.push_back('\0');
  if (out.size() > 255) return InvalidArgument("DNS name too long");
  return out;
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t len = 0;
  EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, sizeof mac,
            &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

// The TSIG variables the MAC covers after the message (RFC 8945 section 4.3.3).
std::string TsigVariables(std::string_view key_wire, std::string_view algorithm_wire,
                          uint64_t time_signed, uint16_t fudge, uint16_t error,
                          std::string_view other) {
  std::string out(key_wire);
  Put16(out, kClassAny);
  Put32(out, 0);
  out.append(algorithm_wire);
  Put48(out, time_signed);
  Put16(out, fudge);
  Put16(out, error);
  Put16(out, static_cast<uint16_t>(other.size()));
  out.append(other);
  return out;
}

struct Reader {
  std::string_view msg;
  size_t pos = 0;

  Result<uint16_t> U16() {
    if (msg.size() - pos < 2) return InvalidArgument("DNS message truncated");
    uint16_t v = static_cast<uint16_t>((static_cast<uint8_t>(msg[pos]) << 8) |
                                       static_cast<uint8_t>(msg[pos + 1]));
    pos += 2;
    return v;
  }
  Result<uint64_t> U48() {
    VMCTL_ASSIGN_OR_RETURN(uint16_t hi, U16());
    VMCTL_ASSIGN_OR_RETURN(uint16_t mid, U16());
    VMCTL_ASSIGN_OR_RETURN(uint16_t lo, U16());
    return (uint64_t{hi} << 32) | (uint64_t{mid} << 16) | lo;
  }
  Result<std::string_view> Bytes(size_t n) {
    if (msg.size() - pos < n) return InvalidArgument("DNS message truncated");
    std::string_view b = msg.substr(pos, n);
    pos += n;
    return b;
  }
  // A name, following compression pointers (bounded, so a loop cannot hang us), lowercased and
  // without the trailing dot.
  Result<std::string> Name() {
    std::string name;
    size_t at = pos;
    bool jumped = false;
    for (int hops = 0;; ++hops) {
      if (at >= msg.size() || hops > 128) return InvalidArgument("bad DNS name");
      uint8_t len = static_cast<uint8_t>(msg[at]);
      if ((len & 0xC0) == 0xC0) {
        if (at + 1 >= msg.size()) return InvalidArgument("bad DNS name");
        if (!jumped) pos = at + 2;
        jumped = true;
        at = ((len & 0x3F) << 8) | static_cast<uint8_t>(msg[at + 1]);
        continue;
      }
      if (len & 0xC0) return InvalidArgument("bad DNS label type");
      if (len == 0) {
        if (!jumped) pos = at + 1;
        return LowercaseAscii(name);
      }
      if (at + 1 + len > msg.size()) return InvalidArgument("bad DNS name");
      if (!name.empty()) name += '.';
      name.append(msg.substr(at + 1, len));
      if (name.size() > 255) return InvalidArgument("DNS name too long");
      at += 1 + len;
    }
  }
  // Skips one resource record's type/class/TTL/RDATA after its name.
  Result<void> SkipRecordBody() {
    VMCTL_TRY(Bytes(8));
    VMCTL_ASSIGN_OR_RETURN(uint16_t rdlength, U16());
    VMCTL_TRY(Bytes(rdlength));
    return Ok();
  }
};

struct Tsig {
  std::string key_name;
  std::string algorithm;
  uint64_t time_signed = 0;
  uint16_t fudge = 0;
  std::string mac;
  uint16_t original_id = 0;
  uint16_t error = 0;
  std::string other;
};

Result<Tsig> ReadTsigRdata(Reader& r, size_t end) {
  Tsig t;
  VMCTL_ASSIGN_OR_RETURN(t.algorithm, r.Name());
  VMCTL_ASSIGN_OR_RETURN(t.time_signed, r.U48());
  VMCTL_ASSIGN_OR_RETURN(t.fudge, r.U16());
  VMCTL_ASSIGN_OR_RETURN(uint16_t mac_size, r.U16());
  VMCTL_ASSIGN_OR_RETURN(std::string_view mac, r.Bytes(mac_size));
  t.mac = std::string(mac);
  VMCTL_ASSIGN_OR_RETURN(t.original_id, r.U16());
  VMCTL_ASSIGN_OR_RETURN(t.error, r.U16());
  VMCTL_ASSIGN_OR_RETURN(uint16_t other_len, r.U16());
  VMCTL_ASSIGN_OR_RETURN(std::string_view other, r.Bytes(other_len));
  t.other = std::string(other);
  if (r.pos != end) return InvalidArgument("TSIG record length mismatch");
  return t;
}

Result<void> VerifyTsig(std::string_view message, size_t tsig_start, const Tsig& t,
                        const TsigKey& key, std::string_view request_mac, uint16_t arcount) {
  if (t.key_name != key.name) return Unauthenticated("response signed with another TSIG key");
  if (t.error != 0) {
    return Unauthenticated("the server rejected our TSIG: " + RcodeName(t.error));
  }
  if (t.algorithm != kAlgorithm) return Unauthenticated("response TSIG is not hmac-sha256");
  std::string data;
  Put16(data, static_cast<uint16_t>(request_mac.size()));
  data.append(request_mac);
  std::string body(message.substr(0, tsig_start));
  body[0] = static_cast<char>(t.original_id >> 8);
  body[1] = static_cast<char>(t.original_id);
  body[10] = static_cast<char>((arcount - 1) >> 8);
  body[11] = static_cast<char>(arcount - 1);
  data += body;
  VMCTL_ASSIGN_OR_RETURN(std::string key_wire, WireName(t.key_name));
  VMCTL_ASSIGN_OR_RETURN(std::string alg_wire, WireName(kAlgorithm));
  data += TsigVariables(key_wire, alg_wire, t.time_signed, t.fudge, t.error, t.other);
  std::string want = HmacSha256(key.secret, data);
  if (t.mac.size() != want.size() || CRYPTO_memcmp(t.mac.data(), want.data(), want.size()) != 0) {
    return Unauthenticated("the response's TSIG signature does not verify");
  }
  return Ok();
}

}  // namespace

Result<TsigKey> ParseTsigKeyFile(std::string_view text) {
  Tokenizer t{text};
  VMCTL_ASSIGN_OR_RETURN(TsigKey key, ParseKeyBlock(t).WithContext("TSIG key file"));
  VMCTL_ASSIGN_OR_RETURN(std::string rest, t.Next());
  if (!rest.empty()) return InvalidArgument("TSIG key file: more than one key");
  return key;
}

Result<SignedUpdate> BuildTxtUpdate(const TxtUpdate& update, uint16_t id, const TsigKey& key,
                                    uint64_t time_signed) {
  std::string zone = LowercaseAscii(StripDot(update.zone));
  std::string name = LowercaseAscii(StripDot(update.name));
  if (name != zone && !(name.size() > zone.size() &&
                        name.compare(name.size() - zone.size(), zone.size(), zone) == 0 &&
                        name[name.size() - zone.size() - 1] == '.')) {
    return InvalidArgument("'" + name + "' is not in zone '" + zone + "'");
  }
  VMCTL_ASSIGN_OR_RETURN(std::string zone_wire, WireName(zone));
  VMCTL_ASSIGN_OR_RETURN(std::string name_wire, WireName(name));
  VMCTL_ASSIGN_OR_RETURN(std::string key_wire, WireName(key.name));
  VMCTL_ASSIGN_OR_RETURN(std::string alg_wire, WireName(kAlgorithm));
  std::string rdata;
  for (size_t i = 0; i < update.value.size() || i == 0; i += 255) {
    std::string_view chunk = std::string_view(update.value).substr(i, 255);
    rdata.push_back(static_cast<char>(chunk.size()));
    rdata.append(chunk);
  }
  if (rdata.size() > 65535) return InvalidArgument("TXT value too long");

  std::string msg;
  Put16(msg, id);
  Put16(msg, kOpcodeUpdate << 11);
  Put16(msg, 1);  // zone
  Put16(msg, 0);  // prerequisites
  Put16(msg, 1);  // updates
  Put16(msg, 0);  // additional, 1 once signed
  msg += zone_wire;
  Put16(msg, kTypeSoa);
  Put16(msg, kClassIn);
  msg += name_wire;
  Put16(msg, kTypeTxt);
  bool add = update.op == UpdateOp::kAdd;
  Put16(msg, add ? kClassIn : kClassNone);
  Put32(msg, add ? update.ttl : 0);
  Put16(msg, static_cast<uint16_t>(rdata.size()));
  msg += rdata;

  std::string mac =
      HmacSha256(key.secret, msg + TsigVariables(key_wire, alg_wire, time_signed, kFudge, 0, ""));
  std::string tsig_rdata = alg_wire;
  Put48(tsig_rdata, time_signed);
  Put16(tsig_rdata, kFudge);
  Put16(tsig_rdata, static_cast<uint16_t>(mac.size()));
  tsig_rdata += mac;
  Put16(tsig_rdata, id);
  Put16(tsig_rdata, 0);  // error
  Put16(tsig_rdata, 0);  // other length
  msg += key_wire;
  Put16(msg, kTypeTsig);
  Put16(msg, kClassAny);
  Put32(msg, 0);
  Put16(msg, static_cast<uint16_t>(tsig_rdata.size()));
  msg += tsig_rdata;
  msg[11] = 1;  // ARCOUNT
  return SignedUpdate{std::move(msg), std::move(mac)};
}

Result<UpdateResponse> ParseUpdateResponse(std::string_view message, const TsigKey* key,
                                           std::string_view request_mac) {
  Reader r{message};
  UpdateResponse resp;
  VMCTL_ASSIGN_OR_RETURN(resp.id, r.U16());
  VMCTL_ASSIGN_OR_RETURN(uint16_t flags, r.U16());
  if (!(flags & 0x8000)) return InvalidArgument("DNS message is not a response");
  if (((flags >> 11) & 0xF) != kOpcodeUpdate) return InvalidArgument("not an UPDATE response");
  resp.truncated = flags & 0x0200;
  resp.rcode = flags & 0xF;
  uint16_t counts[4];
  for (uint16_t& count : counts) {
    VMCTL_ASSIGN_OR_RETURN(count, r.U16());
  }
  for (uint16_t i = 0; i < counts[0]; ++i) {
    VMCTL_TRY(r.Name());
    VMCTL_TRY(r.Bytes(4));
  }
  for (uint32_t i = 0; i < uint32_t{counts[1]} + counts[2]; ++i) {
    VMCTL_TRY(r.Name());
    VMCTL_TRY(r.SkipRecordBody());
  }
  for (uint16_t i = 0; i < counts[3]; ++i) {
    size_t start = r.pos;
    VMCTL_ASSIGN_OR_RETURN(std::string owner, r.Name());
    VMCTL_ASSIGN_OR_RETURN(uint16_t type, r.U16());
    if (type != kTypeTsig || i + 1 != counts[3]) {
      r.pos -= 2;
      VMCTL_TRY(r.SkipRecordBody());
      continue;
    }
    VMCTL_TRY(r.Bytes(6));  // class, TTL
    VMCTL_ASSIGN_OR_RETURN(uint16_t rdlength, r.U16());
    if (message.size() - r.pos < rdlength) return InvalidArgument("DNS message truncated");
    VMCTL_ASSIGN_OR_RETURN(Tsig tsig, ReadTsigRdata(r, r.pos + rdlength));
    tsig.key_name = owner;
    if (key != nullptr) {
      VMCTL_TRY(VerifyTsig(message, start, tsig, *key, request_mac, counts[3]));
      resp.signed_ok = true;
    }
  }
  if (r.pos != message.size()) return InvalidArgument("trailing bytes after the DNS message");
  return resp;
}

std::string RcodeName(int rcode) {
  static const char* const kNames[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
                                       "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
                                       "NXRRSET", "NOTAUTH", "NOTZONE"};
  if (rcode >= 0 && rcode < static_cast<int>(std::size(kNames))) return kNames[rcode];
  if (rcode == 16) return "BADSIG";
  if (rcode == 17) return "BADKEY";
  if (rcode == 18) return "BADTIME";
  return "RCODE " + std::to_string(rcode);
}

}  // namespace vmctl::acme
