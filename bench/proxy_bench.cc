// HTTPS proxy benchmark (issue #12): vmctl's proxy against nginx configured the same way, in the
// same run. Both terminate TLS with the same certificate and key (a leaf of vmctl's local CA for
// vmctl.localhost and *.vmctl.localhost) and proxy to the same upstream with pooled keep-alive
// upstream connections. The upstream is testing/web_upstream, native, in a network namespace of
// its own attached by a veth pair at a VM's address (10.0.0.2, the host side 10.0.0.1/16 like
// vmctl0), so no TCG guest limits the measurement.
//
// The benchmark enters a network namespace of its own (where the proxies and the clients run, on
// loopback) and a private mount namespace whose /etc/hosts resolves web.vmctl.localhost, the name
// wrk connects to and sends as SNI and Host. Everything it starts runs there and is stopped by
// pid; the namespaces go with it.
//
// Measures: wrk --latency requests/s and p50/p99 with 1 and 2 workers (vmctl's event-loop
// threads, nginx's worker processes; wrk with as many threads) and 32 and 64 connections
// (keep-alive), new TLS connections/s (full handshakes, by a client of its own), and the servers'
// RSS growth per 1,000 idle TLS connections held by a separate client process (`vmctl_proxy_bench
// hold`).
//
// Usage: vmctl_proxy_bench [--duration 10] [--repeat 3] [--idle 1000,5000]   (Markdown on stdout)
//        vmctl_proxy_bench hold --port P --connections N   (the idle-connection client)
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "base/io.h"
#include "base/process.h"
#include "bench/host.h"
#include "bench/stats.h"
#include "tls/cert_store.h"
#include "tls/local_ca.h"

namespace vmctl::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kDomain = "vmctl.localhost";
constexpr const char* kHost = "web.vmctl.localhost";
constexpr const char* kUpstream = "10.0.0.2";
constexpr uint16_t kVmctlPort = 9443;
constexpr uint16_t kNginxPort = 9444;
constexpr int kHandshakeClients = 16;

struct Bench {
  fs::path dir;
  std::string ns, upstream_ns;
  ProcessRef upstream, vmctl, nginx;
};

Bench g;

void Log(const std::string& line) { std::cerr << "proxy_bench: " << line << std::endl; }

void Stop(ProcessRef& process) {
  if (process.pid == 0) return;
  (void)process.Signal(SIGTERM);
  if (!process.WaitExit(std::chrono::seconds(10)).ok()) (void)process.Kill();
  process = {};
}

// Idempotent, so a failure anywhere can call it and leave nothing behind.
void Cleanup() {
  Stop(g.vmctl);
  Stop(g.nginx);
  Stop(g.upstream);
  for (std::string* ns : {&g.upstream_ns, &g.ns}) {
    if (!ns->empty()) (void)RunCommand({"ip", "netns", "del", *ns});
    ns->clear();
  }
  if (!g.dir.empty()) {
    std::error_code ec;
    fs::remove_all(g.dir, ec);
    g.dir.clear();
  }
}

[[noreturn]] void Die(const std::string& what, const std::string& detail = "") {
  std::cerr << "proxy_bench: " << what << " failed: " << detail << "\n";
  Cleanup();
  std::exit(1);
}

RunOutput Run(const std::vector<std::string>& argv,
              std::chrono::seconds timeout = std::chrono::seconds(120)) {
  RunOptions options;
  options.timeout = timeout;
  auto out = RunCommand(argv, options);
  return out.ok() ? *out : RunOutput{-1, "", out.error().message()};
}

RunOutput Check(const std::string& what, RunOutput out) {
  if (out.exit_code != 0) Die(what, out.out + out.err);
  return out;
}

ProcessRef Spawn(const std::vector<std::string>& argv, const std::string& log) {
  auto spawned = SpawnDetached(argv, {.log_file = g.dir / log});
  if (!spawned.ok()) Die("start " + argv[0], spawned.error().message());
  return *spawned;
}

// Waits until `log` (in the work directory) contains `text`, while `process` lives.
void WaitForLog(const ProcessRef& process, const std::string& log, const std::string& text,
                std::chrono::seconds limit) {
  auto deadline = Clock::now() + limit;
  for (;;) {
    auto content = ReadFile(g.dir / log);
    if (content.ok() && content->find(text) != std::string::npos) return;
    if (!process.Alive() || Clock::now() > deadline) {
      Die("waiting for '" + text + "' in " + log, TailFile(g.dir / log, 2000));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// --- set-up ---

void EnterNamespaces() {
  // A private mount namespace first (unshare needs a single-threaded process): its /etc/hosts
  // names the VM host, and the network namespaces' mounts stay inside it.
  if (::unshare(CLONE_NEWNS) != 0) Die("unshare(CLONE_NEWNS)", std::strerror(errno));
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    Die("make / private", std::strerror(errno));
  }
  fs::path hosts = g.dir / "hosts";
  if (!WriteFileAtomic(hosts, fmt::format("127.0.0.1 localhost {}\n", kHost), 0644).ok() ||
      ::mount(hosts.c_str(), "/etc/hosts", nullptr, MS_BIND, nullptr) != 0) {
    Die("bind-mount /etc/hosts", std::strerror(errno));
  }
  std::string id = std::to_string(::getpid());
  for (auto [ns, name] :
       {std::pair{&g.ns, "vmctl-pb-" + id}, {&g.upstream_ns, "vmctl-pbu-" + id}}) {
    Check("ip netns add " + name, Run({"ip", "netns", "add", name}));
    *ns = name;
  }
  int fd = ::open(("/run/netns/" + g.ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) Die("setns " + g.ns, std::strerror(errno));
  ::close(fd);
  const std::string& up = g.upstream_ns;
  for (const std::vector<std::string>& argv : std::vector<std::vector<std::string>>{
           {"ip", "link", "set", "lo", "up"},
           {"ip", "link", "add", "vpb0", "type", "veth", "peer", "name", "vpb1", "netns", up},
           {"ip", "addr", "add", "10.0.0.1/16", "dev", "vpb0"},
           {"ip", "link", "set", "vpb0", "up"},
           {"ip", "-n", up, "link", "set", "lo", "up"},
           {"ip", "-n", up, "addr", "add", std::string(kUpstream) + "/16", "dev", "vpb1"},
           {"ip", "-n", up, "link", "set", "vpb1", "up"}}) {
    Check(argv[0] + " " + argv[1] + " " + argv[2], Run(argv));
  }
}

// The local CA and one leaf for DOMAIN and *.DOMAIN, stored the way the daemon stores it; nginx
// reads the same two files.
void MakeCertificates() {
  auto ca = tls::LocalCa::Open(g.dir / "ca", kDomain);
  if (!ca.ok()) Die("local CA", ca.error().message());
  auto leaf = ca->Issue({kDomain, fmt::format("*.{}", kDomain)});
  if (!leaf.ok()) Die("issue", leaf.error().message());
  auto store = tls::CertStore::Open(g.dir / "certs", kDomain);
  if (!store.ok()) Die("cert store", store.error().message());
  auto installed =
      (*store)->Install({kDomain, fmt::format("*.{}", kDomain)}, leaf->chain_pem, leaf->key_pem);
  if (!installed.ok()) Die("install", installed.error().message());
}

// nginx as close to vmctl's proxy as its configuration allows: as many workers as vmctl has
// event-loop threads, TLS 1.3 with the suite and group vmctl's OpenSSL defaults negotiate with
// wrk, upstream keep-alive with 128 idle connections per worker (vmctl's default
// ProxyOptions::pool_size is 256 per loop), and the forwarding headers vmctl adds.
std::string NginxConfig(int workers) {
  fs::path n = g.dir / "nginx";
  return fmt::format(R"(user root;
worker_processes {workers};
worker_rlimit_nofile 20000;
pid {n}/nginx.pid;
error_log {n}/error.log warn;
events {{ worker_connections 9000; }}
http {{
  access_log off;
  client_body_temp_path {n}/body;
  proxy_temp_path {n}/proxy;
  fastcgi_temp_path {n}/fastcgi;
  uwsgi_temp_path {n}/uwsgi;
  scgi_temp_path {n}/scgi;
  keepalive_timeout 75s;
  keepalive_requests 1000000;
  upstream vm {{ server {up}:80; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port} ssl;
    server_name {host};
    ssl_certificate {certs}/{domain}.crt;
    ssl_certificate_key {certs}/{domain}.key;
    ssl_protocols TLSv1.3;
    ssl_conf_command Ciphersuites TLS_AES_256_GCM_SHA384;
    ssl_ecdh_curve X25519;
    location / {{
      proxy_pass http://vm;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-Host $host;
    }}
  }}
}}
)",
                     fmt::arg("workers", workers), fmt::arg("n", n.string()),
                     fmt::arg("up", kUpstream), fmt::arg("port", kNginxPort),
                     fmt::arg("host", kHost), fmt::arg("certs", (g.dir / "certs").string()),
                     fmt::arg("domain", kDomain));
}

std::string Url(uint16_t port, const std::string& path) {
  return fmt::format("https://{}:{}{}", kHost, port, path);
}

// The body of GET / through a proxy, checked against the CA: the request reached the upstream.
void CheckServes(const std::string& name, uint16_t port) {
  auto deadline = Clock::now() + std::chrono::seconds(20);
  for (;;) {
    auto out = Run({"curl", "-sS", "--max-time", "5", "--cacert", (g.dir / "ca/ca.crt").string(),
                    Url(port, "/")});
    if (out.exit_code == 0 && out.out == "hello from bench-upstream\n") return;
    if (Clock::now() > deadline) Die("GET / through " + name, out.out + out.err);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// "TLSv1.3, TLS_AES_256_GCM_SHA384, X25519" as `openssl s_client` negotiates it.
std::string Negotiated(uint16_t port) {
  RunOptions options;
  options.stdin_data = "";
  auto out = RunCommand({"openssl", "s_client", "-brief", "-connect",
                         fmt::format("127.0.0.1:{}", port), "-servername", kHost},
                        options);
  if (!out.ok()) return "?";
  auto field = [&](const std::string& key) -> std::string {
    auto at = out->err.find(key + ": ");
    if (at == std::string::npos) return "?";
    at += key.size() + 2;
    return out->err.substr(at, out->err.find('\n', at) - at);
  };
  std::string key = field("Server Temp Key");
  return fmt::format("{}, {}, {}", field("Protocol version"), field("Ciphersuite"),
                     key.substr(0, key.find(',')));
}

void StartUpstream(const fs::path& bin_dir) {
  g.upstream =
      Spawn({"ip", "netns", "exec", g.upstream_ns, (bin_dir / "web_upstream").string(), "--name",
             "bench-upstream", "--threads", "2", fmt::format("{}:80", kUpstream)},
            "upstream.log");
  WaitForLog(g.upstream, "upstream.log", "listening", std::chrono::seconds(10));
}

// Both proxies with `workers` event-loop threads (vmctl) or worker processes (nginx).
void StartProxies(const fs::path& bin_dir, int workers) {
  std::string vmctl_log = fmt::format("vmctl-{}.log", workers);
  g.vmctl = Spawn({(bin_dir / "vmctl_proxy_bench_server").string(), "--certs",
                   (g.dir / "certs").string(), "--listen", fmt::format("127.0.0.1:{}", kVmctlPort),
                   "--upstream", kUpstream, "--threads", std::to_string(workers)},
                  vmctl_log);
  WaitForLog(g.vmctl, vmctl_log, "ready", std::chrono::seconds(10));
  fs::path n = g.dir / "nginx";
  fs::create_directories(n);
  if (!WriteFileAtomic(n / "nginx.conf", NginxConfig(workers), 0644).ok()) {
    Die("write nginx.conf");
  }
  g.nginx =
      Spawn({"nginx", "-p", n.string(), "-c", (n / "nginx.conf").string(), "-g", "daemon off;"},
            fmt::format("nginx-{}.log", workers));
  CheckServes("vmctl", kVmctlPort);
  CheckServes("nginx", kNginxPort);
}

void StopProxies() {
  Stop(g.vmctl);
  Stop(g.nginx);
}

// --- wrk ---

struct WrkResult {
  double rps = 0, p50_ms = 0, p99_ms = 0;
  int64_t requests = 0, errors = 0;
};

double ToMs(const std::string& value) {
  double number = std::stod(value);
  if (value.ends_with("us")) return number / 1000;
  if (value.ends_with("ms")) return number;
  if (value.ends_with("s")) return number * 1000;
  return number;
}

WrkResult ParseWrk(const std::string& out) {
  WrkResult r;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string first, second;
    words >> first >> second;
    if (first == "50%") r.p50_ms = ToMs(second);
    if (first == "99%") r.p99_ms = ToMs(second);
    if (first == "Requests/sec:") r.rps = std::stod(second);
    if (second == "requests") r.requests = std::stoll(first);
    if (first == "Non-2xx") r.errors += std::stoll(line.substr(line.rfind(' ') + 1));
    if (first == "Socket") {
      // "Socket errors: connect 0, read 0, write 0, timeout 0"
      std::string word;
      std::istringstream rest(line.substr(line.find(':') + 1));
      while (rest >> word) {
        int64_t n = 0;
        if (rest >> n) r.errors += n;
        rest.ignore(1);
      }
    }
  }
  return r;
}

WrkResult Wrk(uint16_t port, int threads, int connections, int seconds) {
  std::vector<std::string> argv = {"wrk", "--latency",
                                   "-t",  std::to_string(threads),
                                   "-c",  std::to_string(connections),
                                   "-d",  fmt::format("{}s", seconds)};
  argv.push_back(port == 80 ? fmt::format("http://{}/empty", kUpstream) : Url(port, "/empty"));
  auto out = Check("wrk", Run(argv, std::chrono::seconds(seconds + 60)));
  WrkResult r = ParseWrk(out.out);
  if (r.requests == 0) Die("wrk made no requests", out.out);
  return r;
}

// The median of each figure over runs of one load (each figure on its own).
WrkResult Median(std::vector<WrkResult> runs) {
  auto median = [&](auto field) {
    std::vector<double> values;
    for (const WrkResult& r : runs) values.push_back(static_cast<double>(r.*field));
    std::sort(values.begin(), values.end());
    return values[values.size() / 2];
  };
  WrkResult m;
  m.rps = median(&WrkResult::rps);
  m.p50_ms = median(&WrkResult::p50_ms);
  m.p99_ms = median(&WrkResult::p99_ms);
  for (const WrkResult& r : runs) {
    m.requests += r.requests;
    m.errors += r.errors;
  }
  return m;
}

// --- idle connections ---

// The RSS of what serves connections: vmctl's process, nginx's workers (not its master, which
// holds no connection).
int64_t ServingRss(const ProcessRef& process, bool workers) {
  if (!workers) return ProcField(process.pid, "status", "VmRSS");
  int64_t sum = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    pid_t pid = static_cast<pid_t>(std::atoi(entry.path().filename().c_str()));
    if (pid <= 0) continue;
    auto stat = ReadFile(entry.path() / "stat");
    if (!stat.ok()) continue;
    auto close = stat->rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat->substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == process.pid) sum += ProcField(pid, "status", "VmRSS");
  }
  return sum;
}

struct IdleResult {
  int64_t before_kib = 0, after_kib = 0;
  double per_thousand_kib = 0;
};

IdleResult MeasureIdle(const std::string& name, const ProcessRef& server, bool workers,
                       uint16_t port, int connections) {
  auto settle = [] { std::this_thread::sleep_for(std::chrono::seconds(2)); };
  settle();
  IdleResult r;
  r.before_kib = ServingRss(server, workers);
  std::string log = fmt::format("hold-{}-{}.log", name, connections);
  auto self = fs::read_symlink("/proc/self/exe");
  ProcessRef client = Spawn({self.string(), "hold", "--port", std::to_string(port), "--connections",
                             std::to_string(connections)},
                            log);
  WaitForLog(client, log, "ready", std::chrono::seconds(300));
  settle();
  r.after_kib = ServingRss(server, workers);
  r.per_thousand_kib =
      static_cast<double>(r.after_kib - r.before_kib) * 1000.0 / static_cast<double>(connections);
  Stop(client);
  Log(fmt::format("{}: {} idle connections: {} -> {} KiB", name, connections, r.before_kib,
                  r.after_kib));
  return r;
}

// One TLS connection to the proxy at `port` with one keep-alive GET /empty answered (a 200); null
// on failure, described on stderr. Never resumes a session: each is a full handshake.
SSL* Connect(SSL_CTX* ctx, uint16_t port, bool close) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    std::cerr << "connect: " << std::strerror(errno) << "\n";
    if (fd >= 0) ::close(fd);
    return nullptr;
  }
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, kHost);
  const std::string request = fmt::format("GET /empty HTTP/1.1\r\nHost: {}\r\n{}\r\n", kHost,
                                          close ? "Connection: close\r\n" : "");
  std::string response;
  char chunk[4096];
  bool ok =
      SSL_connect(ssl) == 1 && SSL_write(ssl, request.data(), static_cast<int>(request.size())) > 0;
  while (ok && response.find("\r\n\r\n") == std::string::npos) {
    int n = SSL_read(ssl, chunk, sizeof(chunk));
    ok = n > 0;
    if (ok) response.append(chunk, static_cast<size_t>(n));
  }
  if (!ok || !response.starts_with("HTTP/1.1 200")) {
    std::cerr << "request failed: " << response << "\n";
    ERR_print_errors_fp(stderr);
    SSL_free(ssl);
    ::close(fd);
    return nullptr;
  }
  return ssl;
}

void Disconnect(SSL* ssl) {
  int fd = SSL_get_fd(ssl);
  SSL_free(ssl);
  ::close(fd);
}

SSL_CTX* ClientContext() {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  return ctx;
}

// The client of MeasureIdle: `connections` connections, held open until SIGTERM.
int Hold(uint16_t port, int connections) {
  SSL_CTX* ctx = ClientContext();
  std::vector<SSL*> held;
  for (int i = 0; i < connections; ++i) {
    SSL* ssl = Connect(ctx, port, false);
    if (ssl == nullptr) return 1;
    held.push_back(ssl);
  }
  std::printf("ready %d\n", connections);
  std::fflush(stdout);
  for (;;) ::pause();  // SIGTERM ends the process and with it every connection
}

// New TLS connections per second: `threads` blocking clients, each in a loop of full handshake,
// one `Connection: close` request, close; for `seconds`. Not wrk with `Connection: close`: it
// reuses each SSL object (SSL_clear), which offers the previous session for resumption, and in a
// first run it gave vmctl (which resumes) 10× nginx's rate, not a count of full handshakes.
struct HandshakeResult {
  double per_second = 0, p50_ms = 0, p99_ms = 0;
  int64_t failures = 0;
};

HandshakeResult Handshakes(uint16_t port, int threads, int seconds) {
  SSL_CTX* ctx = ClientContext();
  std::vector<std::vector<double>> times(static_cast<size_t>(threads));
  std::atomic<int64_t> failures{0};
  auto end = Clock::now() + std::chrono::seconds(seconds);
  std::vector<std::thread> clients;
  for (int t = 0; t < threads; ++t) {
    clients.emplace_back([&, t] {
      while (Clock::now() < end) {
        auto start = Clock::now();
        SSL* ssl = Connect(ctx, port, true);
        if (ssl == nullptr) {
          ++failures;
          continue;
        }
        Disconnect(ssl);
        times[static_cast<size_t>(t)].push_back(Ms(Clock::now() - start));
      }
    });
  }
  for (auto& client : clients) client.join();
  SSL_CTX_free(ctx);
  std::vector<double> all;
  for (const auto& v : times) all.insert(all.end(), v.begin(), v.end());
  return {static_cast<double>(all.size()) / seconds, Percentile(all, 50), Percentile(all, 99),
          failures.load()};
}

// --- report ---

std::string Ratio(double a, double b) { return b > 0 ? fmt::format("{:.2f}×", a / b) : "–"; }

int Main(int argc, char** argv) {
  CLI::App app{"vmctl HTTPS proxy benchmark against nginx"};
  int duration = 10, repeat = 3;
  std::vector<int> idle = {1000, 5000};
  app.add_option("--duration", duration, "seconds per wrk run")->capture_default_str();
  app.add_option("--repeat", repeat, "wrk runs per load and proxy (medians are reported)")
      ->capture_default_str()
      ->check(CLI::Range(1, 20));
  app.add_option("--idle", idle, "idle connection counts")->delimiter(',')->capture_default_str();
  auto* hold = app.add_subcommand("hold", "hold idle TLS connections (internal)");
  int hold_port = 0, hold_connections = 0;
  hold->add_option("--port", hold_port)->required();
  hold->add_option("--connections", hold_connections)->required();
  CLI11_PARSE(app, argc, argv);
  if (*hold) return Hold(static_cast<uint16_t>(hold_port), hold_connections);

  // Thousands of connections, in the client and in both servers, which inherit the limit.
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &files);

  fs::path bin_dir = fs::read_symlink("/proc/self/exe").parent_path();
  g.dir = fs::path("/tmp") / ("vmctl-pbench-" + std::to_string(::getpid()));
  fs::create_directories(g.dir);
  std::string load_start = LoadAverage();
  EnterNamespaces();
  MakeCertificates();
  StartUpstream(bin_dir);

  // One and two workers (vmctl's event-loop threads, nginx's worker processes), wrk with as
  // many threads; the proxies are restarted for each.
  struct Load {
    int workers, threads, connections;
  };
  const std::vector<Load> loads = {{1, 1, 32}, {1, 1, 64}, {2, 2, 32}, {2, 2, 64}};
  std::map<std::string, std::vector<WrkResult>> keep_alive;
  std::map<std::string, std::vector<IdleResult>> memory;
  std::string tls_vmctl, tls_nginx;
  for (int workers : {1, 2}) {
    StartProxies(bin_dir, workers);
    tls_vmctl = Negotiated(kVmctlPort);
    tls_nginx = Negotiated(kNginxPort);
    Log("TLS: vmctl " + tls_vmctl + "; nginx " + tls_nginx);
    if (workers == 2) {
      // Memory on fresh processes with the daemon's default two loops, before any load: the
      // wrk runs would leave freed heap behind that idle connections then reuse unseen.
      for (int n : idle) {
        memory["vmctl"].push_back(MeasureIdle("vmctl", g.vmctl, false, kVmctlPort, n));
        memory["nginx"].push_back(MeasureIdle("nginx", g.nginx, true, kNginxPort, n));
      }
    }
    Wrk(kVmctlPort, workers, 64, 2);  // warm-up: pools, caches, heaps
    Wrk(kNginxPort, workers, 64, 2);
    // Alternating, so load from anything else on the host hits both alike; single runs vary by
    // ±10 %, hence medians.
    for (const Load& load : loads) {
      if (load.workers != workers) continue;
      std::map<std::string, std::vector<WrkResult>> runs;
      for (int r = 0; r < repeat; ++r) {
        for (auto [name, port] : {std::pair{"vmctl", kVmctlPort}, {"nginx", kNginxPort}}) {
          runs[name].push_back(Wrk(port, load.threads, load.connections, duration));
          Log(fmt::format("{} {} worker(s), -t{} -c{}: {:.0f} req/s", name, workers, load.threads,
                          load.connections, runs[name].back().rps));
        }
      }
      for (auto& [name, results] : runs) keep_alive[name].push_back(Median(results));
    }
    if (workers == 1) StopProxies();
  }
  WrkResult direct = Wrk(80, 2, 64, duration);
  std::map<std::string, HandshakeResult> handshakes;
  for (auto [name, port] : {std::pair{"vmctl", kVmctlPort}, {"nginx", kNginxPort}}) {
    handshakes[name] = Handshakes(port, kHandshakeClients, duration);
    Log(fmt::format("{}: {:.0f} handshakes/s", name, handshakes[name].per_second));
  }
  std::string load_end = LoadAverage();
  int64_t vmctl_rss = ServingRss(g.vmctl, false), nginx_rss = ServingRss(g.nginx, true);
  std::string nproc = Check("nproc", Run({"nproc"})).out;
  std::string cpu = Run({"sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"}).out;
  Cleanup();

  auto trim = [](std::string s) {
    s.erase(0, s.find_first_not_of(" \n"));
    s.erase(s.find_last_not_of(" \n") + 1);
    return s;
  };
  fmt::print("Host: {} cores ({}); load average (1, 5, 15 min) at the start {}, at the end {}.\n",
             trim(nproc), trim(cpu), load_start, load_end);
  fmt::print("TLS negotiated with `openssl s_client`: vmctl {}; nginx {}.\n", tls_vmctl, tls_nginx);
  fmt::print("Each row: the medians of {} wrk runs of {} s per proxy, alternating.\n\n", repeat,
             duration);
  fmt::print(
      "| workers, wrk | vmctl req/s | nginx req/s | vmctl / nginx | vmctl p50 | nginx p50 | "
      "vmctl p99 | nginx p99 | errors (vmctl / nginx) |\n|---|---|---|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < loads.size(); ++i) {
    const WrkResult& v = keep_alive["vmctl"][i];
    const WrkResult& n = keep_alive["nginx"][i];
    fmt::print(
        "| {}, -t{} -c{} | {:.0f} | {:.0f} | {} | {:.2f} ms | {:.2f} ms | {:.2f} ms | {:.2f} ms "
        "| {} / {} |\n",
        loads[i].workers, loads[i].threads, loads[i].connections, v.rps, n.rps, Ratio(v.rps, n.rps),
        v.p50_ms, n.p50_ms, v.p99_ms, n.p99_ms, v.errors, n.errors);
  }
  const HandshakeResult& hv = handshakes["vmctl"];
  const HandshakeResult& hn = handshakes["nginx"];
  fmt::print(
      "| 2, new TLS connections/s ({} clients: full handshake, one request, close) | {:.0f} | "
      "{:.0f} | {} | {:.2f} ms | {:.2f} ms | {:.2f} ms | {:.2f} ms | {} / {} |\n",
      kHandshakeClients, hv.per_second, hn.per_second, Ratio(hv.per_second, hn.per_second),
      hv.p50_ms, hn.p50_ms, hv.p99_ms, hn.p99_ms, hv.failures, hn.failures);
  fmt::print(
      "\nUpstream alone (plain HTTP from the proxies' namespace, -t2 -c64): {:.0f} req/s, "
      "p50 {:.2f} ms, p99 {:.2f} ms.\n\n",
      direct.rps, direct.p50_ms, direct.p99_ms);
  fmt::print(
      "| idle TLS connections | vmctl RSS before → after | nginx workers' RSS before → after "
      "| vmctl per 1,000 | nginx per 1,000 | vmctl / nginx |\n|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < idle.size(); ++i) {
    const IdleResult& v = memory["vmctl"][i];
    const IdleResult& n = memory["nginx"][i];
    fmt::print("| {} | {} → {} KiB | {} → {} KiB | {:.0f} KiB | {:.0f} KiB | {} |\n", idle[i],
               v.before_kib, v.after_kib, n.before_kib, n.after_kib, v.per_thousand_kib,
               n.per_thousand_kib, Ratio(v.per_thousand_kib, n.per_thousand_kib));
  }
  fmt::print("\nRSS at the end (2 workers): vmctl's proxy {} KiB, nginx's workers {} KiB.\n",
             vmctl_rss, nginx_rss);
  return 0;
}

}  // namespace
}  // namespace vmctl::bench

int main(int argc, char** argv) { return vmctl::bench::Main(argc, argv); }
