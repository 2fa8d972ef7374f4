/*
 * notify.h - systemd's readiness protocol (sd_notify) without libsystemd:
 * one datagram to $NOTIFY_SOCKET. A no-op when not started by systemd with
 * Type=notify. Thread-safe.
 */
#ifndef BCE_NOTIFY_H
#define BCE_NOTIFY_H

/* Sends @state (e.g. "READY=1", "RELOADING=1", "STOPPING=1"). Returns 0 when
 * sent or when there is no $NOTIFY_SOCKET; -errno on failure (not logged). */
int notify_systemd(const char *state);

#endif
