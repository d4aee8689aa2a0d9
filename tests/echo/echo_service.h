/* echo_service.h: the test-only jobhub.test.Echo service. */
#ifndef JOBHUB_TESTS_ECHO_SERVICE_H
#define JOBHUB_TESTS_ECHO_SERVICE_H

#include "rpc/server.h"

/* echo_service_add serves jobhub.test.Echo on server. Returns 0 or -1. */
int echo_service_add(rpc_server *server);

#endif
