#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/command_support.h"

namespace vmctl::cli {
namespace {

using nlohmann::json;

void AddImageBuildCommand(CLI::App* image, const GlobalsPtr& g, const Done& done) {
  struct BuildOpts {
    std::string name = "default", debian, from_oci, dockerfile, context;
    std::vector<std::string> packages;
  };
  auto b = std::make_shared<BuildOpts>();
  auto* build = image->add_subcommand(
      "build",
      "build an image (cached by its inputs) from a Debian recipe, an OCI image or a Dockerfile");
  build->add_option("name", b->name, "image name")->capture_default_str();
  build->add_option("--debian", b->debian, "Debian suite, e.g. bookworm (the default recipe)");
  build->add_option("--packages", b->packages, "extra Debian packages, comma-separated")
      ->delimiter(',');
  build->add_option("--from-oci", b->from_oci,
                    "an OCI image layout directory, or an OCI or `docker save` archive");
  build->add_option("--dockerfile", b->dockerfile,
                    "a Dockerfile, built with buildah or docker when available");
  build->add_option("--context", b->context, "build context of --dockerfile (default: its dir)");
  build->callback([g, b, done] {
    int sources = !b->debian.empty() + !b->from_oci.empty() + !b->dockerfile.empty();
    if (sources > 1) {
      return done(Fail(*g, InvalidArgument("give one of --debian, --from-oci, --dockerfile")));
    }
    if (!b->packages.empty() && (!b->from_oci.empty() || !b->dockerfile.empty())) {
      return done(Fail(*g, InvalidArgument("--packages goes with the Debian recipe")));
    }
    if (!b->context.empty() && b->dockerfile.empty()) {
      return done(Fail(*g, InvalidArgument("--context goes with --dockerfile")));
    }
    // Paths are resolved here: the daemon does not share our working directory.
    auto absolute = [](const std::string& p) { return std::filesystem::absolute(p).string(); };
    json body = json::object();
    if (!b->from_oci.empty()) {
      body["oci"] = absolute(b->from_oci);
    } else if (!b->dockerfile.empty()) {
      body["dockerfile"] = absolute(b->dockerfile);
      if (!b->context.empty()) body["context"] = absolute(b->context);
    } else if (!b->debian.empty() || !b->packages.empty()) {
      json debian = {{"packages", b->packages}};
      if (!b->debian.empty()) debian["suite"] = b->debian;
      body["debian"] = debian;
    }
    auto r = Client(*g).CallWithProgress("POST", "/v1/images/" + PathSegment(b->name) + "/build",
                                         body, Progress(*g));
    if (!r.ok()) return done(Fail(*g, r.error()));
    Print(*g, "Image '{}' ready ({} MiB, {}).\n", r->value("name", ""),
          r->value("size_bytes", int64_t{0}) >> 20, r->value("source", ""));
    done(0);
  });
}

}  // namespace

// image ls / build / rm
void AddImageCommands(CLI::App& app, const GlobalsPtr& g, const Done& done) {
  auto* image = app.add_subcommand("image", "guest images");
  image->require_subcommand(1);
  auto as_json = std::make_shared<bool>(false);
  auto* ls = image->add_subcommand("ls", "list images");
  ls->add_flag("--json", *as_json, "print JSON");
  ls->callback([g, as_json, done] {
    auto list = Client(*g).Call("GET", "/v1/images");
    if (!list.ok()) return done(Fail(*g, list.error()));
    if (*as_json) {
      Print(*g, "{}\n", (*list)["images"].dump(2));
      return done(0);
    }
    Print(*g, "{:<16} {:>8}  {:<8} {:<40}\n", "NAME", "SIZE", "CREATED", "SOURCE");
    for (const auto& i : (*list)["images"]) {
      Print(*g, "{:<16} {:>8}  {:<8} {:<40}\n", i.value("name", ""),
            Mib(i.value("size_bytes", int64_t{0}) >> 20),
            Age(i.value("created_at", int64_t{0})) + " ago", i.value("source", ""));
    }
    done(0);
  });
  AddImageBuildCommand(image, g, done);
  auto rm_name = std::make_shared<std::string>();
  auto* rm = image->add_subcommand("rm", "remove an image (refused while VMs use it)");
  rm->add_option("name", *rm_name, "image name")->required();
  rm->callback([g, rm_name, done] {
    auto r = Client(*g).Call("DELETE", "/v1/images/" + PathSegment(*rm_name));
    if (!r.ok()) return done(Fail(*g, r.error()));
    for (const auto& line : r->value("notes", json::array())) {
      Progress (*g)(line.get<std::string>());
    }
    Print(*g, "Image '{}' removed.\n", *rm_name);
    done(0);
  });
}

}  // namespace vmctl::cli
