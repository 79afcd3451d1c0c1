/* Binary upgrade (SIGUSR2, DESIGN.md "Scale-out and upgrades"): the running
 * process starts the binary on disk with its listening sockets inherited;
 * the new process checks its config, takes the sockets, starts, and says
 * "ready" on a pipe; only then does the old one stop accepting and drain
 * its own sessions. If the new one cannot start, the old one keeps serving.
 * Sockets are inherited, not re-bound: connections waiting in a listen
 * queue are accepted by the new process, none is reset. */
#ifndef LB_PROC_UPGRADE_H
#define LB_PROC_UPGRADE_H

#include <stdbool.h>
#include <sys/socket.h>

struct lb_server;

/* At start, before anything else: remembers the binary's path and reads
 * the sockets a previous process handed over (RTMPLB_UPGRADE_*), if any. */
void lb_upgrade_init(void);
/* Took over from an old process. */
bool lb_upgrade_inherited(void);
/* An inherited listening socket bound to addr, or -1. Each is given once. */
int lb_upgrade_take(const struct sockaddr *addr, socklen_t len);
/* Closes the inherited sockets nothing took (a listener the new config
 * dropped), logging each. */
void lb_upgrade_close_unused(void);
/* Started: tell the old process (and systemd's NOTIFY_SOCKET, if any). */
void lb_upgrade_ready(void);

/* SIGUSR2 in the old process. */
void lb_upgrade_start(struct lb_server *srv);

#endif
