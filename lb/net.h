/* Socket helpers shared by the process and its sessions. */
#ifndef LB_NET_H
#define LB_NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A non-blocking listening socket with SO_REUSEPORT; -1 with *err set. */
int lb_listen_socket(const struct sockaddr *sa, socklen_t len, int *err);
void lb_sockaddr_text(const struct sockaddr *sa, char *buf, size_t len);
uint64_t lb_now_ms(void);

#endif
