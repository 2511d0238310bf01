// idle_tls_clients PORT SERVER_NAME COUNT
//
// Opens COUNT TLS connections to 127.0.0.1:PORT with SERVER_NAME as SNI, one after another, prints
// "ready PID" once every handshake has completed, and then holds them, idle, until it is killed.
// The kernel then closes them all at once without close_notify, as clients that vanish do. A
// process of its own, so that the connections' client ends count against neither the fd limit nor
// the memory of the server under test. It never outlives the process that started it.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s PORT SERVER_NAME COUNT\n", argv[0]);
    return 2;
  }
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  int port = std::atoi(argv[1]);
  const char* server_name = argv[2];
  long count = std::atol(argv[3]);
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < static_cast<rlim_t>(count) + 16) {
    std::fprintf(stderr, "the fd limit %lu is too low for %ld connections\n",
                 static_cast<unsigned long>(limit.rlim_cur), count);
    return 1;
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  // Idle connections need no buffers; without this each holds OpenSSL's 34 KiB of them.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Nothing is freed: the connections are what this process is for, until it is killed.
  for (long i = 0; i < count; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      std::perror("connect");
      return 1;
    }
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, server_name);
    if (SSL_connect(ssl) != 1) {
      std::fprintf(stderr, "handshake %ld failed: %s\n", i,
                   ERR_error_string(ERR_get_error(), nullptr));
      return 1;
    }
  }
  std::printf("ready %d\n", static_cast<int>(::getpid()));
  std::fflush(stdout);
  for (;;) ::pause();
}
