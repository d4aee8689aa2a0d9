/* echo_server.c: jobhub-test-server, jobhubd plus jobhub.test.Echo, and
 * with JOBHUB_TEST_PROTOCOL_HOOK=1 in the environment the test protocol
 * hook (echo_protocol_hook.h) for what is not gRPC in place of jobhubd's
 * HTTP face; with JOBHUB_TEST_PROTOCOL_HOOK=none no hook at all (the
 * server's own answers). */
#include <stdlib.h>
#include <string.h>

#include "echo_descriptor_set.h"
#include "echo_protocol_hook.h"
#include "echo_service.h"
#include "server/daemon.h"

static int add_echo(rpc_server *server, rpc_descriptor_pool *pool, void *arg) {
  (void)arg;
  if (rpc_descriptor_pool_add_set(pool, echo_descriptor_set,
                                  echo_descriptor_set_size) != 0) {
    return -1;
  }
  const char *hook = getenv("JOBHUB_TEST_PROTOCOL_HOOK");
  static const rpc_protocol_hook no_hook;
  if (hook != NULL && strcmp(hook, "1") == 0 &&
      echo_protocol_hook_install(server) != 0) {
    return -1;
  }
  if (hook != NULL && strcmp(hook, "none") == 0 &&
      rpc_server_set_protocol_hook(server, &no_hook) != 0) {
    return -1;
  }
  return echo_service_add(server);
}

int main(int argc, char **argv) {
  return jobhubd_main(argc, argv, add_echo, NULL);
}
