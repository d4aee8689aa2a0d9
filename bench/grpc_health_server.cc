// grpc_health_server: the benchmark peer, the official gRPC C++ server
// (Debian libgrpc++-dev) with its default health service and nothing else,
// on its defaults. Usage: grpc_health_server PORT_FILE
#include <cstdio>
#include <memory>
#include <string>

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: grpc_health_server PORT_FILE\n");
    return 2;
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  // With the health service alone, BuildAndStart refuses to start ("at
  // least one of the completion queues must be frequently polled"); a
  // callback generic service, UNIMPLEMENTED for everything, satisfies it.
  grpc::CallbackGenericService unimplemented;
  builder.RegisterCallbackGenericService(&unimplemented);
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "grpc_health_server: cannot start\n");
    return 1;
  }
  std::string temp = std::string(argv[1]) + ".tmp";
  FILE *file = std::fopen(temp.c_str(), "w");
  if (file == nullptr || std::fprintf(file, "%d\n", port) < 0 ||
      std::fclose(file) != 0 || std::rename(temp.c_str(), argv[1]) != 0) {
    std::fprintf(stderr, "grpc_health_server: cannot write %s\n", argv[1]);
    return 1;
  }
  server->Wait();
  return 0;
}
