#ifndef LB_PROC_PROC_H
#define LB_PROC_PROC_H

#include "lb/proc/proc-t.h"

/* Runs rtmplb with a checked config (takes it). Returns the exit code. */
int lb_proc_run(const char *conf_path, struct conf *conf, const struct lb_control_ops *ctl);

/* reload.c */
/* Opens the access log named in c: an fd, -1 for "off", -2 on error (logged). */
int lb_proc_open_access_log(const struct conf *c);
int lb_proc_open_geo(const struct conf *c, struct geo_db **out);
void lb_proc_attach_geo(struct ups_snapshot *snap, struct geo_db *db);
/* Settings workers read, from c (atomics: safe while they run). */
void lb_proc_apply_settings(struct lb_server *srv, const struct conf *c);
/* Re-reads the config: all or nothing. 0, or -1 with the located errors
 * added to errs (may be NULL; the caller frees them). */
struct ups_msgs;
int lb_proc_reload(struct lb_server *srv, struct ups_msgs *errs);
/* A snapshot of c with geo, the route counters and the overrides applied
 * (stale overrides are reported and dropped). NULL with why in err. */
struct ups_snapshot *lb_proc_build(struct lb_server *srv, const struct conf *c,
                                   struct geo_db *geo, struct lb_tls_set *tls, char *err,
                                   size_t errlen);
/* Builds the TLS contexts of c, logging warnings and errors. 0 (*out may
 * be NULL: no TLS), or -1 with the first error in err. */
int lb_proc_open_tls(const struct conf *c, struct lb_tls_set **out, char *err, size_t errlen);
/* The overrides changed: rebuild from the running config, publish, save. */
int lb_proc_apply_overrides(struct lb_server *srv, char *err, size_t errlen);
void lb_proc_save_overrides(struct lb_server *srv);
/* A new process took over the listening sockets (upgrade.c): stop the admin
 * server and accepting, and drain for drain_ms (0: until each session
 * ends). */
void lb_proc_handover(struct lb_server *srv, int64_t drain_ms);
/* SIGUSR1 / logrotate: reopen the access log file at its path. */
void lb_proc_reopen_logs(struct lb_server *srv);

#endif
