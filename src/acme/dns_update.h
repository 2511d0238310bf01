#ifndef VMCTL_ACME_DNS_UPDATE_H_
#define VMCTL_ACME_DNS_UPDATE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace vmctl::acme {

// RFC 2136 dynamic updates of one TXT record, signed with TSIG (RFC 8945, hmac-sha256), as pure
// functions from values to bytes and back, so they are golden-tested and fuzzed without a server.

struct TsigKey {
  std::string name;    // lowercase, without the trailing dot
  std::string secret;  // the decoded key bytes
};

// The key file tsig-keygen (bind) and knot's documentation use:
//   key "NAME" { algorithm hmac-sha256; secret "BASE64"; };
// with '#', '//' and '/* */' comments. Exactly one key, algorithm hmac-sha256.
Result<TsigKey> ParseTsigKeyFile(std::string_view text);

enum class UpdateOp { kAdd, kDelete };

struct TxtUpdate {
  std::string zone;   // the zone to update, e.g. "vmctl.localhost"
  std::string name;   // the owner name, inside the zone
  std::string value;  // the TXT text (split into 255-byte strings on the wire)
  UpdateOp op = UpdateOp::kAdd;
  uint32_t ttl = 60;  // for kAdd; a delete names the one record (class NONE, TTL 0)
};

struct SignedUpdate {
  std::string message;  // the whole UPDATE message including its TSIG record
  std::string mac;      // the request MAC, which the response's MAC covers
};

// The UPDATE message: zone section (ZONE SOA IN), no prerequisites, one update RR, and a TSIG
// record with `time_signed` (seconds since the epoch) and a fudge of 300 s. Bad names (empty
// labels, a label over 63 bytes, over 255 in all, a name outside the zone) are kInvalidArgument.
Result<SignedUpdate> BuildTxtUpdate(const TxtUpdate& update, uint16_t id, const TsigKey& key,
                                    uint64_t time_signed);

struct UpdateResponse {
  uint16_t id = 0;
  int rcode = 0;           // 0 NOERROR, 5 REFUSED, 9 NOTAUTH, ...
  bool truncated = false;  // TC: retry over TCP
  bool signed_ok = false;  // a TSIG record was present and its MAC verified
};

// Parses a response to an UPDATE. It must be a response (QR) with opcode UPDATE; any section
// that runs past the end is kInvalidArgument. With `key`, a TSIG record that is last in the
// additional section is verified against `request_mac` (a bad MAC is kUnauthenticated; its TSIG
// error field, e.g. BADKEY, is reported too); without one, signed_ok stays false.
Result<UpdateResponse> ParseUpdateResponse(std::string_view message, const TsigKey* key,
                                           std::string_view request_mac);

// "NOERROR", "REFUSED", ... or "RCODE n".
std::string RcodeName(int rcode);

}  // namespace vmctl::acme

#endif  // VMCTL_ACME_DNS_UPDATE_H_
