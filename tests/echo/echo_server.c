/* echo_server.c: jobhub-test-server, jobhubd plus jobhub.test.Echo. */
#include "echo_descriptor_set.h"
#include "echo_service.h"
#include "server/daemon.h"

static int add_echo(rpc_server *server, rpc_descriptor_pool *pool, void *arg) {
  (void)arg;
  if (rpc_descriptor_pool_add_set(pool, echo_descriptor_set,
                                  echo_descriptor_set_size) != 0) {
    return -1;
  }
  return echo_service_add(server);
}

int main(int argc, char **argv) {
  return jobhubd_main(argc, argv, add_echo, NULL);
}
