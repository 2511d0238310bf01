#include <nlohmann/json.hpp>
#include <tuple>

#include "cli/command_support.h"

namespace vmctl::cli {
namespace {

using nlohmann::json;

void PrintVm(const Globals& g, const json& vm) {
  Print(g, "name:     {}\n", vm.value("name", ""));
  Print(g, "id:       {}\n", vm.value("id", ""));
  Print(g, "state:    {}\n", vm.value("state", ""));
  Print(g, "image:    {}\n", vm.value("image", ""));
  Print(g, "cpus:     {}\n", vm.value("cpus", 0));
  Print(g, "memory:   {}\n", Mib(vm.value("memory_mib", int64_t{0})));
  Print(g, "backend:  {}\n", vm.value("backend", ""));
  Print(g, "storage:  {}\n", vm.value("storage", ""));
  for (const auto& d : vm.value("disks", json::array())) {
    Print(g, "{:<9} {} ({}), {:.1f} MiB allocated, {} {}\n",
          d.value("role", "") + " disk:", Mib(d.value("size_bytes", int64_t{0}) >> 20),
          d.value("format", ""),
          static_cast<double>(d.value("allocated_bytes", int64_t{0})) / (1 << 20),
          d.value("path", ""), d.value("role", "") == "data" ? "-> /data" : "-> /");
  }
  if (vm.contains("disks_error")) Print(g, "disks:    {}\n", vm.value("disks_error", ""));
  Print(g, "address:  {}\n", vm.value("address", "").empty() ? "-" : vm.value("address", ""));
  if (!vm.value("ssh_address", "").empty()) {
    Print(g, "ssh address: {} (the SSH gateway routes connections to it here)\n",
          vm.value("ssh_address", ""));
  }
  Print(g, "mac:      {}\n", vm.value("mac", ""));
  Print(g, "tap:      {}\n", vm.value("tap", ""));
  int64_t kbit = vm.value("bandwidth_kbit", int64_t{0});
  Print(g, "bandwidth: {}\n",
        kbit == 0 ? std::string("unlimited")
                  : (kbit % 1000 == 0 ? fmt::format("{} mbit", kbit / 1000)
                                      : fmt::format("{} kbit", kbit)) +
                        " each way");
  if (vm.value("pid", 0) != 0) Print(g, "pid:      {}\n", vm.value("pid", 0));
  Print(g, "created:  {} ago\n", Age(vm.value("created_at", int64_t{0})));
  if (!vm.value("error", "").empty()) Print(g, "error:    {}\n", vm.value("error", ""));
}

void AddCreateCommand(CLI::App& app, const GlobalsPtr& g, const Done& done) {
  struct Opts {
    std::string name, image = "default", memory = "512M", root_disk = "2G", disk = "1G", bandwidth;
    int cpus = 1;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("create", "create and boot a VM");
  cmd->add_option("name", o->name, "VM name (lowercase letters, digits, '-')")->required();
  cmd->add_option("--image", o->image, "image name")->capture_default_str();
  cmd->add_option("--cpus", o->cpus, "virtual CPUs")->capture_default_str();
  cmd->add_option("--memory", o->memory, "memory, e.g. 512M or 2G")->capture_default_str();
  cmd->add_option("--root-disk", o->root_disk, "root disk size, e.g. 4G")->capture_default_str();
  cmd->add_option("--disk", o->disk, "persistent data disk mounted at /data, e.g. 10G (0: none)")
      ->capture_default_str();
  cmd->add_option("--bandwidth", o->bandwidth,
                  "network limit in each direction, e.g. 100mbit (default: unlimited)");
  cmd->add_flag("--json", o->json, "print the VM as JSON");
  cmd->callback([g, o, done] {
    auto memory = ParseMib(o->memory);
    if (!memory.ok()) return done(Fail(*g, memory.error().WithContext("--memory")));
    auto root_disk = ParseMib(o->root_disk);
    if (!root_disk.ok()) return done(Fail(*g, root_disk.error().WithContext("--root-disk")));
    auto disk = ParseMib(o->disk);
    if (!disk.ok()) return done(Fail(*g, disk.error().WithContext("--disk")));
    json body = {{"name", o->name},       {"image", o->image},           {"cpus", o->cpus},
                 {"memory_mib", *memory}, {"root_disk_mib", *root_disk}, {"disk_mib", *disk}};
    if (!o->bandwidth.empty()) body["bandwidth"] = o->bandwidth;
    auto vm = Client(*g).CallWithProgress("POST", "/v1/vms", body, Progress(*g));
    if (!vm.ok()) return done(Fail(*g, vm.error()));
    if (o->json) {
      Print(*g, "{}\n", vm->dump(2));
    } else {
      std::string name = vm->value("name", "");
      Print(*g, "VM '{}' is {}.\n{}\n", name, vm->value("state", ""), g->next_step(name));
    }
    done(0);
  });
}

void AddListCommands(CLI::App& app, const GlobalsPtr& g, const Done& done) {
  {
    auto as_json = std::make_shared<bool>(false);
    auto* cmd = app.add_subcommand("ls", "list VMs");
    cmd->add_flag("--json", *as_json, "print JSON");
    cmd->callback([g, as_json, done] {
      auto list = Client(*g).Call("GET", "/v1/vms");
      if (!list.ok()) return done(Fail(*g, list.error()));
      if (*as_json) {
        Print(*g, "{}\n", (*list)["vms"].dump(2));
        return done(0);
      }
      Print(*g, "{:<20} {:<9} {:<15} {:>4} {:>7} {:>6} {:>6}  {:<10} {}\n", "NAME", "STATE",
            "ADDRESS", "CPUS", "MEMORY", "ROOT", "DATA", "IMAGE", "AGE");
      for (const auto& vm : (*list)["vms"]) {
        int64_t data = vm.value("disk_mib", int64_t{0});
        Print(*g, "{:<20} {:<9} {:<15} {:>4} {:>7} {:>6} {:>6}  {:<10} {}\n", vm.value("name", ""),
              vm.value("state", ""),
              vm.value("address", "").empty() ? "-" : vm.value("address", ""), vm.value("cpus", 0),
              Mib(vm.value("memory_mib", int64_t{0})), Mib(vm.value("root_disk_mib", int64_t{0})),
              data ? Mib(data) : "-", vm.value("image", ""),
              Age(vm.value("created_at", int64_t{0})));
      }
      done(0);
    });
  }
  {
    struct Opts {
      std::string name;
      bool json = false;
    };
    auto o = std::make_shared<Opts>();
    auto* cmd = app.add_subcommand("show", "show one VM");
    cmd->add_option("name", o->name, "VM name")->required();
    cmd->add_flag("--json", o->json, "print JSON");
    cmd->callback([g, o, done] {
      auto vm = Client(*g).Call("GET", "/v1/vms/" + PathSegment(o->name));
      if (!vm.ok()) return done(Fail(*g, vm.error()));
      if (o->json) {
        Print(*g, "{}\n", vm->dump(2));
      } else {
        PrintVm(*g, *vm);
      }
      done(0);
    });
  }
}

// start / restart / stop / rm
void AddLifecycleCommands(CLI::App& app, const GlobalsPtr& g, const Done& done) {
  for (const char* action : {"start", "restart", "stop"}) {
    struct Opts {
      std::string name;
      bool force = false;
    };
    auto o = std::make_shared<Opts>();
    std::string what = action;
    auto* cmd = app.add_subcommand(action, what + " a VM");
    cmd->add_option("name", o->name, "VM name")->required();
    if (what == "stop") cmd->add_flag("--force", o->force, "kill the VMM without a clean shutdown");
    cmd->callback([g, o, what, done] {
      std::string target =
          "/v1/vms/" + PathSegment(o->name) + "/" + what + (o->force ? "?force=1" : "");
      auto vm = what == "stop"
                    ? Client(*g).Call("POST", target, json::object())
                    : Client(*g).CallWithProgress("POST", target, json::object(), Progress(*g));
      if (!vm.ok()) return done(Fail(*g, vm.error()));
      Print(*g, "VM '{}' is {}.\n", vm->value("name", ""), vm->value("state", ""));
      done(0);
    });
  }
  {
    auto name = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand("rm", "remove a VM and everything it owns");
    cmd->add_option("name", *name, "VM name")->required();
    cmd->callback([g, name, done] {
      auto r = Client(*g).Call("DELETE", "/v1/vms/" + PathSegment(*name));
      if (!r.ok()) return done(Fail(*g, r.error()));
      Print(*g, "VM '{}' removed.\n", *name);
      done(0);
    });
  }
}

void AddResizeCommand(CLI::App& app, const GlobalsPtr& g, const Done& done) {
  struct Opts {
    std::string name, disk, root_disk;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "resize", "grow a VM's disks (online when the storage and VMM allow, else at next start)");
  cmd->add_option("name", o->name, "VM name")->required();
  cmd->add_option("--disk", o->disk, "new size of the data disk, e.g. 20G");
  cmd->add_option("--root-disk", o->root_disk, "new size of the root disk, e.g. 8G");
  cmd->callback([g, o, done] {
    json body = json::object();
    for (const auto& [flag, text, field] :
         {std::tuple{"--disk", o->disk, "disk_mib"},
          std::tuple{"--root-disk", o->root_disk, "root_disk_mib"}}) {
      if (text.empty()) continue;
      auto mib = ParseMib(text);
      if (!mib.ok()) return done(Fail(*g, mib.error().WithContext(flag)));
      body[field] = *mib;
    }
    if (body.empty()) {
      return done(Fail(*g, InvalidArgument("give --disk SIZE and/or --root-disk SIZE")));
    }
    auto vm = Client(*g).CallWithProgress("POST", "/v1/vms/" + PathSegment(o->name) + "/resize",
                                          body, Progress(*g));
    if (!vm.ok()) return done(Fail(*g, vm.error()));
    Print(*g, "VM '{}': root disk {}, data disk {}.\n", vm->value("name", ""),
          Mib(vm->value("root_disk_mib", int64_t{0})), Mib(vm->value("disk_mib", int64_t{0})));
    done(0);
  });
}

}  // namespace

void AddVmCommands(CLI::App& app, const GlobalsPtr& g, const Done& done) {
  AddCreateCommand(app, g, done);
  AddListCommands(app, g, done);
  AddLifecycleCommands(app, g, done);
  AddResizeCommand(app, g, done);
}

}  // namespace vmctl::cli
