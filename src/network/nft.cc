#include "network/nft.h"

#include <fmt/format.h>
#include <nftables/libnftables.h>

#include <memory>

namespace vmctl::network {
namespace {

struct CtxDeleter {
  void operator()(nft_ctx* ctx) const { nft_ctx_free(ctx); }
};

struct Outcome {
  int rc;
  std::string output;
  std::string error;
};

Result<Outcome> Run(const std::string& commands) {
  std::unique_ptr<nft_ctx, CtxDeleter> ctx(nft_ctx_new(NFT_CTX_DEFAULT));
  if (!ctx) return Internal("cannot create an nftables context");
  if (nft_ctx_buffer_output(ctx.get()) != 0 || nft_ctx_buffer_error(ctx.get()) != 0) {
    return Internal("cannot buffer nftables output");
  }
  Outcome outcome;
  outcome.rc = nft_run_cmd_from_buffer(ctx.get(), commands.c_str());
  if (const char* out = nft_ctx_get_output_buffer(ctx.get())) outcome.output = out;
  if (const char* err = nft_ctx_get_error_buffer(ctx.get())) outcome.error = err;
  while (!outcome.error.empty() && outcome.error.back() == '\n') outcome.error.pop_back();
  return outcome;
}

}  // namespace

Result<void> RunNftScript(const std::string& script) {
  VMCTL_ASSIGN_OR_RETURN(Outcome outcome, Run(script));
  if (outcome.rc != 0) return Internal("nftables refused the ruleset: " + outcome.error);
  return Ok();
}

Result<std::string> ListNftTable(const std::string& family, const std::string& name) {
  VMCTL_ASSIGN_OR_RETURN(Outcome outcome, Run(fmt::format("list table {} {}", family, name)));
  if (outcome.rc != 0) {
    if (outcome.error.find("No such file or directory") != std::string::npos) {
      return NotFound(fmt::format("no nftables table {} {}", family, name));
    }
    return Internal(fmt::format("nft list table {} {}: {}", family, name, outcome.error));
  }
  return outcome.output;
}

}  // namespace vmctl::network
