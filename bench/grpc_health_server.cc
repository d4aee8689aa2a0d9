// grpc_health_server: the benchmark peer, the official gRPC C++ server
// (Debian libgrpc++-dev) with its default health service and nothing else,
// on its defaults, plaintext on 127.0.0.1.
// Usage: grpc_health_server PORT [PORT_FILE]
// PORT 0 picks a free port; PORT_FILE, if given, receives the bound port
// once the server is serving. Exit codes: 0 stopped, 1 start-up failure,
// 2 usage error.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

// parse_port parses a decimal TCP port (0-65535) into *port; false if the
// text is anything else.
static bool parse_port(const char *text, int *port) {
  char *end = nullptr;
  errno = 0;
  long value = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < 0 || value > 65535) {
    return false;
  }
  *port = static_cast<int>(value);
  return true;
}

// write_port_file writes PORT to PATH through a rename, so a reader never
// sees a partial file. False, with a message on stderr, on failure.
static bool write_port_file(const std::string &path, int port) {
  std::string temp = path + ".tmp";
  FILE *file = std::fopen(temp.c_str(), "w");
  if (file == nullptr) {
    std::perror(temp.c_str());
    return false;
  }
  bool written = std::fprintf(file, "%d\n", port) > 0;
  if (std::fclose(file) != 0 || !written ||
      std::rename(temp.c_str(), path.c_str()) != 0) {
    std::fprintf(stderr, "grpc_health_server: cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

int main(int argc, char **argv) {
  int requested_port = 0;
  if (argc < 2 || argc > 3 || !parse_port(argv[1], &requested_port)) {
    std::fprintf(stderr, "usage: grpc_health_server PORT [PORT_FILE]\n");
    return 2;
  }
  // The default health service answers SERVING for "" (the whole server).
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  // ServerBuilder checks for a service before it adds the default health
  // service, and with none it refuses to start ("At least one of the
  // completion queues must be frequently polled"). The health service in
  // this version is a callback service, so a callback generic service,
  // answering UNIMPLEMENTED to everything else, keeps the server a pure
  // callback server; a dummy sync service measured no faster here.
  grpc::CallbackGenericService unimplemented;
  builder.RegisterCallbackGenericService(&unimplemented);
  int bound_port = 0;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(requested_port),
                           grpc::InsecureServerCredentials(), &bound_port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound_port == 0) {
    std::fprintf(stderr, "grpc_health_server: cannot listen on 127.0.0.1:%d\n",
                 requested_port);
    return 1;
  }
  if (argc == 3 && !write_port_file(argv[2], bound_port)) {
    server->Shutdown();
    return 1;
  }
  server->Wait();
  return 0;
}
