/* main.c: jobhubd, the hub. Everything is in daemon.c. */
#include "server/daemon.h"

int main(int argc, char **argv) { return jobhubd_main(argc, argv, NULL, NULL); }
